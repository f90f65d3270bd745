"""Chains in JAX: one chain's step written once, ``vmap`` over chains, ``lax.scan`` over
generations, jit-compiled, chains sharded over all local devices.

Random keys are derived with ``fold_in`` from (seed, chain, generation), so a chain's
draws do not depend on how chains are chunked or sharded; they differ from the Numba
kernels' streams, while the distributions agree (the tests check both against the
same exact theory).
"""
