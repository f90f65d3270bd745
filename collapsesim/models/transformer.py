"""A small decoder-only transformer language model in Flax NNX, with a key-value cache.

Pre-norm blocks (causal multi-head self-attention, then a GELU MLP), learned position
embeddings and an output layer tied to the token embedding. One code path serves
training, scoring and decoding: a call takes the tokens at positions ``start ..
start + T - 1`` and, optionally, a key-value cache for the positions before them.

The sampler is one jit-compiled function: a prefill of the prompt, then a ``lax.scan``
over new tokens, each a single-position step against the cache (``cached=False``
recomputes the whole context instead, the baseline the cache is measured against).
Each sequence draws its tokens from its own key, so what it samples does not depend on
which other sequences share its batch.

Training examples are (prompt, continuation) pairs of equal length ``B`` stored as one
row of ``2B`` tokens; :func:`lm_loss` scores the continuation given the prompt.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "Cache",
    "Transformer",
    "filter_logits",
    "generate",
    "lm_loss",
    "nll",
]

Cache = tuple[tuple[jax.Array, jax.Array], ...]
"""Per layer, keys and values (batch, heads, context, head width)."""


class Block(nnx.Module):
    """Pre-norm causal self-attention and MLP, each with a residual connection."""

    def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs) -> None:
        self.heads = heads
        self.ln1 = nnx.LayerNorm(width, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, rngs=rngs)
        self.proj = nnx.Linear(width, width, rngs=rngs)
        self.ln2 = nnx.LayerNorm(width, rngs=rngs)
        self.fc1 = nnx.Linear(width, 4 * width, rngs=rngs)
        self.fc2 = nnx.Linear(4 * width, width, rngs=rngs)

    def __call__(
        self, x: jax.Array, start: jax.Array | int, cache: tuple[jax.Array, jax.Array] | None
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        b, t, d = x.shape
        h = self.heads
        qkv = self.qkv(self.ln1(x)).reshape(b, t, 3, h, d // h).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (b, h, t, d/h)
        if cache is not None:  # write this call's keys and values at their positions
            at = (0, 0, start, 0)
            k = jax.lax.dynamic_update_slice(cache[0], k.astype(cache[0].dtype), at)
            v = jax.lax.dynamic_update_slice(cache[1], v.astype(cache[1].dtype), at)
        # Query i sits at position start + i and sees keys at positions <= its own.
        scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(d // h)
        visible = jnp.arange(k.shape[2])[None, :] <= (start + jnp.arange(t))[:, None]
        scores = jnp.where(visible, scores, jnp.finfo(scores.dtype).min)
        y = jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(scores, axis=-1), v)
        x = x + self.proj(y.transpose(0, 2, 1, 3).reshape(b, t, d))
        x = x + self.fc2(nnx.gelu(self.fc1(self.ln2(x))))
        return x, (k, v)


class Transformer(nnx.Module):
    """Token and position embeddings, ``layers`` blocks, a final norm, tied output."""

    def __init__(
        self, vocab: int, context: int, width: int, heads: int, layers: int, *, rngs: nnx.Rngs
    ) -> None:
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.vocab, self.context, self.width, self.heads = vocab, context, width, heads
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (context, width)))
        self.blocks = nnx.List([Block(width, heads, rngs=rngs) for _ in range(layers)])
        self.ln = nnx.LayerNorm(width, rngs=rngs)

    def __call__(
        self, ids: jax.Array, start: jax.Array | int = 0, cache: Cache | None = None
    ) -> tuple[jax.Array, Cache]:
        """Logits (batch, T, vocab) for tokens at positions start..start+T-1, and the cache.

        Without ``cache`` (training, scoring, prefill) ``start`` must be 0 and the
        returned keys and values cover the T positions; with one, they cover the
        cache's whole context, this call's positions written in.
        """
        t = ids.shape[1]
        pos = jax.lax.dynamic_slice_in_dim(self.pos[...], start, t)
        x = self.embed(ids) + pos[None]
        kv = []
        for i, block in enumerate(self.blocks):
            x, layer_kv = block(x, start, None if cache is None else cache[i])
            kv.append(layer_kv)
        return self.embed.attend(self.ln(x)), tuple(kv)

    def empty_cache(self, batch: int, length: int, dtype: Any = jnp.float32) -> Cache:
        """A zeroed key-value cache for ``batch`` sequences of up to ``length`` tokens."""
        shape = (batch, self.heads, length, self.width // self.heads)
        return tuple((jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in self.blocks)


def _target_logp(model: Transformer, seqs: jax.Array) -> jax.Array:
    """log p(continuation token | everything before it): (batch, B) for rows of 2B tokens."""
    b = seqs.shape[1] // 2
    logits, _ = model(seqs[:, :-1])
    logp = jax.nn.log_softmax(logits[:, b - 1 :].astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, seqs[:, b:, None], axis=-1)[..., 0]


def lm_loss(model: Transformer, seqs: jax.Array, key: jax.Array) -> jax.Array:
    """Mean negative log-likelihood (nats/token) of each row's continuation given its prompt."""
    del key
    return -jnp.mean(_target_logp(model, seqs), axis=1)


@partial(jax.jit, static_argnames=("graphdef",))
def _nll(graphdef: Any, params: Any, seqs: jax.Array) -> jax.Array:
    return -_target_logp(nnx.merge(graphdef, params), seqs)


def nll(model: Transformer, seqs: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Per-token negative log-likelihood (nats) of each row's continuation: (N, B)."""
    graphdef, params = nnx.split(model)
    b = seqs.shape[1] // 2
    parts = []
    for lo in range(0, len(seqs), chunk):
        part = seqs[lo : lo + chunk]
        pad = chunk - len(part)  # one shape, one compilation
        padded = np.concatenate([part, np.zeros((pad, part.shape[1]), part.dtype)])
        parts.append(np.asarray(_nll(graphdef, params, jnp.asarray(padded)))[: len(part)])
    return np.concatenate(parts) if parts else np.zeros((0, b), np.float32)


def filter_logits(
    logits: jax.Array, temperature: jax.Array | float, top_k: int, top_p: jax.Array | float
) -> jax.Array:
    """Logits (..., vocab) scaled by 1/temperature, outside top-k and top-p set to -inf.

    ``top_k`` 0 and ``top_p`` 1 switch those filters off. Top-p keeps the smallest set of
    most probable tokens whose probability reaches ``top_p`` (Holtzman et al., 2020),
    after temperature and top-k.
    """
    x = logits.astype(jnp.float32) / temperature
    if top_k:
        kth = jax.lax.top_k(x, top_k)[0][..., -1:]
        x = jnp.where(x < kth, -jnp.inf, x)
    if isinstance(top_p, float) and top_p >= 1.0:  # known to be off when tracing: no sort
        return x
    ordered = jnp.sort(x, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of the tokens ranked above
    kept = jnp.where(before < top_p, ordered, jnp.inf)
    threshold = jnp.min(kept, axis=-1, keepdims=True)
    return jnp.where((top_p < 1.0) & (x < threshold), -jnp.inf, x)


@partial(jax.jit, static_argnames=("graphdef", "steps", "top_k", "top_p", "cached"))
def _generate(
    graphdef: Any,
    params: Any,
    prompts: jax.Array,
    keys: jax.Array,
    temperature: jax.Array,
    *,
    steps: int,
    top_k: int,
    top_p: float,
    cached: bool,
) -> tuple[jax.Array, jax.Array]:
    model = nnx.merge(graphdef, params)
    batch, p = prompts.shape
    length = p + steps

    def pick(logits: jax.Array, i: jax.Array) -> jax.Array:
        x = filter_logits(logits, temperature, top_k, top_p)
        draw = jax.vmap(lambda k, row: jax.random.categorical(jax.random.fold_in(k, i), row))
        return draw(keys, x).astype(prompts.dtype)

    if cached:
        logits, cache = model(prompts, 0, model.empty_cache(batch, length))

        def step(carry: tuple[Cache, jax.Array], i: jax.Array) -> tuple[Any, Any]:
            cache, last = carry
            token = pick(last, i)
            logits, cache = model(token[:, None], p + i, cache)
            return (cache, logits[:, 0]), (token, last)

        _, (tokens, seen) = jax.lax.scan(step, (cache, logits[:, -1]), jnp.arange(steps))
    else:
        buf = jnp.zeros((batch, length), prompts.dtype).at[:, :p].set(prompts)

        def step_full(buf: jax.Array, i: jax.Array) -> tuple[Any, Any]:
            logits, _ = model(buf)  # the whole context again; causality hides the zeros
            last = jax.lax.dynamic_index_in_dim(logits, p + i - 1, axis=1, keepdims=False)
            token = pick(last, i)
            return buf.at[:, p + i].set(token), (token, last)

        _, (tokens, seen) = jax.lax.scan(step_full, buf, jnp.arange(steps))
    return tokens.T, seen.transpose(1, 0, 2)


def generate(
    model: Transformer,
    prompts: np.ndarray,
    keys: jax.Array,
    steps: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    cached: bool = True,
    return_logits: bool = False,
) -> Any:
    """Sample ``steps`` tokens after each prompt row; (N, steps) int32 token ids.

    ``keys``: one PRNG key per row. ``return_logits`` also returns the unfiltered
    logits each token was drawn from, (N, steps, vocab).
    """
    if prompts.shape[1] + steps > model.context:
        raise ValueError(
            f"prompt {prompts.shape[1]} + {steps} new tokens exceed the context {model.context}"
        )
    graphdef, params = nnx.split(model)
    tokens, logits = _generate(
        graphdef,
        params,
        jnp.asarray(prompts, jnp.int32),
        keys,
        jnp.float32(temperature),
        steps=steps,
        top_k=top_k,
        top_p=float(top_p),
        cached=cached,
    )
    if return_logits:
        return np.asarray(tokens), np.asarray(logits)
    return np.asarray(tokens)
