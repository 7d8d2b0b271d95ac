"""Verify a whole exported chain (``GET /ledger/export``, NDJSON) offline.

The export is one line per receipt, in seq order::

    {"seq", "receipt_hash", "parent_hash", "payload", "signature", "minted_at"}

(``payload``: the canonical bytes exactly as hashed), then one line per signed checkpoint,
smallest size first: ``{"checkpoint": {"origin", "size", "root_hash", "checkpoint"}}``. A
server that fails part-way ends the stream with ``{"error": "..."}``.

`ExportVerifier` reads the lines one at a time and keeps 64 bytes per receipt (its leaf for
the Merkle tree, and `chain.ChainVerifier`'s digest), never the payloads. It checks every
receipt's hash, canonical form, parent link and signature; recomputes the Merkle root of the
exported leaves at each checkpoint's size and compares it with the checkpoint's; checks every
checkpoint's log signature, and that successive checkpoints extend each other. Given a
checkpoint a witness cosigned (``witnessed``), an export shorter than it, or with another
root at its size, fails: its tail was deleted or its history rewritten.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .chain import ChainVerifier, short
from .checkpoint import Checkpoint, CheckpointError, parse_checkpoint, verify_checkpoint
from .cosignature import cosignature_timestamp
from .digest import digest_hex
from .merkle import CompactRange, leaf_hash
from .model import Signature, StoredReceipt
from .note import Ed25519Verifier, Note, NoteError, UnverifiedNote, parse_note, verify_note
from .note import InvalidSignature as BadNoteSignature
from .signature import b64url_strict, verify_signature
from .tlog_api import CheckpointAnswer, log_origin
from .verification import Check, Outcome
from .verify_transparency import NO_TRUST, Trust

MAX_LINE_BYTES = 64 * 1024 * 1024  # one receipt line: the CLI refuses longer ones

FORMAT = "export format"
RECEIPTS = "receipts (hash, canonical form, parent links)"
SIGNATURES = "receipt signatures (Ed25519)"
SIGNING_KEYS = "signing keys known"
ORIGIN = "log origin"
LOG_KEY = "log key known"
CHECKPOINT_SIGNATURES = "checkpoint signatures (log key)"
ROOTS = "Merkle roots"
CONSISTENCY = "checkpoint consistency"
WITNESSED = "witnessed checkpoint (truncation)"
WITNESSES = "witness cosignatures"
EXPORT_CHECKS = (
    FORMAT,
    RECEIPTS,
    SIGNATURES,
    SIGNING_KEYS,
    ORIGIN,
    LOG_KEY,
    CHECKPOINT_SIGNATURES,
    ROOTS,
    CONSISTENCY,
    WITNESSED,
    WITNESSES,
)
_BATCH = 1024


class _Line(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    seq: int | None = None
    receipt_hash: str | None = None
    parent_hash: str | None = None
    payload: msgspec.Raw = msgspec.Raw(b"")  # msgspec.Raw cannot be in a union: empty means absent
    signature: msgspec.Raw = msgspec.Raw(b"")
    minted_at: str | None = None
    checkpoint: CheckpointAnswer | None = None
    error: str | None = None


class _StrictSignature(Signature, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


def _fast_verify(key: Ed25519PublicKey, sig: str, receipt_hash: str) -> bool:
    """`signature.verify_signature` for a (kid, public key) pair already checked once: True only
    when the signature verifies; on False the caller asks `verify_signature` why not."""
    try:
        key.verify(b64url_strict(sig), bytes.fromhex(digest_hex(receipt_hash)))
    except (InvalidSignature, ValueError):
        return False
    return True


class _Org(msgspec.Struct, frozen=True):
    org_id: str


_line_decoder = msgspec.json.Decoder(_Line)
_signature_decoder = msgspec.json.Decoder(_StrictSignature)
_org_decoder = msgspec.json.Decoder(_Org)


class ExportVerifier:
    """Feed the export's lines in order (`feed`), then read the `checks`."""

    def __init__(self, trust: Trust = NO_TRUST, *, witnessed: bytes | None = None) -> None:
        self.trust = trust
        self.witnessed = witnessed
        self._chain = ChainVerifier()
        self._batch: list[StoredReceipt] = []
        self._leaves = bytearray()  # 32 raw bytes per receipt: SHA-256 of its payload bytes
        self._line = 0
        self._format: str | None = None  # the first format fault
        self._org_id: str | None = None
        self._receipt_keys: dict[str, bytes] = {}  # kid → raw public key, as the receipts carry them
        self._kids: dict[str, int] = {}
        self._keys_seen: dict[tuple[str, str], Ed25519PublicKey] = {}  # (kid, public_key) that verified
        self._bad_signature: str | None = None
        self._unknown_kid: str | None = None
        self._signed = 0
        self._checkpoints: list[tuple[int, bytes]] = []  # (size, root), smallest first
        self._latest_note: Note | None = None
        self._origin: str | None = None
        self._checkpoint_fault: str | None = None  # the first checkpoint whose signature or fields fail
        self._log_keys: dict[str, list[tuple[Ed25519Verifier, str]]] = {}
        self._log_key_used: dict[str, str] = {}  # log key → where it came from
        self._order_fault: str | None = None
        self._out: dict[str, Check] = {}

    # ------------------------------------------------------------------ reading

    def feed(self, line: bytes) -> None:
        self._line += 1
        if self._format is not None or not line.strip():
            if not line.strip() and self._format is None:
                self._format = f"line {self._line} is empty"
            return
        if len(line) > MAX_LINE_BYTES:
            self._format = f"line {self._line} is longer than {MAX_LINE_BYTES} bytes"
            return
        try:
            parsed = _line_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._format = f"line {self._line} is not an export line: {exc}"
            return
        if parsed.error is not None:
            self._format = f"line {self._line}: the server cut the export short: {parsed.error[:300]}"
        elif parsed.checkpoint is not None:
            self._flush()
            self._feed_checkpoint(parsed.checkpoint)
        elif self._checkpoints:
            self._format = f"line {self._line}: a receipt after the checkpoints"
        else:
            self._feed_receipt(parsed)

    def _feed_receipt(self, line: _Line) -> None:
        if line.seq is None or line.receipt_hash is None or line.parent_hash is None or not line.payload:
            self._format = f"line {self._line} is neither a receipt (seq, receipt_hash, parent_hash, payload)"
            self._format += " nor a checkpoint"
            return
        data = bytes(line.payload)
        self._leaves += hashlib.sha256(data).digest()
        if self._org_id is None:
            try:
                self._org_id = _org_decoder.decode(data).org_id
            except (msgspec.DecodeError, msgspec.ValidationError):
                self._org_id = ""
        self._batch.append(
            StoredReceipt(
                seq=line.seq, receipt_hash=line.receipt_hash, parent_hash=line.parent_hash, payload=line.payload
            )
        )
        self._check_signature(line.seq, line.receipt_hash, line.signature)
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._chain.feed(self._batch)  # after a bad link it only counts; the report names it
            self._batch = []

    def _check_signature(self, seq: int, receipt_hash: str, raw: msgspec.Raw) -> None:
        if self._bad_signature is not None:
            return
        if not raw:
            self._bad_signature = f"seq {seq} has no signature: every receipt is signed"
            return
        try:
            signature = _signature_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._bad_signature = f"seq {seq}: malformed signature: {exc}"
            return
        pair = (signature.kid, signature.public_key)
        known = self._keys_seen.get(pair)
        if known is None or not _fast_verify(known, signature.sig, receipt_hash):
            problem = verify_signature(signature, receipt_hash)
            if problem is not None:
                self._bad_signature = f"seq {seq}: {problem}"
                return
        self._signed += 1
        self._kids[signature.kid] = self._kids.get(signature.kid, 0) + 1
        if known is None:  # the first receipt by this key: note it once
            raw_key = b64url_strict(signature.public_key)
            self._keys_seen[pair] = Ed25519PublicKey.from_public_bytes(raw_key)
            self._receipt_keys.setdefault(signature.kid, raw_key)
            keys = self.trust.keys
            if keys is not None and self._unknown_kid is None:
                key = keys.find(signature.kid)
                if key is None or key.public_key != signature.public_key:
                    self._unknown_kid = f"seq {seq} is signed by key {signature.kid}, which is not in {self.trust.name}"

    def _feed_checkpoint(self, answer: CheckpointAnswer) -> None:
        where = f"checkpoint at line {self._line}"
        try:
            note = parse_note(answer.checkpoint.encode())
            checkpoint = parse_checkpoint(note.text)
        except (NoteError, CheckpointError, UnicodeEncodeError) as exc:
            self._format = f"{where} is malformed: {exc}"
            return
        root64 = base64.b64encode(checkpoint.root_hash).decode()
        if (answer.origin, answer.size, answer.root_hash) != (checkpoint.origin, checkpoint.size, root64):
            fault = f"{where}: its origin, size or root_hash is not its note's"
            self._checkpoint_fault = self._checkpoint_fault or fault
        if self._origin is None:
            self._origin = checkpoint.origin
        elif checkpoint.origin != self._origin:
            self._order_fault = self._order_fault or f"{where} is of {checkpoint.origin!r}, not {self._origin!r}"
        if self._checkpoints and checkpoint.size <= self._checkpoints[-1][0]:
            previous = self._checkpoints[-1][0]
            self._order_fault = self._order_fault or f"{where}: size {checkpoint.size} does not follow size {previous}"
        problem = self._log_signature_problem(note, checkpoint)
        if problem is not None:
            self._checkpoint_fault = self._checkpoint_fault or f"{where} (size {checkpoint.size}): {problem}"
        self._checkpoints.append((checkpoint.size, checkpoint.root_hash))
        self._latest_note = note

    # ------------------------------------------------------------------ keys

    def _candidates(self, origin: str) -> list[tuple[Ed25519Verifier, str]]:
        """Log keys for ``origin``: the key set's, or else the keys the receipts carried."""
        cached = self._log_keys.get(origin)
        if cached is not None:
            return cached
        found: list[tuple[Ed25519Verifier, str]] = []
        try:
            if self.trust.keys is not None:
                found = [
                    (Ed25519Verifier(origin, self.trust.keys.raw(k)), f"key {k.kid} of {self.trust.name}")
                    for k in self.trust.keys.keys
                ]
            else:
                found = [
                    (Ed25519Verifier(origin, raw), f"key {kid}, which the receipts carry")
                    for kid, raw in self._receipt_keys.items()
                ]
        except (NoteError, ValueError):
            found = []
        self._log_keys[origin] = found
        return found

    def _log_signature_problem(self, note: Note, checkpoint: Checkpoint) -> str | None:
        ids = {s.key_id for s in note.signatures if s.name == checkpoint.origin}
        log = next(((v, src) for v, src in self._candidates(checkpoint.origin) if v.key_id in ids), None)
        if log is None:
            return f"signed by no known key as {checkpoint.origin}"
        try:
            verify_checkpoint(note, log=log[0])
        except (NoteError, CheckpointError) as exc:
            return str(exc)
        self._log_key_used[f"{log[0].name}+{log[0].key_id:08x}"] = log[1]
        return None

    # ------------------------------------------------------------------ results

    def checks(self) -> list[Check]:
        self._flush()
        self._out = {}
        receipts = len(self._leaves) // 32
        if self._format is None and self._line == 0:
            self._format = "the export is empty"
        if self._format is not None:
            self._put(FORMAT, "FAIL", self._format)
        else:
            self._put(FORMAT, "PASS", f"{receipts} receipts, {len(self._checkpoints)} checkpoints")
        report = self._chain.report()
        if receipts == 0:
            self._put(RECEIPTS, "SKIPPED", "the export holds no receipts")
        elif report.ok:
            self._put(RECEIPTS, "PASS", f"seq 1 to {receipts} from genesis, head {short(report.head or '')}")
        else:
            self._put(RECEIPTS, "FAIL", report.first_bad.reason if report.first_bad else "the chain does not verify")
        if self._bad_signature is not None:
            self._put(SIGNATURES, "FAIL", self._bad_signature)
        elif receipts:
            self._put(SIGNATURES, "PASS", f"{self._signed} signatures verify")
        else:
            self._put(SIGNATURES, "SKIPPED", "the export holds no receipts")
        self._key_checks()
        self._root_checks(receipts)
        return [self._out[name] for name in EXPORT_CHECKS]

    def _put(self, name: str, outcome: Outcome, detail: str) -> None:
        self._out.setdefault(name, Check(name, outcome, detail))  # the first word on a check stands

    def _key_checks(self) -> None:
        put, keys = self._put, self.trust.keys
        if keys is None:
            put(SIGNING_KEYS, "SKIPPED", "no key set given: each signature was checked against the key it carries")
        elif self._unknown_kid is not None:
            put(SIGNING_KEYS, "FAIL", self._unknown_kid)
        elif self._kids:
            put(SIGNING_KEYS, "PASS", f"keys {', '.join(sorted(self._kids))} are in {self.trust.name}")
        else:
            put(SIGNING_KEYS, "SKIPPED", "no signature verified")
        org_id, origin = self._org_id, self._origin
        prefix = keys.origin_prefix if keys else None
        if origin is None:
            put(ORIGIN, "SKIPPED", "the export holds no checkpoints")
        elif not org_id:
            put(ORIGIN, "FAIL", "the receipts name no org_id")
        elif prefix is not None and origin != log_origin(prefix, org_id):
            put(ORIGIN, "FAIL", f"the checkpoints are of {origin!r}, not the org's log {log_origin(prefix, org_id)!r}")
        elif prefix is None and not origin.endswith("/" + org_id):
            put(ORIGIN, "FAIL", f"the checkpoints are of {origin!r}, not a log of org {org_id}")
        else:
            trusted = "" if prefix else " (no origin prefix trusted)"
            put(ORIGIN, "PASS", f"{origin}, the log of org {org_id}{trusted}")
        if not self._checkpoints:
            put(LOG_KEY, "SKIPPED", "the export holds no checkpoints")
            put(CHECKPOINT_SIGNATURES, "SKIPPED", "the export holds no checkpoints")
            return
        used = "; ".join(f"{key} is {src}" for key, src in self._log_key_used.items())
        if keys is None:
            put(LOG_KEY, "SKIPPED", f"no key set given: the log key is taken from the receipts ({used or 'none'})")
        elif self._log_key_used:
            put(LOG_KEY, "PASS", used)
        else:
            put(LOG_KEY, "FAIL", f"no key of {self.trust.name} signed a checkpoint")
        if self._checkpoint_fault is not None:
            put(CHECKPOINT_SIGNATURES, "FAIL", self._checkpoint_fault)
        else:
            put(CHECKPOINT_SIGNATURES, "PASS", f"all {len(self._checkpoints)} signed by the log key")

    def _root_checks(self, receipts: int) -> None:
        put = self._put
        witnessed, witness_note = self._read_witnessed()
        targets = sorted({size for size, _ in self._checkpoints} | ({witnessed.size} if witnessed else set()))
        roots = self._roots(targets, receipts)
        bad = next(((s, r) for s, r in self._checkpoints if roots.get(s) != r), None)
        if not self._checkpoints:
            put(ROOTS, "SKIPPED", "the export holds no checkpoints")
        elif bad is None:
            last = self._checkpoints[-1][0]
            tail = f"; {receipts - last} receipts after the latest" if receipts > last else ""
            put(ROOTS, "PASS", f"all {len(self._checkpoints)} checkpoint roots recomputed, up to size {last}{tail}")
        elif bad[0] > receipts:
            put(ROOTS, "FAIL", f"a checkpoint is at size {bad[0]}, but the export holds {receipts} receipts")
        else:
            got = (roots.get(bad[0]) or b"").hex()[:16]
            put(ROOTS, "FAIL", f"at size {bad[0]} the leaves give root {got}.., the checkpoint {bad[1].hex()[:16]}..")
        if self._order_fault is not None:
            put(CONSISTENCY, "FAIL", self._order_fault)
        elif len(self._checkpoints) < 2:
            put(CONSISTENCY, "SKIPPED", f"{len(self._checkpoints)} checkpoint(s): nothing to compare")
        elif bad is not None:
            put(CONSISTENCY, "SKIPPED", "not established: a checkpoint's root is not of the exported leaves")
        else:
            detail = "sizes increase and every root is of a prefix of the same leaves: each extends the one before"
            put(CONSISTENCY, "PASS", detail)
        if witnessed is None:
            put(WITNESSED, "SKIPPED", "no witnessed checkpoint given (--witnessed): a deleted tail is not ruled out")
        elif witnessed.size > receipts:
            put(
                WITNESSED,
                "FAIL",
                f"tail deleted or history rewritten: a witnessed checkpoint is at size {witnessed.size},"
                f" the export holds {receipts} receipts",
            )
        elif roots.get(witnessed.size) != witnessed.root_hash:
            got = (roots.get(witnessed.size) or b"").hex()[:16]
            put(
                WITNESSED,
                "FAIL",
                f"tail deleted or history rewritten: at size {witnessed.size} the export's root is {got}..,"
                f" the witnessed root {witnessed.root_hash.hex()[:16]}..",
            )
        else:
            put(WITNESSED, "PASS", f"the export extends the witnessed checkpoint at size {witnessed.size}")
        self._witness_check(witness_note if self.witnessed is not None else self._latest_note)

    def _read_witnessed(self) -> tuple[Checkpoint | None, Note | None]:
        """The witnessed checkpoint, if given and the log's; else a FAIL line says why not."""
        if self.witnessed is None:
            return None, None
        try:
            note = parse_note(self.witnessed)
            checkpoint = parse_checkpoint(note.text)
        except (NoteError, CheckpointError) as exc:
            self._put(WITNESSED, "FAIL", f"the witnessed checkpoint is malformed: {exc}")
            return None, None
        if self._origin is not None and checkpoint.origin != self._origin:
            self._put(WITNESSED, "FAIL", f"the witnessed checkpoint is of {checkpoint.origin!r}, not {self._origin!r}")
            return None, note
        problem = self._log_signature_problem(note, checkpoint)
        if problem is not None:
            self._put(WITNESSED, "FAIL", f"the witnessed checkpoint is not the log's: {problem}")
            return None, note
        return checkpoint, note

    def _roots(self, sizes: list[int], receipts: int) -> dict[int, bytes]:
        """The root of the exported leaves at each size (none for a size beyond them)."""
        roots: dict[int, bytes] = {}
        border = CompactRange()
        leaves = self._leaves
        for size in sizes:
            if size > receipts:
                break
            for i in range(border.size, size):
                border, _ = border.append(leaf_hash(bytes(leaves[32 * i : 32 * i + 32])))
            roots[size] = border.root()
        return roots

    def _witness_check(self, note: Note | None) -> None:
        policy = self.trust.witnesses
        which = "the witnessed checkpoint" if self.witnessed is not None else "the latest exported checkpoint"
        if policy is None:
            self._put(WITNESSES, "SKIPPED", "no witness keys configured (--witness VKEY)")
            return
        if note is None:
            self._put(WITNESSES, "FAIL", f"no checkpoint to count cosignatures on: 0 of the {policy.quorum} required")
            return
        try:
            verified = verify_note(note, policy.cosigners).verified
        except UnverifiedNote:
            verified = ()
        except BadNoteSignature as exc:
            self._put(WITNESSES, "FAIL", f"{which}: {exc}")
            return
        ids = {c.name: c.key_id for c in policy.cosigners}
        stamps = {s.name: cosignature_timestamp(s.signature) for s in verified if ids.get(s.name) == s.key_id}
        now = self.trust.now
        if now is not None and any(t > now for t in stamps.values()):
            self._put(WITNESSES, "FAIL", f"{which}: a cosignature is dated in the future")
        elif len(stamps) < policy.quorum:
            missing = ", ".join(c.name for c in policy.cosigners if c.name not in stamps)
            self._put(WITNESSES, "FAIL", f"{which}: {len(stamps)} of the {policy.quorum} required; missing: {missing}")
        else:
            self._put(WITNESSES, "PASS", f"{which}: {len(stamps)} of {len(policy.cosigners)}: {', '.join(stamps)}")


def verify_chain_export(
    lines: Iterable[bytes], trust: Trust = NO_TRUST, *, witnessed: bytes | None = None
) -> list[Check]:
    """Every check of an exported chain (see the module docstring); lines as read from the file."""
    verifier = ExportVerifier(trust, witnessed=witnessed)
    for line in lines:
        verifier.feed(line)
    return verifier.checks()
