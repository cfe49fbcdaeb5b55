"""Seeded example searches of the TCAM: random ternary words and queries at chosen Hamming distances."""

from __future__ import annotations

import numpy as np

from ...units import check_range
from .spec import X, TCAMSearch, TCAMSpec


def random_words(words: int, bits: int, seed: int = 0, x_fraction: float = 0.0) -> np.ndarray:
    """(words, bits) int8 random 0/1 words with a fraction `x_fraction` of X (-1), seeded."""
    check_range("random_words", "x_fraction", x_fraction, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (words, bits)).astype(np.int8)
    w[rng.random((words, bits)) < x_fraction] = X
    return w


def query_near(word: np.ndarray, distance: int, seed: int = 0, x_fraction: float = 0.0) -> np.ndarray:
    """(bits,) a query at exactly `distance` mismatches from `word` (bits where the word is 0 or 1 are
    flipped; a stored X never mismatches), with a fraction `x_fraction` of its other bits masked (X)."""
    word = np.asarray(word, dtype=np.int8)
    rng = np.random.default_rng(seed)
    care = np.nonzero(word != X)[0]
    check_range("query_near", "distance", distance, 0, care.size, integer=True)
    q = np.where(word == X, rng.integers(0, 2, word.size), word).astype(np.int8)
    flip = rng.choice(care, size=distance, replace=False)
    q[flip] = 1 - q[flip]
    rest = np.setdiff1d(np.arange(word.size), flip)
    q[rest[rng.random(rest.size) < x_fraction]] = X
    return q


def example(spec: TCAMSpec, seed: int = 0, n_queries: int = 4, n_points: int = 201) -> TCAMSearch:
    """The block's example search: random words (one bit in ten X) and `n_queries` queries, query k at
    distance k from word k mod words (query 0 matches word 0) with one in twenty of its other bits masked.
    At the default 16x32 it runs in SPICE in about a second."""
    stored = random_words(spec.words, spec.bits, seed, x_fraction=0.1)
    queries = []
    for k in range(n_queries):
        word = stored[k % spec.words]
        care = int(np.sum(word != X))
        queries.append(query_near(word, min(k, care), seed=seed + 1 + k, x_fraction=0.05))
    return TCAMSearch(stored=stored, queries=np.array(queries), n_points=n_points)
