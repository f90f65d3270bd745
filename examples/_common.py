"""What the example scripts share: their two options."""

from __future__ import annotations

import argparse
from pathlib import Path


def options(doc: str) -> tuple[Path, Path, bool]:
    """``(--out directory, --figures directory, --quick)`` from the command line; the
    directories are created. The figures go to --out unless --figures is given."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out",
                        help="where the runs and the figure go (default: examples/out)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="a small run (seconds), the same settings otherwise")  # fmt: skip
    parser.add_argument("--figures", type=Path, default=None,
                        help="where the figure goes (default: --out); the README's are in "
                        "docs/figures")  # fmt: skip
    args = parser.parse_args()
    figures = args.figures or args.out
    for folder in (args.out, figures):
        folder.mkdir(parents=True, exist_ok=True)
    return args.out, figures, args.quick


def fresh(path: Path) -> Path:
    """``path``, with any file or run directory a previous run of the example left removed."""
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    return path
