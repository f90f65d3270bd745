"""Training shared by the Flax NNX models: one jit-compiled epoch, and parameter files.

Training is functional: the model is split into its graph and parameters, and one
whole epoch (shuffle, then every full minibatch) is a single jit-compiled ``lax.scan``.
A loss is a module-level function ``loss(model, *batch, key) -> (batch,)`` per-example
values; being a static argument, it is compiled once per function.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

__all__ = ["Loss", "Trainer", "fit", "get_params", "set_params"]

Loss = Callable[..., jax.Array]


def _optimizer(lr: float, clip: float | None) -> optax.GradientTransformation:
    if clip is None:
        return optax.adam(lr)
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr))


@partial(jax.jit, static_argnames=("graphdef", "loss", "batch", "lr", "clip"))
def _epoch(
    graphdef: Any,
    params: Any,
    opt_state: Any,
    data: tuple[jax.Array, ...],
    key: jax.Array,
    *,
    loss: Loss,
    batch: int,
    lr: float,
    clip: float | None,
) -> tuple[Any, Any, jax.Array]:
    """One epoch over ``data`` in shuffled minibatches; the mean loss."""
    tx = _optimizer(lr, clip)
    n = data[0].shape[0]
    steps = n // batch
    k_perm, k_steps = jax.random.split(key)
    perm = jax.random.permutation(k_perm, n)[: steps * batch].reshape(steps, batch)

    def objective(p: Any, xs: tuple[jax.Array, ...], k: jax.Array) -> jax.Array:
        return jnp.mean(loss(nnx.merge(graphdef, p), *xs, k))

    def step(carry: tuple[Any, Any], inp: tuple[jax.Array, jax.Array]) -> tuple[Any, jax.Array]:
        p, s = carry
        idx, k = inp
        value, grads = jax.value_and_grad(objective)(p, tuple(d[idx] for d in data), k)
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    (params, opt_state), values = jax.lax.scan(
        step, (params, opt_state), (perm, jax.random.split(k_steps, steps))
    )
    return params, opt_state, jnp.mean(values)


class Trainer:
    """Adam on a model's parameters, one jit-compiled epoch at a time.

    ``data`` holds the arrays a minibatch is cut from (the same rows of each).
    Epoch ``e`` shuffles with ``fold_in(key, e)``, so a run is fixed by its key.
    ``clip``: clip gradients to this global norm first (None: no clipping).
    :meth:`epoch` returns the epoch's mean loss; :meth:`finish` writes the trained
    parameters back into the model.
    """

    def __init__(
        self,
        model: nnx.Module,
        data: tuple[np.ndarray, ...],
        key: jax.Array,
        *,
        loss: Loss,
        batch: int,
        lr: float,
        clip: float | None = None,
    ) -> None:
        self.model = model
        self.graphdef, self.params = nnx.split(model)
        self.opt_state = _optimizer(lr, clip).init(self.params)
        self.data = tuple(jnp.asarray(d) for d in data)
        self.key, self.loss, self.lr, self.clip = key, loss, lr, clip
        self.batch = min(batch, self.data[0].shape[0])
        self.done = 0

    def epoch(self) -> float:
        """Train one more epoch; its mean loss."""
        self.params, self.opt_state, value = _epoch(
            self.graphdef,
            self.params,
            self.opt_state,
            self.data,
            jax.random.fold_in(self.key, self.done),
            loss=self.loss,
            batch=self.batch,
            lr=self.lr,
            clip=self.clip,
        )
        self.done += 1
        return float(value)

    def finish(self) -> None:
        """Put the trained parameters into the model."""
        nnx.update(self.model, self.params)


def fit(
    model: nnx.Module,
    data: tuple[np.ndarray, ...],
    key: jax.Array,
    *,
    loss: Loss,
    epochs: int,
    batch: int,
    lr: float,
    clip: float | None = None,
) -> list[float]:
    """Train ``model`` in place for ``epochs`` (see :class:`Trainer`); each epoch's loss."""
    trainer = Trainer(model, data, key, loss=loss, batch=batch, lr=lr, clip=clip)
    history = [trainer.epoch() for _ in range(epochs)]
    trainer.finish()
    return history


def get_params(model: nnx.Module) -> dict[str, np.ndarray]:
    """The model's parameters as NumPy arrays keyed by their path (for .npz files)."""
    _, params = nnx.split(model)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def set_params(model: nnx.Module, saved: dict[str, np.ndarray]) -> None:
    """Load what :func:`get_params` returned into a model of the same architecture.

    Raises:
        ValueError: the saved parameters do not fit this model.
    """
    _, params = nnx.split(model)
    flat, tree = jax.tree_util.tree_flatten_with_path(params)
    leaves = []
    for path, leaf in flat:
        name = jax.tree_util.keystr(path)
        if name not in saved or saved[name].shape != leaf.shape:
            raise ValueError(f"saved parameters do not fit the model at {name}")
        leaves.append(jnp.asarray(saved[name], leaf.dtype))
    nnx.update(model, jax.tree_util.tree_unflatten(tree, leaves))
