"""Text for the language-model experiments: corpora, tokenizers, a language with known law.

Corpora (:func:`load`):

- ``pydoc``: CPython's own documentation topics (``pydoc_data.topics``), real English
  prose and code that every Python installation carries (about 465k characters);
- ``zipf``: text drawn from :data:`ZIPF`, a synthetic language whose distribution is
  known exactly, so a model's KL divergence to the truth can be measured;
- any UTF-8 text file.

Tokenizers (:class:`Tokenizer`): ``chars`` (the corpus's characters), ``bytes`` (UTF-8
bytes, 256 ids) and ``bpe``, a byte-pair encoding (Sennrich et al., 2016) learned on the
training text from its characters.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TOKENIZERS",
    "ZIPF",
    "ZIPF_LENGTH",
    "Corpus",
    "MarkovLanguage",
    "TextDataError",
    "Tokenizer",
    "char_ngram_support",
    "load",
    "repeat_rate",
    "word_ngrams",
]

TOKENIZERS = ("chars", "bytes", "bpe")


class TextDataError(ValueError):
    """A corpus that cannot be read or used."""


@dataclass(frozen=True)
class Corpus:
    """A text and where it came from."""

    text: str
    source: str
    sha256: str
    language: MarkovLanguage | None = None  # the law the text was drawn from, if known


class MarkovLanguage:
    """An order-k Markov chain over an alphabet with Zipfian next-symbol laws.

    After each context of ``order`` symbols the next symbol's probabilities fall as
    ``rank ** -exponent``, the ranks a random permutation of the alphabet drawn per
    context (from ``seed``). Text is drawn from the chain started in its stationary
    law, so every position has the same law and the entropy rate is exact:
    ``H = sum_s pi(s) H(P(. | s))`` over contexts ``s``.
    """

    def __init__(self, alphabet: str, order: int, exponent: float, seed: int) -> None:
        self.alphabet, self.order, self.exponent = alphabet, order, exponent
        v = len(alphabet)
        rng = np.random.default_rng(seed)
        zipf = np.arange(1, v + 1, dtype=np.float64) ** -exponent
        zipf /= zipf.sum()
        self.contexts = v**order
        self.probs = np.array([zipf[np.argsort(rng.permutation(v))] for _ in range(self.contexts)])
        # The chain on contexts: s = (a, b, ...) moves to (b, ..., x) with P(x | s).
        nxt = (np.arange(self.contexts)[:, None] * v) % self.contexts + np.arange(v)[None, :]
        self.next_context = nxt
        pi = np.full(self.contexts, 1.0 / self.contexts)
        for _ in range(10_000):
            new = np.zeros_like(pi)
            np.add.at(new, nxt.reshape(-1), (pi[:, None] * self.probs).reshape(-1))
            if np.abs(new - pi).max() < 1e-15:
                pi = new
                break
            pi = new
        self.stationary = pi / pi.sum()
        h = -np.sum(self.probs * np.log(self.probs), axis=1)
        self.entropy_rate = float(np.dot(self.stationary, h))
        """Nats per symbol."""

    @property
    def name(self) -> str:
        return f"order-{self.order} Markov, Zipf exponent {self.exponent}, {len(self.alphabet)} symbols"

    def sample(self, length: int, rng: np.random.Generator) -> str:
        """``length`` symbols of text from the stationary chain."""
        v = len(self.alphabet)
        s = int(rng.choice(self.contexts, p=self.stationary))
        u = rng.random(length)
        cdf = np.cumsum(self.probs, axis=1)
        out = np.empty(length, np.int64)
        for i in range(length):
            x = min(int(np.searchsorted(cdf[s], u[i], side="right")), v - 1)
            out[i] = x
            s = int(self.next_context[s, x])
        return "".join(np.array(list(self.alphabet))[out])

    def target_logp(self, text_ids: np.ndarray, lookup: np.ndarray) -> np.ndarray:
        """log P(token | the ``order`` tokens before it) of each row's second half.

        ``text_ids``: (N, 2B) token ids; ``lookup`` maps token ids to alphabet
        indices (-1: not a symbol of the language, log-probability -inf).
        """
        v = len(self.alphabet)
        b = text_ids.shape[1] // 2
        sym = lookup[text_ids]
        out = np.full((len(text_ids), b), -np.inf)
        ctx = np.zeros((len(text_ids), b), np.int64)
        ok = np.ones((len(text_ids), b), bool)
        for j in range(self.order, 0, -1):
            prev = sym[:, b - j : 2 * b - j]
            ok &= prev >= 0
            ctx = ctx * v + np.maximum(prev, 0)
        cur = sym[:, b:]
        ok &= cur >= 0
        out[ok] = np.log(self.probs[ctx[ok], cur[ok]])
        return out


ZIPF = MarkovLanguage(" etaoinshrdlucmfw", order=2, exponent=1.1, seed=20240724)
"""The synthetic language of ``--corpus zipf``: 17 symbols, order 2 (a Zipfian trigram)."""

ZIPF_LENGTH = 400_000
"""Symbols of ``zipf`` text drawn for a run."""


def load(name: str, seed: int = 0) -> Corpus:
    """The corpus ``pydoc``, ``zipf`` (drawn with ``seed``) or a UTF-8 text file.

    Raises:
        TextDataError: the file is missing, unreadable, not UTF-8, or empty.
    """
    if name == "pydoc":
        from pydoc_data import topics

        text = "\n\n".join(topics.topics[k].strip() for k in sorted(topics.topics))
        return Corpus(text, "pydoc_data.topics (CPython documentation)", _sha(text))
    if name == "zipf":
        text = ZIPF.sample(ZIPF_LENGTH, np.random.default_rng([seed, 0x21FF]))
        return Corpus(text, f"zipf: {ZIPF.name}", _sha(text), ZIPF)
    if not name.strip():
        raise TextDataError("--corpus is empty; give pydoc, zipf or a UTF-8 text file")
    path = Path(name)
    if path.is_dir():
        raise TextDataError(f"corpus {name!r} is a directory, not a text file")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise TextDataError(
            f"corpus {name!r} is neither pydoc, zipf nor an existing file"
        ) from None
    except UnicodeDecodeError as e:
        raise TextDataError(f"{path} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise TextDataError(f"cannot read {path}: {e.strerror}") from None
    if not text.strip():
        raise TextDataError(f"{path} holds no text")
    return Corpus(text, str(path), _sha(text))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Tokenizer:
    """Text to token ids and back: characters, UTF-8 bytes, or byte-pair merges of characters.

    ``pieces[i]`` is the text of token ``i`` (for ``bytes``, a byte that may be part of
    a character; decoding replaces broken UTF-8 with U+FFFD).
    """

    def __init__(self, kind: str, pieces: list[str], merges: list[tuple[int, int]]) -> None:
        self.kind, self.pieces, self.merges = kind, pieces, merges
        self._chars = {c: i for i, c in enumerate(pieces[: len(pieces) - len(merges)])}

    @classmethod
    def train(cls, kind: str, text: str, merges: int = 0) -> Tokenizer:
        """A tokenizer for ``text``; ``bpe`` learns ``merges`` merges on it.

        Raises:
            ValueError: an unknown kind.
        """
        if kind == "bytes":
            return cls(kind, [chr(i) if i < 128 else f"\\x{i:02x}" for i in range(256)], [])
        alphabet = sorted(set(text))
        if kind == "chars":
            return cls(kind, alphabet, [])
        if kind != "bpe":
            raise ValueError(f"unknown tokenizer {kind!r}; choose {', '.join(TOKENIZERS)}")
        tok = cls(kind, alphabet, [])
        ids = tok.encode(text)
        pieces, pairs = list(alphabet), []
        for _ in range(merges):
            if len(ids) < 2:
                break
            v = len(pieces)
            counts = np.bincount(ids[:-1].astype(np.int64) * v + ids[1:], minlength=v * v)
            best = int(np.argmax(counts))
            if counts[best] < 2:
                break
            a, b = divmod(best, v)
            pairs.append((a, b))
            pieces.append(pieces[a] + pieces[b])
            ids = _merge(ids, a, b, v)
        return cls(kind, pieces, pairs)

    @property
    def vocab(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int32) of ``text``.

        Raises:
            TextDataError: a character the tokenizer has never seen.
        """
        if self.kind == "bytes":
            return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)
        try:
            ids = np.fromiter((self._chars[c] for c in text), np.int32, len(text))
        except KeyError as e:
            raise TextDataError(f"character {e.args[0]!r} is not in the tokenizer") from None
        base = len(self.pieces) - len(self.merges)
        for i, (a, b) in enumerate(self.merges):
            ids = _merge(ids, a, b, base + i)
        return ids

    def decode(self, ids: np.ndarray) -> str:
        """The text of token ids."""
        if self.kind == "bytes":
            return bytes(np.asarray(ids, np.uint8)).decode("utf-8", errors="replace")
        return "".join(self.pieces[int(i)] for i in ids)

    def symbols(self, alphabet: str) -> np.ndarray:
        """Per token id, its index in ``alphabet`` (-1 if it is not one symbol of it)."""
        index = {c: i for i, c in enumerate(alphabet)}
        return np.array([index.get(p, -1) for p in self.pieces], np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "pieces": self.pieces, "merges": self.merges}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        return cls(d["kind"], list(d["pieces"]), [tuple(m) for m in d["merges"]])


def _merge(ids: np.ndarray, a: int, b: int, new: int) -> np.ndarray:
    """Replace each non-overlapping pair (a, b), left to right, by ``new``."""
    hit = np.flatnonzero((ids[:-1] == a) & (ids[1:] == b))
    if len(hit) == 0:
        return ids
    if a == b:  # in a run "a a a", pairs overlap: keep the 1st, 3rd, ... of each run
        starts = np.r_[True, np.diff(hit) != 1]
        run_start = np.maximum.accumulate(np.where(starts, hit, 0))
        hit = hit[(hit - run_start) % 2 == 0]
    out = ids.copy()
    out[hit] = new
    keep = np.ones(len(ids), bool)
    keep[hit + 1] = False
    return out[keep]


def word_ngrams(texts: list[str], n: int) -> tuple[int, int]:
    """(distinct, total) word n-grams over texts (words split at whitespace)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for t in texts:
        w = t.split()
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen), total


def char_ngram_support(texts: list[str], n: int) -> int:
    """Distinct character n-grams over texts."""
    return len({t[i : i + n] for t in texts for i in range(len(t) - n + 1)})


def repeat_rate(texts: list[str], n: int) -> float:
    """Mean over texts of the share of character n-grams already seen earlier in the text.

    Welleck et al.'s (2020) seq-rep-n, on characters: 0 for text that never repeats
    itself, near 1 for a text stuck in a loop. Texts shorter than n are skipped.
    """
    rates = []
    for t in texts:
        grams = [t[i : i + n] for i in range(len(t) - n + 1)]
        if grams:
            rates.append(1.0 - len(set(grams)) / len(grams))
    return float(np.mean(rates)) if rates else math.nan
