"""The one place that sets the Numba compilation flags of every kernel.

``fastmath`` stays off: it lets LLVM reassociate sums and contract multiply-adds
differently on different CPUs, and runs must be bit-reproducible from
``(seed, chain)``. ``cache`` writes compiled code next to the sources so the
second process starts warm.
"""

from __future__ import annotations

from typing import Any

JIT: dict[str, Any] = {"nogil": True, "cache": True, "fastmath": False, "error_model": "numpy"}
"""Flags for serial kernels and for the helpers they inline."""

PJIT: dict[str, Any] = {**JIT, "parallel": True}
"""Flags for kernels that run chains in parallel with ``prange``."""
