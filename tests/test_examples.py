"""Every script in examples/ runs with --quick and writes its figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
FIGURES = {
    "gaussian_1000x1000.py": "gaussian.png",
    "replace_vs_accumulate.py": "replace-vs-accumulate.png",
    "rate_vs_samples.py": "rate-vs-samples.png",
    "rare_tokens.py": "rare-tokens.png",
}


def test_every_example_is_listed() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(FIGURES)
    listed = (EXAMPLES / "README.md").read_text()
    assert all(f"`{name}`" in listed for name in FIGURES)


@pytest.mark.parametrize("script", sorted(FIGURES))
def test_example_runs_and_draws(script: str, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    figure = tmp_path / FIGURES[script]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure: {figure}" in res.stdout
    if script != "replace_vs_accumulate.py":
        return
    # Run again into the same directory: the example replaces the run directories it wrote.
    again = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out",
                            str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr
