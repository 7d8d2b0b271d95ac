"""The vectorised MinHash / LSH against datasketch, the reference implementation, and exact Jaccard."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH  # type: ignore[import-untyped]  # ships no type information

from defendable_referee.dataset.minhash import (
    Bands,
    MinHasher,
    band_keys,
    candidate_pairs,
    components,
    near_duplicates,
    optimal_bands,
)


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 64), (0.8, 128), (0.7, 64), (0.9, 32), (0.5, 16)])
def test_band_choice_is_datasketchs_at_its_weights(threshold: float, num_perm: int) -> None:
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert optimal_bands(threshold, num_perm) == Bands(b=lsh.b, r=lsh.r)


def _pair(rng: np.random.Generator, shared: int, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    common = rng.integers(0, 2**63, shared, dtype=np.uint64)
    a = np.concatenate([common, rng.integers(0, 2**63, size - shared, dtype=np.uint64)])
    b = np.concatenate([common, rng.integers(0, 2**63, size - shared, dtype=np.uint64)])
    return a, b, shared / (2 * size - shared)


def test_estimates_are_as_accurate_as_datasketchs() -> None:
    """Over 300 pairs of known Jaccard similarity, the error is unbiased and its spread
    matches datasketch's (both ≈ sqrt(J(1−J)/64))."""
    rng = np.random.default_rng(7)
    hasher = MinHasher(num_perm=64, shingle_words=1)
    ours, theirs = [], []
    for _ in range(300):
        a, b, truth = _pair(rng, int(rng.integers(5, 41)), 40)
        offsets = np.array([0, 40, 80], dtype=np.int64)
        shingle_offsets, shingles = hasher.shingles(offsets, np.concatenate([a, b]))
        sig = hasher.signatures(shingle_offsets, shingles)
        ours.append(float((sig[:, 0] == sig[:, 1]).mean()) - truth)
        ma, mb = MinHash(num_perm=64), MinHash(num_perm=64)
        ma.update_batch([str(x).encode() for x in a])
        mb.update_batch([str(x).encode() for x in b])
        theirs.append(mb.jaccard(ma) - truth)
    assert abs(np.mean(ours)) < 0.01
    assert np.std(ours) < 1.25 * np.std(theirs) + 0.005


def test_shingles_are_word_n_grams_and_short_rows_are_one_shingle() -> None:
    hasher = MinHasher(num_perm=16, shingle_words=3)
    words = np.array([1, 2, 3, 4, 5, 1, 2, 9], dtype=np.uint64)
    offsets = np.array([0, 5, 7, 7, 8], dtype=np.int64)  # 5 words, 2 words, none, 1 word
    shingle_offsets, shingles = hasher.shingles(offsets, words)
    assert list(np.diff(shingle_offsets)) == [3, 1, 0, 1]
    _, again = hasher.shingles(np.array([0, 3], dtype=np.int64), np.array([1, 2, 3], dtype=np.uint64))
    assert again[0] == shingles[0]  # the same three words hash the same wherever they are
    sig = hasher.signatures(shingle_offsets, shingles)
    assert sig.shape == (16, 4)
    assert (sig[:, 2] == 0xFFFF).all()  # a row without words has no signature


def test_lsh_finds_planted_near_duplicates_and_nothing_else() -> None:
    rng = np.random.default_rng(11)
    n, size = 5_000, 30
    words = rng.integers(0, 2**63, n * size, dtype=np.uint64)
    copies = {10: 20, 300: 301, 4_000: 17}  # row -> the row it nearly copies
    for row, source in copies.items():
        words[row * size : (row + 1) * size] = words[source * size : (source + 1) * size]
        words[row * size + 5] = np.uint64(42)  # one word of 30 changed: Jaccard of 3-grams 25/31
    hasher = MinHasher(num_perm=64, shingle_words=3)
    offsets = np.arange(0, n * size + 1, size, dtype=np.int64)
    sig = hasher.signatures(*hasher.shingles(offsets, words))
    found = near_duplicates(sig, np.ones(n, dtype=bool), 0.7, optimal_bands(0.7, 64, 0.1, 0.9))
    assert {tuple(p) for p in found.pairs.tolist()} == {(min(a, b), max(a, b)) for a, b in copies.items()}
    assert found.duplicate_rows() == 3


def test_a_bucket_of_identical_rows_costs_linear_pairs() -> None:
    n = 20_000
    sig = np.zeros((16, n), dtype=np.uint16)  # every row the same
    keys = band_keys(sig, Bands(b=4, r=4))
    pairs = candidate_pairs(keys, np.ones(n, dtype=bool))
    assert len(pairs) == 2 * n - 3  # each row with the bucket's first row and with the row before it
    assert int(np.count_nonzero(components(n, pairs) == 0)) == n


def test_components_join_chains() -> None:
    pairs = np.array([[0, 1], [1, 2], [5, 6], [2, 3]], dtype=np.int64)
    assert list(components(8, pairs)) == [0, 0, 0, 0, 4, 5, 5, 7]
