"""A convolutional VAE and a small classifier in Flax NNX, trained with Optax.

Both take greyscale images (N, H, W) in [0, 1] with H and W multiples of 4. They train
with :mod:`collapsesim.models.training` on the losses :func:`elbo` and
:func:`classifier_loss`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .training import Trainer, fit, get_params, set_params

__all__ = [
    "VAE",
    "Classifier",
    "Trainer",
    "classifier_loss",
    "elbo",
    "encode_means",
    "features",
    "fit",
    "get_params",
    "predict",
    "sample",
    "set_params",
]


class Up2(nnx.Module):
    """A transposed convolution with a 2 x 2 kernel and stride 2, written as one matmul.

    Each input pixel's features map to the 2 x 2 block of output pixels it covers (the
    blocks do not overlap at this kernel and stride). On CPU this runs several times
    faster than XLA's general transposed convolution.
    """

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs) -> None:
        self.out_features = out_features
        self.linear = nnx.Linear(in_features, 4 * out_features, rngs=rngs)

    def __call__(self, y: jax.Array) -> jax.Array:
        n, h, w, _ = y.shape
        z = self.linear(y).reshape(n, h, w, 2, 2, self.out_features)
        return z.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, self.out_features)


class VAE(nnx.Module):
    """Encoder: two 3 x 3 stride-2 convolutions and a linear layer to (mean, log-variance).

    Decoder: a linear layer, then two stride-2 transposed convolutions (:class:`Up2`)
    to pixel logits (a Bernoulli likelihood per pixel, the usual choice for MNIST).
    """

    def __init__(
        self, shape: tuple[int, int], latent: int, widths: tuple[int, int], *, rngs: nnx.Rngs
    ) -> None:
        h, w = shape
        w1, w2 = widths
        self.shape = (h, w)
        self.latent = latent
        self.inner = (h // 4, w // 4, w2)
        self.conv1 = nnx.Conv(1, w1, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(w1, w2, (3, 3), strides=2, rngs=rngs)
        self.to_latent = nnx.Linear(h // 4 * w // 4 * w2, 2 * latent, rngs=rngs)
        self.from_latent = nnx.Linear(latent, h // 4 * w // 4 * w2, rngs=rngs)
        self.deconv1 = Up2(w2, w1, rngs=rngs)
        self.deconv2 = Up2(w1, 1, rngs=rngs)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Posterior mean and log-variance of each image."""
        y = nnx.relu(self.conv1(x[..., None]))
        y = nnx.relu(self.conv2(y))
        out = self.to_latent(y.reshape(y.shape[0], -1))
        return out[:, : self.latent], out[:, self.latent :]

    def decode(self, z: jax.Array) -> jax.Array:
        """Pixel logits (N, H, W)."""
        y = nnx.relu(self.from_latent(z)).reshape(z.shape[0], *self.inner)
        y = nnx.relu(self.deconv1(y))
        return self.deconv2(y)[..., 0]


class Classifier(nnx.Module):
    """Two stride-2 convolutions, a feature layer (the metrics' feature space), logits."""

    def __init__(
        self, shape: tuple[int, int], classes: int, width: int = 64, *, rngs: nnx.Rngs
    ) -> None:
        h, w = shape
        self.conv1 = nnx.Conv(1, 16, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), strides=2, rngs=rngs)
        self.hidden = nnx.Linear(h // 4 * w // 4 * 32, width, rngs=rngs)
        self.out = nnx.Linear(width, classes, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The penultimate activations (N, width)."""
        y = nnx.relu(self.conv1(x[..., None]))
        y = nnx.relu(self.conv2(y))
        return nnx.relu(self.hidden(y.reshape(y.shape[0], -1)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.features(x))


def elbo(model: VAE, x: jax.Array, key: jax.Array) -> jax.Array:
    """Negative ELBO per image (nats): Bernoulli reconstruction plus KL to N(0, I)."""
    mean, logvar = model.encode(x)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
    logits = model.decode(z)
    rec = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=(1, 2))
    kl = 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=1)
    return rec + kl


def classifier_loss(model: Classifier, x: jax.Array, y: jax.Array, key: jax.Array) -> jax.Array:
    """Cross-entropy of the classifier's logits per image."""
    del key
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y)


@partial(jax.jit, static_argnames=("graphdef", "count", "mean_pixels", "scale"))
def _sample(
    graphdef: Any, params: Any, key: jax.Array, count: int, mean_pixels: bool, scale: float
) -> jax.Array:
    model = nnx.merge(graphdef, params)
    k_z, k_px = jax.random.split(key)
    z = jax.random.normal(k_z, (count, model.latent))
    if scale != 1.0:  # the truncation trick: the prior's latent times lambda
        z = z * scale
    probs = nnx.sigmoid(model.decode(z))
    if mean_pixels:
        return probs
    return jax.random.bernoulli(k_px, probs).astype(probs.dtype)


def sample(
    model: VAE,
    key: jax.Array,
    count: int,
    *,
    mean_pixels: bool = True,
    chunk: int = 1000,
    scale: float = 1.0,
) -> np.ndarray:
    """``count`` images from the prior through the decoder, as 8-bit grey levels.

    ``mean_pixels``: each pixel's Bernoulli mean (grey); otherwise a 0/1 draw. Images
    are rounded to 8 bits as real images are stored, so a generated dataset is an
    image dataset like any other (and a checkpoint holds it exactly). ``scale``: the
    sampling bias lambda, latents drawn from N(0, lambda^2 I).
    """
    graphdef, params = nnx.split(model)
    parts = []
    for i, lo in enumerate(range(0, count, chunk)):
        c = min(chunk, count - lo)
        x = _sample(graphdef, params, jax.random.fold_in(key, i), c, mean_pixels, float(scale))
        parts.append(np.asarray(x))
    out = np.concatenate(parts) if parts else np.zeros((0, *model.shape), np.float32)
    return np.round(out * 255.0).astype(np.uint8)


@partial(jax.jit, static_argnames=("graphdef", "what"))
def _apply(graphdef: Any, params: Any, x: jax.Array, what: str) -> jax.Array:
    model = nnx.merge(graphdef, params)
    if what == "encode":
        return model.encode(x)[0]
    if what == "features":
        return model.features(x)
    return model(x)


def _batched(model: nnx.Module, images: np.ndarray, what: str, chunk: int = 1000) -> np.ndarray:
    graphdef, params = nnx.split(model)
    parts = [
        np.asarray(_apply(graphdef, params, jnp.asarray(images[lo : lo + chunk]), what))
        for lo in range(0, len(images), chunk)
    ]
    return np.concatenate(parts)


def encode_means(model: VAE, images: np.ndarray) -> np.ndarray:
    """Posterior means (N, latent) of images in [0, 1]."""
    return _batched(model, images, "encode")


def features(model: Classifier, images: np.ndarray) -> np.ndarray:
    """The classifier's feature vectors (N, width) of images in [0, 1]."""
    return _batched(model, images, "features")


def predict(model: Classifier, images: np.ndarray) -> np.ndarray:
    """Predicted classes (N,)."""
    return np.argmax(_batched(model, images, "logits"), axis=1)


def confidence(model: Classifier, images: np.ndarray) -> np.ndarray:
    """The classifier's probability of its predicted class (N,), of images in [0, 1]."""
    logits = _batched(model, images, "logits").astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    return 1.0 / np.exp(logits).sum(axis=1)
