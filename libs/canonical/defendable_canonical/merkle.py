"""RFC 9162 §2.1 Merkle tree maths for each org's transparency log: hashes, proofs, verification.

Pure: bytes in, bytes out. An org's receipts are the leaves, in seq order; a receipt's leaf
is the RFC 9162 §2.1.1 leaf hash of the 32 raw bytes of its receipt hash
(`receipt_leaf_hash`). Sizes are below 2^63 (a PostgreSQL ``bigint``); proofs hold at most
64 hashes.

Stored representation. A *node* ``NodeId(level, index)`` is the hash of the perfect subtree
over leaves ``[index·2^level, (index+1)·2^level)``; level 0 holds the leaf hashes. A node
exists once its last leaf is appended and never changes after, so a ledger keeps them in an
insert-only table::

    tlog_node(org_id, level smallint, idx bigint, hash bytea /* 32 bytes */,
              PRIMARY KEY (org_id, level, idx))

Appending leaf ``n`` writes the rows ``completed_nodes(n)`` names (two per leaf, amortised).
The root, inclusion proof or consistency proof for *any* past size reads only the rows that
``root_nodes`` / ``inclusion_nodes`` / ``consistency_nodes`` name — O(log n) of them, never
the leaves — and the proof functions take those rows as a lookup (``rows.__getitem__``).
``CompactRange`` is the tree's right border (one node per set bit of the size): all that a
writer keeps in memory to append and to sign the next checkpoint. ``MerkleTree`` is the
same table held in lists, for tests and small logs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import msgspec

from .digest import digest_hex

HASH_SIZE = 32
MAX_TREE_SIZE = (1 << 63) - 1
MAX_PROOF_HASHES = 64
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = SHA-256()


class ProofError(ValueError):
    """A proof that does not verify, or arguments no tree of the claimed size can have."""


class NodeId(msgspec.Struct, frozen=True, gc=False):
    """The perfect subtree over leaves ``[index << level, (index + 1) << level)``."""

    level: int
    index: int

    @property
    def begin(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


NodeLookup = Callable[[NodeId], bytes]
Source = Sequence[bytes] | NodeLookup
"""Leaf hashes in order, or a lookup of stored node hashes (see the module docstring)."""


# ---------------------------------------------------------------- hashes (RFC 9162 §2.1.1)


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def receipt_leaf_hash(receipt_hash: str) -> bytes:
    """The leaf of a receipt: the leaf hash of its ``sha256:<hex>`` digest's 32 raw bytes."""
    return leaf_hash(bytes.fromhex(digest_hex(receipt_hash)))


# ---------------------------------------------------------------- node addressing


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up leaves ``[begin, end)``, left to right.

    For the ranges RFC 9162's recursions produce (a whole tree, or a subtree whose start is
    a multiple of its split point) the MTH of the range is these nodes folded right to left.
    """
    nodes: list[NodeId] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append(NodeId(level, begin >> level))
        begin += 1 << level
    return nodes


def root_nodes(size: int) -> list[NodeId]:
    """The nodes whose hashes give the root of a tree of ``size`` leaves (one per set bit)."""
    _check_size(size)
    return range_nodes(0, size)


def completed_nodes(index: int) -> list[NodeId]:
    """The nodes that appending leaf ``index`` (0-based) completes: the rows it must write."""
    if not 0 <= index < MAX_TREE_SIZE:
        raise ProofError(f"leaf index {index} is outside 0..{MAX_TREE_SIZE - 1}")
    nodes = [NodeId(0, index)]
    level = 0
    while (index >> level) & 1:
        level += 1
        nodes.append(NodeId(level, index >> level))
    return nodes


def inclusion_nodes(index: int, size: int) -> list[NodeId]:
    """Every node ``inclusion_proof(lookup, index, size)`` reads."""
    return _unique(range_nodes(b, e) for b, e in _inclusion_ranges(index, size))


def consistency_nodes(size1: int, size2: int) -> list[NodeId]:
    """Every node ``consistency_proof(lookup, size1, size2)`` reads."""
    return _unique(range_nodes(b, e) for b, e in _consistency_ranges(size1, size2))


# ---------------------------------------------------------------- roots and proofs


def root(source: Source, size: int | None = None) -> bytes:
    """RFC 9162 §2.1.1 MTH of the first ``size`` leaves (all leaves of a sequence by default)."""
    if size is None:
        if callable(source):
            raise TypeError("a node lookup needs an explicit tree size")
        size = len(source)
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _fold(_lookup(source, size), root_nodes(size))


def inclusion_proof(source: Source, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[size]): sibling hashes from the leaf up to the root."""
    lookup = _lookup(source, size)
    return [_fold(lookup, range_nodes(b, e)) for b, e in _inclusion_ranges(index, size)]


def consistency_proof(source: Source, size1: int, size2: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(size1, D[size2]); empty when size1 is 0 or equals size2."""
    lookup = _lookup(source, size2)
    return [_fold(lookup, range_nodes(b, e)) for b, e in _consistency_ranges(size1, size2)]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs PATH(index, D[size]) lists, in proof order."""
    _check_size(size)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:  # PATH(m, D[0:k]) ++ MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # PATH(m - k, D[k:n]) ++ MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs PROOF(size1, D[size2]) lists, in proof order."""
    _check_size(size2)
    if not 0 <= size1 <= size2:
        raise ProofError(f"no consistency proof from tree size {size1} to {size2}")
    if size1 in (0, size2):
        return []
    upper: list[tuple[int, int]] = []  # collected top-down; SUBPROOF appends them on return
    start, end, m, complete = 0, size2, size1, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) ++ MTH(D[k:n])
            upper.append((start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) ++ MTH(D[0:k])
            upper.append((start, start + k))
            start, m, complete = start + k, m - k, False
    base = [] if complete else [(start, end)]  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
    return base + upper[::-1]


# ---------------------------------------------------------------- verification


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-5: the root that ``proof`` leads to from ``leaf`` at ``index``."""
    _check_size(size)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hashes("leaf hash", [leaf])
    _check_hashes("inclusion proof", proof)
    # The expected length, as sigstore's _decomp_inclusion_proof computes it: the levels
    # below the point where the paths to `index` and `size - 1` part, plus the left
    # siblings above it. The RFC loop below would reject a wrong length too, less clearly.
    inner = (index ^ (size - 1)).bit_length()
    expected = inner + (index >> inner).bit_count()
    if len(proof) != expected:
        raise ProofError(f"inclusion proof for leaf {index} of {size} has {len(proof)} hashes, expected {expected}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:  # 5a
            raise ProofError(f"inclusion proof for leaf {index} of {size} is too long")
        if fn & 1 or fn == sn:  # 5b
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 5c
    if sn != 0:  # 6
        raise ProofError(f"inclusion proof for leaf {index} of {size} is too short")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> None:
    """RFC 9162 §2.1.3.2: raises ProofError unless ``proof`` puts ``leaf`` at ``index`` under ``root_hash``."""
    _check_hashes("root hash", [root_hash])
    got = root_from_inclusion_proof(leaf, index, size, proof)
    if got != root_hash:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} leads to root {_short(got)}, not {_short(root_hash)}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """RFC 9162 §2.1.4.2 (with C2SP merkle-tree's cases for equal and empty trees): raises
    ProofError unless ``proof`` shows the tree ``(size1, root1)`` is a prefix of ``(size2, root2)``."""
    _check_size(size2)
    _check_hashes("root hash", [root1, root2])
    _check_hashes("consistency proof", proof)
    if not 0 <= size1 <= size2:
        raise ProofError(f"tree size {size1} cannot be a prefix of tree size {size2}")
    if size1 == size2:
        if proof:
            raise ProofError(f"consistency proof between equal sizes {size1} must be empty, has {len(proof)} hashes")
        if root1 != root2:
            raise ProofError(f"two different roots for tree size {size1}: {_short(root1)} and {_short(root2)}")
        return
    if size1 == 0:
        if proof:
            raise ProofError(f"consistency proof from the empty tree must be empty, has {len(proof)} hashes")
        return
    expected = len(_consistency_ranges(size1, size2))
    if len(proof) != expected:
        raise ProofError(f"consistency proof from {size1} to {size2} has {len(proof)} hashes, expected {expected}")
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)  # 2
    fn, sn = size1 - 1, size2 - 1  # 3
    while fn & 1:  # 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # 5
    for c in path[1:]:  # 6
        if sn == 0:
            raise ProofError(f"consistency proof from {size1} to {size2} is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # 7
        raise ProofError(f"consistency proof from {size1} to {size2} is too short")
    if fr != root1:
        raise ProofError(f"consistency proof from {size1} to {size2} does not lead to the old root {_short(root1)}")
    if sr != root2:
        raise ProofError(f"consistency proof from {size1} to {size2} does not lead to the new root {_short(root2)}")


# ---------------------------------------------------------------- incremental trees


class CompactRange(msgspec.Struct, frozen=True, gc=False):
    """The right border of a tree: ``hashes`` of ``root_nodes(size)``, largest subtree first."""

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    @classmethod
    def at(cls, lookup: NodeLookup, size: int) -> CompactRange:
        """The border of the stored tree at ``size`` (reads ``root_nodes(size)``)."""
        return cls(size, tuple(lookup(n) for n in root_nodes(size)))

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def append(self, leaf: bytes) -> tuple[CompactRange, list[tuple[NodeId, bytes]]]:
        """The border one leaf later, and the completed nodes (with hashes) to store."""
        _check_hashes("leaf hash", [leaf])
        first, *merged = completed_nodes(self.size)
        border, h = list(self.hashes), leaf
        written = [(first, h)]
        for node in merged:  # each trailing one-bit of the old size folds a subtree in
            h = node_hash(border.pop(), h)
            written.append((node, h))
        return CompactRange(self.size + 1, (*border, h)), written


class MerkleTree:
    """An org's log in memory: ``levels[L][i]`` is the hash of ``NodeId(L, i)``."""

    __slots__ = ("_levels",)

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Append one leaf hash; returns the nodes it completes (what a ledger would insert)."""
        _check_hashes("leaf hash", [leaf])
        written: list[tuple[NodeId, bytes]] = []
        for node in completed_nodes(self.size):
            if node.level == len(self._levels):
                self._levels.append([])
            below = self._levels[node.level - 1] if node.level else None
            h = leaf if below is None else node_hash(below[2 * node.index], below[2 * node.index + 1])
            self._levels[node.level].append(h)
            written.append((node, h))
        return written

    def node(self, node: NodeId) -> bytes:
        level = self._levels[node.level] if node.level < len(self._levels) else []
        if not 0 <= node.index < len(level):
            raise ProofError(f"node {node.level}/{node.index} is not complete in a tree of size {self.size}")
        return level[node.index]

    def root(self, size: int | None = None) -> bytes:
        return root(self.node, self._size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self.node, index, self._size(size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(self.node, size1, self._size(size2))

    def compact_range(self, size: int | None = None) -> CompactRange:
        return CompactRange.at(self.node, self._size(size))

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is beyond the {self.size} leaves appended")
        return size


# ---------------------------------------------------------------- helpers


def _split(n: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(lookup: NodeLookup, nodes: Sequence[NodeId]) -> bytes:
    """MTH of a range from its perfect subtrees: right to left, as the recursion nests."""
    h = lookup(nodes[-1])
    for node in reversed(nodes[:-1]):
        h = node_hash(lookup(node), h)
    return h


def _lookup(source: Source, size: int) -> NodeLookup:
    if callable(source):
        return source
    leaves = source
    if len(leaves) < size:
        raise ProofError(f"{len(leaves)} leaves given for a tree of size {size}")

    def perfect(node: NodeId) -> bytes:
        level = list(leaves[node.begin : node.end])
        if any(len(h) != HASH_SIZE for h in level):
            raise ProofError(f"a leaf hash in {node.begin}..{node.end} is not {HASH_SIZE} bytes")
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]

    return perfect


def _short(h: bytes) -> str:
    return h.hex()[:16] + ".."


def _unique(groups: Iterable[list[NodeId]]) -> list[NodeId]:
    return list(dict.fromkeys(node for group in groups for node in group))


def _check_size(size: int) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"tree size {size} is outside 0..{MAX_TREE_SIZE}")


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    if len(hashes) > MAX_PROOF_HASHES:
        raise ProofError(f"{what} has {len(hashes)} hashes, more than {MAX_PROOF_HASHES}")
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what} hash {i} is {len(h)} bytes, not {HASH_SIZE}")
