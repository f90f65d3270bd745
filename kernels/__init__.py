"""Numba kernels of collapsesim, installed as ``collapsesim.kernels``.

Kernels do no I/O and no printing; each private ``@njit`` kernel sits behind a
public wrapper that validates arguments and allocates outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path


def _drop_stale_cache() -> None:
    """Delete Numba's on-disk cache when any kernel source changed.

    Numba keys a cached kernel on its own file's timestamp only, so an edit to a
    helper it inlines from another file (the random streams in ``_rng.py``), or to the
    regime codes it freezes in (``collapsesim/regimes.py``), would leave stale machine
    code in use. One hash over every source here, and the regimes, guards that.
    """
    here = Path(__file__).resolve().parent
    # Installed, the regimes sit beside this package; in a checkout, in collapsesim/.
    regimes = (here.parent / "regimes.py", here.parent / "collapsesim" / "regimes.py")
    digest = hashlib.sha256()
    for src in [*sorted(here.glob("*.py")), *(p for p in regimes if p.is_file())]:
        digest.update(src.name.encode())
        digest.update(src.read_bytes())
    cache = here / "__pycache__"
    stamp = cache / "kernel-sources.sha256"
    with contextlib.suppress(OSError):
        if stamp.is_file() and stamp.read_text() == digest.hexdigest():
            return
        cache.mkdir(exist_ok=True)
        for f in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            f.unlink()
        stamp.write_text(digest.hexdigest())


_drop_stale_cache()
