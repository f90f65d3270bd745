"""Neural generative models trained generation after generation (JAX, Flax NNX, Optax)."""
