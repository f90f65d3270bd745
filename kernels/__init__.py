"""Numba kernels of collapsesim, installed as ``collapsesim.kernels``.

Kernels do no I/O and no printing; each private ``@njit`` kernel sits behind a
public wrapper that validates arguments and allocates outputs.
"""
