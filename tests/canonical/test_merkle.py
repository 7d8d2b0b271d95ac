"""RFC 9162 §2.1 Merkle maths: published vectors, an RFC transcription, two independent
implementations (pymerkle for roots and proofs, sigstore-python for inclusion verification),
property tests, and the stored-node representation the ledger will persist.

Vectors:
- C2SP merkle-tree.md, §Example (the 7-entry tree and its labelled proofs), C2SP/C2SP@76d4d10.
- transparency-dev/merkle proof/verify_test.go @02194e9 (the RFC 6962 reference vectors the
  certificate-transparency implementations share: 8 leaves, their roots, inclusion and
  consistency proofs, and the corruptions each proof must fail under).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree  # type: ignore[import-untyped]  # pymerkle ships no type hints
from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore.errors import VerificationError

from defendable_canonical import merkle
from defendable_canonical.digest import sha256_digest
from defendable_canonical.merkle import (
    EMPTY_ROOT,
    MAX_PROOF_HASHES,
    MAX_TREE_SIZE,
    CompactRange,
    MerkleTree,
    NodeId,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves_of(n: int, salt: str = "") -> list[bytes]:
    return [leaf_hash(sha(f"receipt {salt}{i}".encode())) for i in range(n)]


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---------------------------------------------------------------- RFC 9162 §2.1, transcribed


def ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """§2.1.1 MTH over leaf *hashes* (so MTH({d0}) is d0 itself)."""
    if not d:
        return sha(b"")
    if len(d) == 1:
        return d[0]
    k = ref_split(len(d))
    return sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """§2.1.3.1 PATH(m, D[n])."""
    if len(d) == 1:
        return []
    k = ref_split(len(d))
    return [*ref_path(m, d[:k]), ref_mth(d[k:])] if m < k else [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """§2.1.4.1 SUBPROOF(m, D[n], b)."""
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = ref_split(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def test_every_proof_up_to_64_leaves_is_the_rfc_recursion() -> None:
    leaves = leaves_of(64)
    tree = MerkleTree(leaves)
    for n in range(65):
        assert tree.root(n) == merkle.root(leaves[:n]) == ref_mth(leaves[:n])
        for m in range(n):
            assert tree.inclusion_proof(m, n) == merkle.inclusion_proof(leaves, m, n) == ref_path(m, leaves[:n])
        for m in range(n + 1):
            want = ref_subproof(m, leaves[:n], True) if 0 < m < n else []
            assert tree.consistency_proof(m, n) == merkle.consistency_proof(leaves, m, n) == want


# ---------------------------------------------------------------- C2SP merkle-tree.md §Example


def test_the_c2sp_seven_entry_example_gives_the_documented_proofs() -> None:
    d = [f"entry {i}".encode() for i in range(7)]
    a, b, c, dd, e, f, g = (sha(b"\x00" + x) for x in d)
    h, i, j = sha(b"\x01" + a + b), sha(b"\x01" + c + dd), sha(b"\x01" + e + f)
    k, l = sha(b"\x01" + h + i), sha(b"\x01" + j + g)  # noqa: E741  (the spec's label)
    root = sha(b"\x01" + k + l)
    leaves = [leaf_hash(x) for x in d]

    assert merkle.root(leaves) == root
    for index, proof in {0: [b, i, l], 3: [c, h, l], 4: [f, g, k], 6: [j, k]}.items():
        assert merkle.inclusion_proof(leaves, index, 7) == proof
        verify_inclusion(leaves[index], index, 7, proof, root)
    for size1, proof in {3: [c, dd, h, l], 4: [l], 6: [j, g, k]}.items():
        assert merkle.consistency_proof(leaves, size1, 7) == proof
        verify_consistency(size1, 7, proof, merkle.root(leaves[:size1]), root)


# ---------------------------------------------------------------- transparency-dev/merkle vectors

GO_LEAVES = [bytes.fromhex(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657")] + [
    bytes.fromhex("606162636465666768696a6b6c6d6e6f")
]
GO_ROOTS = [
    bytes.fromhex(x)
    for x in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
_H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "b086": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
}


def go(*keys: str) -> list[bytes]:
    return [bytes.fromhex(_H[k]) for k in keys]


# (leaf, 1-based as in the Go file; size; proof)
GO_INCLUSION = [
    (1, 1, []),
    (1, 8, go("96a2", "5f08", "6b47")),
    (6, 8, go("bc1a", "ca85", "d37e")),
    (3, 3, go("fac5")),
    (2, 5, go("6e34", "5f08", "bc1a")),
]
GO_CONSISTENCY = [
    (1, 1, []),
    (1, 8, go("96a2", "5f08", "6b47")),
    (6, 8, go("0ebc", "ca85", "d37e")),
    (2, 5, go("5f08", "bc1a")),
    (6, 7, go("0ebc", "b086", "d37e")),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_roots_of_the_go_vectors() -> None:
    leaves = [leaf_hash(x) for x in GO_LEAVES]
    assert (
        merkle.root([])
        == EMPTY_ROOT
        == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    )
    assert [merkle.root(leaves[:n]) for n in range(1, 9)] == GO_ROOTS


@pytest.mark.parametrize(("leaf", "size", "proof"), GO_INCLUSION)
def test_go_inclusion_vectors_verify_and_every_corruption_fails(leaf: int, size: int, proof: list[bytes]) -> None:
    index, leaves = leaf - 1, [leaf_hash(x) for x in GO_LEAVES]
    root, lh = GO_ROOTS[size - 1], leaves[index]
    assert merkle.inclusion_proof(leaves, index, size) == proof
    verify_inclusion(lh, index, size, proof, root)

    # corruptInclusionProof in verify_test.go
    probes: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (index - 1, size, lh, proof, root),
        (index + 1, size, lh, proof, root),
        (index ^ 2, size, lh, proof, root),
        (index, size * 2, lh, proof, root),
        (index, size // 2, lh, proof, root),
        (index, size, b"WrongLeaf", proof, root),
        (index, size, lh, proof, EMPTY_ROOT),
        (index, size, lh, proof, SOME_HASH),
        (index, size, lh, [*proof, b""], root),
        (index, size, lh, [*proof, root], root),
        (index, size, lh, [b"", *proof], root),
        (index, size, lh, [root, *proof], root),
    ]
    for i in range(len(proof)):
        probes.append((index, size, lh, [*proof[:i], flip(proof[i], 3), *proof[i + 1 :]], root))
    if proof:
        probes.append((index, size, lh, proof[:-1], root))
    if len(proof) > 1:
        probes.append((index, size, lh, [proof[0], SOME_HASH, *proof[1:]], root))
    for probe in probes:
        with pytest.raises(ProofError):
            verify_inclusion(probe[2], probe[0], probe[1], probe[3], probe[4])


@pytest.mark.parametrize(("size1", "size2", "proof"), GO_CONSISTENCY)
def test_go_consistency_vectors_verify_and_every_corruption_fails(size1: int, size2: int, proof: list[bytes]) -> None:
    leaves = [leaf_hash(x) for x in GO_LEAVES]
    root1, root2 = GO_ROOTS[size1 - 1], GO_ROOTS[size2 - 1]
    assert merkle.consistency_proof(leaves, size1, size2) == proof
    verify_consistency(size1, size2, proof, root1, root2)
    if not proof:
        return
    # corruptConsistencyProof in verify_test.go
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, b"WrongRoot", root2, proof),
        (size1, size2, root1, b"WrongRoot", proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, [*proof, b""]),
        (size1, size2, root1, root2, [*proof, root1]),
        (size1, size2, root1, root2, [*proof, root2]),
        (size1, size2, root1, root2, [b"", *proof]),
        (size1, size2, root1, root2, [root1, *proof]),
        (size1, size2, root1, root2, [root2, *proof]),
        (size1, size2, root1, root2, [proof[0], *proof]),
        (size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        probes.append((size1, size2, root1, root2, [*proof[:i], flip(proof[i], 4), *proof[i + 1 :]]))
    for s1, s2, r1, r2, p in probes:
        with pytest.raises(ProofError):
            verify_consistency(s1, s2, p, r1, r2)


def test_go_single_entry_and_degenerate_cases() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)  # TestVerifyInclusionSingleEntry
    for leaf, root in [(h, b""), (b"", h), (b"", b"")]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, 0, 1, [], root)
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:  # TestVerifyInclusion probes
        for leaf, root in [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, size, [], root)
    r1, r2 = sha(b"don't care 1"), sha(b"don't care 2")
    # TestVerifyConsistency's table, with 32-byte stand-ins for its "don't care" roots
    for size1, size2, root1, root2, proof, ok in [
        (0, 0, r1, r2, [], False),
        (1, 1, r1, r2, [], False),
        (0, 0, r1, r1, [], True),
        (0, 1, r1, r2, [], True),
        (1, 1, r2, r2, [], True),
        (1, 0, r1, r2, [], False),
        (2, 1, r1, r2, [], False),
        (1, 2, r1, r2, [], False),
        (0, 0, EMPTY_ROOT, r2, [], False),
        (1, 1, EMPTY_ROOT, r2, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ]:
        if ok:
            verify_consistency(size1, size2, proof, root1, root2)
        else:
            with pytest.raises(ProofError):
                verify_consistency(size1, size2, proof, root1, root2)


# ---------------------------------------------------------------- independent implementations


def test_pymerkle_computes_the_same_roots_and_inclusion_paths() -> None:
    data = [f"receipt {i}".encode() for i in range(300)]
    theirs = InmemoryTree(algorithm="sha256")
    ours = MerkleTree()
    for x in data:
        theirs.append_entry(x)
        ours.append(leaf_hash(x))
    for n in range(1, 301):
        assert ours.root(n) == theirs.get_root(n), n
    for n in (1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300):
        for index in range(n):
            path = theirs.prove_inclusion(index + 1, n).path  # pymerkle counts from 1; path[0] is the leaf
            assert [path[0], *ours.inclusion_proof(index, n)] == path


def sigstore_verifies(receipt: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """sigstore-python's Rekor inclusion check, fed a stand-in for the log entry it reads."""
    inner = SimpleNamespace(
        inclusion_proof=SimpleNamespace(log_index=index, tree_size=size, hashes=proof, root_hash=root),
        canonicalized_body=receipt,
    )
    try:
        verify_merkle_inclusion(cast(Any, SimpleNamespace(_inner=inner)))
    except VerificationError:
        return False
    return True


def test_sigstore_python_verifies_our_inclusion_proofs_and_rejects_flipped_ones() -> None:
    digests = [sha256_digest(f"payload {i}".encode()) for i in range(70)]
    receipts = [bytes.fromhex(d.removeprefix("sha256:")) for d in digests]
    tree = MerkleTree(merkle.receipt_leaf_hash(d) for d in digests)
    rng = random.Random(5)
    for n in range(1, 71):
        root = tree.root(n)
        for index in range(n):
            proof = tree.inclusion_proof(index, n)
            assert sigstore_verifies(receipts[index], index, n, proof, root)
            if proof:
                i = rng.randrange(len(proof))
                bad = [*proof[:i], flip(proof[i], rng.randrange(256)), *proof[i + 1 :]]
                assert not sigstore_verifies(receipts[index], index, n, bad, root)


# ---------------------------------------------------------------- properties


@st.composite
def tree_and_index(draw: st.DrawFn, max_size: int = 600) -> tuple[MerkleTree, int, int]:
    size = draw(st.integers(1, max_size))
    salt = draw(st.text(max_size=4))
    return MerkleTree(leaves_of(size, salt)), draw(st.integers(0, size - 1)), size


@settings(max_examples=60, deadline=None)
@given(tree_and_index(), st.data())
def test_every_inclusion_proof_verifies_and_any_bit_flip_fails(
    case: tuple[MerkleTree, int, int], data: st.DataObject
) -> None:
    tree, index, size = case
    leaf, proof, root = tree.node(NodeId(0, index)), tree.inclusion_proof(index, size), tree.root(size)
    verify_inclusion(leaf, index, size, proof, root)
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i], data.draw(st.integers(0, 255))), *proof[i + 1 :]]
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, bad, root)
    with pytest.raises(ProofError):
        verify_inclusion(flip(leaf, data.draw(st.integers(0, 255))), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, flip(root, data.draw(st.integers(0, 255))))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.data())
def test_a_proof_for_size_n_fails_against_a_checkpoint_of_any_other_size(n: int, m: int, data: st.DataObject) -> None:
    if m == n:
        m = n + 1
    tree = MerkleTree(leaves_of(max(n, m)))
    index = data.draw(st.integers(0, n - 1))
    leaf, proof = tree.node(NodeId(0, index)), tree.inclusion_proof(index, n)
    # A checkpoint is a (size, root) pair of one tree: (m, root m), or its root alone with the
    # proof's size. (m, root n) names no tree, and for some shapes the path hashes alike.
    for size, root in [(m, tree.root(m)), (n, tree.root(m))]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, proof, root)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 600), st.data())
def test_every_consistency_proof_verifies_and_any_bit_flip_fails(size2: int, data: st.DataObject) -> None:
    tree = MerkleTree(leaves_of(size2))
    size1 = data.draw(st.integers(0, size2))
    proof, root1, root2 = tree.consistency_proof(size1, size2), tree.root(size1), tree.root(size2)
    verify_consistency(size1, size2, proof, root1, root2)
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i], data.draw(st.integers(0, 255))), *proof[i + 1 :]]
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, root1, root2)
    if size1 > 0:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, flip(root1, data.draw(st.integers(0, 255))), root2)
    if 0 < size1 < size2:  # (from the empty tree, any tree is consistent: RFC 9162 §2.1.4)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root1, flip(root2, data.draw(st.integers(0, 255))))
    if 0 < size1 < size2 - 1:
        other = data.draw(st.integers(1, size2 - 1).filter(lambda s: s != size1))
        with pytest.raises(ProofError):
            verify_consistency(other, size2, proof, tree.root(other), root2)


# ---------------------------------------------------------------- 63-bit sizes


def uniform_lookup(leaf: bytes) -> merkle.NodeLookup:
    """A tree whose leaves are all ``leaf``: every node of a level has one hash, so a tree of
    2^63 - 1 leaves can be queried without building it."""
    levels = [leaf]
    for _ in range(63):
        levels.append(node_hash(levels[-1], levels[-1]))
    return lambda node: levels[node.level]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, MAX_TREE_SIZE), st.data())
def test_proofs_for_63_bit_tree_sizes_verify_and_stay_within_64_hashes(size: int, data: st.DataObject) -> None:
    lookup = uniform_lookup(leaf_hash(b"same"))
    index, size1 = data.draw(st.integers(0, size - 1)), data.draw(st.integers(0, size))
    root = merkle.root(lookup, size)
    proof = merkle.inclusion_proof(lookup, index, size)
    assert len(proof) <= 63
    verify_inclusion(leaf_hash(b"same"), index, size, proof, root)
    consistency = merkle.consistency_proof(lookup, size1, size)
    assert len(consistency) <= MAX_PROOF_HASHES
    verify_consistency(size1, size, consistency, merkle.root(lookup, size1), root)
    assert len(merkle.inclusion_nodes(index, size)) <= 2 * 63
    assert len(merkle.consistency_nodes(size1, size)) <= 2 * 64


def test_sizes_indexes_and_proof_lengths_out_of_bounds_are_refused() -> None:
    lookup, h = uniform_lookup(leaf_hash(b"same")), leaf_hash(b"same")
    calls: list[Callable[[], object]] = [
        lambda: merkle.root(lookup, MAX_TREE_SIZE + 1),
        lambda: merkle.root(lookup, -1),
        lambda: merkle.inclusion_proof(lookup, 5, 5),
        lambda: merkle.inclusion_proof(lookup, -1, 5),
        lambda: merkle.consistency_proof(lookup, 6, 5),
        lambda: verify_inclusion(h, 0, MAX_TREE_SIZE + 1, [h] * 63, h),
        lambda: verify_inclusion(h, 0, MAX_TREE_SIZE, [h] * (MAX_PROOF_HASHES + 1), h),
        lambda: verify_consistency(1, MAX_TREE_SIZE, [h] * (MAX_PROOF_HASHES + 1), h, h),
        lambda: verify_consistency(-1, 5, [], h, h),
        lambda: merkle.completed_nodes(MAX_TREE_SIZE),
        lambda: CompactRange(MAX_TREE_SIZE, ()).append(h),
    ]
    for call in calls:
        with pytest.raises(ProofError):
            call()
    with pytest.raises(TypeError):
        merkle.root(lookup)


# ---------------------------------------------------------------- stored nodes


def test_appending_writes_each_completed_node_once_and_about_two_per_leaf() -> None:
    rows: dict[NodeId, bytes] = {}
    tree, border = MerkleTree(), CompactRange()
    for i, leaf in enumerate(leaves_of(1000)):
        written = tree.append(leaf)
        border, from_border = border.append(leaf)
        assert written == from_border
        assert [node for node, _ in written] == merkle.completed_nodes(i)
        assert not rows.keys() & dict(written).keys()
        rows.update(written)
        assert border.root() == tree.root()
    assert len(rows) == 2 * 1000 - bin(1000).count("1")


def test_past_roots_and_proofs_come_from_the_stored_nodes_alone() -> None:
    leaves = leaves_of(777)
    rows: dict[NodeId, bytes] = {}
    border = CompactRange()
    for leaf in leaves:
        border, written = border.append(leaf)
        rows.update(written)
    read: list[NodeId] = []

    def lookup(node: NodeId) -> bytes:
        read.append(node)
        return rows[node]

    rng = random.Random(9)
    for _ in range(300):
        size = rng.randint(1, 777)
        index, size1 = rng.randrange(size), rng.randint(0, size)
        read.clear()
        assert merkle.root(lookup, size) == ref_mth(leaves[:size])
        assert set(read) == set(merkle.root_nodes(size))
        read.clear()
        assert merkle.inclusion_proof(lookup, index, size) == ref_path(index, leaves[:size])
        assert set(read) == set(merkle.inclusion_nodes(index, size))
        read.clear()
        assert merkle.consistency_proof(lookup, size1, size) == merkle.consistency_proof(leaves, size1, size)
        assert set(read) == set(merkle.consistency_nodes(size1, size))
        assert CompactRange.at(rows.__getitem__, size).root() == ref_mth(leaves[:size])


def test_a_writer_resumes_from_the_border_it_reads_back() -> None:
    leaves = leaves_of(100)
    whole = MerkleTree(leaves)
    resumed = CompactRange.at(MerkleTree(leaves[:61]).node, 61)
    for leaf in leaves[61:]:
        resumed, _ = resumed.append(leaf)
    assert resumed == whole.compact_range()
    assert resumed.root() == whole.root()


def test_leaf_hashes_of_the_wrong_size_are_refused() -> None:
    with pytest.raises(ProofError):
        MerkleTree().append(b"short")
    with pytest.raises(ProofError):
        merkle.root([b"short", leaf_hash(b"x")])
    with pytest.raises(ProofError):
        MerkleTree(leaves_of(3)).root(4)
