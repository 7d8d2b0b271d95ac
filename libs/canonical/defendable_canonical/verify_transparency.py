"""Verify a receipt's place in its org's transparency log offline (docs/transparency.md).

A receipt document may carry a ``transparency`` member: ``origin``, ``leaf_index``,
``tree_size`` and ``proof``, a C2SP tlog-proof (`tlog_proof.py`). What a verifier trusts is a
`Trust`: the ledger's published key set (``GET /.well-known/defendable-keys.json``, or a
copy pinned beforehand) and a k-of-n policy of witness cosigner keys. From those alone it
checks, each as its own PASS / FAIL / SKIPPED line:

- the proof package parses and agrees with the document's own ``origin``, ``leaf_index``
  and ``tree_size``;
- the checkpoint is of the org's log (``<origin_prefix>/<org_id>``);
- the leaf is the receipt's: leaf index ``seq − 1``;
- the inclusion proof leads from the receipt's leaf to the checkpoint's root;
- the key that signed the checkpoint is in the key set, and its signature verifies;
- enough of the pinned witnesses cosigned the checkpoint (none pinned: SKIPPED).

The authoritative step is `tlog_proof.verify_tlog_proof`; the lines only say which part of
it holds. A check never passes unless `verify_tlog_proof` accepted the package.
`verification.verify_document` adds these lines to its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from .checkpoint import Checkpoint, CheckpointError, parse_checkpoint, verify_checkpoint
from .cosignature import CosignatureVerifier, cosignature_timestamp
from .digest import digest_hex
from .merkle import ProofError, leaf_hash, verify_inclusion
from .note import Ed25519Verifier, InvalidSignature, Note, NoteError, UnverifiedNote, parse_note, verify_note
from .signature import b64url_strict
from .signature import key_id as receipt_key_id
from .tlog_api import log_origin
from .tlog_proof import TlogProof, TlogProofError, VerifiedProof, WitnessPolicy, parse_tlog_proof, verify_tlog_proof
from .verification import Check, Outcome

MAX_KEY_SET_BYTES = 1024 * 1024

PROOF = "proof package (C2SP tlog-proof)"
ORIGIN = "log origin"
LEAF = "leaf index"
INCLUSION = "inclusion proof (RFC 9162)"
LOG_KEY = "log key known"
LOG_SIGNATURE = "checkpoint signature (log key)"
WITNESSES = "witness cosignatures"
SIGNING_KEY = "signing key known"
TRANSPARENCY_CHECKS = (PROOF, ORIGIN, LEAF, INCLUSION, LOG_KEY, LOG_SIGNATURE, WITNESSES)


class KeySetError(ValueError):
    """A key set (trust root) that is malformed: unusable input, not a failed check."""


class PublishedKey(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``/.well-known/defendable-keys.json``; other members are ignored."""

    kid: str
    public_key: str  # base64url, no padding, of the raw 32-byte Ed25519 key
    alg: str = "Ed25519"
    status: str = ""


class KeySet(msgspec.Struct, frozen=True, kw_only=True):
    keys: tuple[PublishedKey, ...]
    origin_prefix: str | None = None  # <LEDGER_LOG_ORIGIN>; the log of org X is <origin_prefix>/X

    def raw(self, key: PublishedKey) -> bytes:
        return b64url_strict(key.public_key)

    def find(self, kid: str) -> PublishedKey | None:
        return next((k for k in self.keys if k.kid == kid), None)


@dataclass(frozen=True)
class Trust:
    """What the verifier trusts. ``source`` describes the trust root (where the keys came from,
    shown once); ``name`` is its short name in the details of the checks that use it."""

    keys: KeySet | None = None
    source: str = "no key set"
    name: str = "the key set"
    witnesses: WitnessPolicy | None = None
    now: int | None = None  # refuse cosignatures dated later (Unix seconds); None: no clock check


NO_TRUST = Trust()


def parse_key_set(data: bytes) -> KeySet:
    """A published key set, checked: every key Ed25519, 32 bytes, its kid SHA-256(key)[:16 hex]."""
    if len(data) > MAX_KEY_SET_BYTES:
        raise KeySetError(f"key set is {len(data)} bytes, more than {MAX_KEY_SET_BYTES}")
    try:
        keys = msgspec.json.decode(data, type=KeySet)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise KeySetError(f"not a key set ({{'keys': [{{'kid', 'public_key'}}, ...]}}): {exc}") from exc
    if not keys.keys:
        raise KeySetError("key set lists no keys")
    for key in keys.keys:
        try:
            raw = b64url_strict(key.public_key)
        except ValueError as exc:
            raise KeySetError(f"key {key.kid[:40]!r}: {exc}") from exc
        if key.alg != "Ed25519" or len(raw) != 32:
            raise KeySetError(f"key {key.kid[:40]!r} is not a raw 32-byte Ed25519 key")
        if receipt_key_id(raw) != key.kid:
            raise KeySetError(f"key {key.kid[:40]!r} does not match its public key (kid {receipt_key_id(raw)})")
    return keys


def witness_policy(vkeys: Sequence[str], required: int | None = None) -> WitnessPolicy | None:
    """``required`` of the cosigner vkeys (default: all of them); none given: no policy.

    Raises ValueError for a malformed vkey or an impossible quorum.
    """
    if not vkeys:
        if required:
            raise ValueError("a witness quorum needs witness keys (--witness VKEY)")
        return None
    try:
        cosigners = tuple(CosignatureVerifier.from_vkey(v.strip()) for v in vkeys)
        return WitnessPolicy(cosigners, len(cosigners) if required is None else required)
    except (NoteError, TlogProofError) as exc:
        raise ValueError(str(exc)) from exc


class Transparency(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``transparency`` member of a share document."""

    origin: str
    leaf_index: int
    tree_size: int
    proof: str  # c2sp.org/tlog-proof@v1 text


def signing_key_check(raw_signature: Any, trust: Trust) -> Check:
    """The receipt was signed by a key of the trust root's key set."""
    if trust.keys is None:
        return Check(SIGNING_KEY, "SKIPPED", "no key set given: the signature was checked against the key it carries")
    kid = raw_signature.get("kid") if isinstance(raw_signature, dict) else None
    public = raw_signature.get("public_key") if isinstance(raw_signature, dict) else None
    key = trust.keys.find(kid) if isinstance(kid, str) else None
    if key is None:
        return Check(SIGNING_KEY, "FAIL", f"key {str(kid)[:40]} is not in {trust.name}")
    if key.public_key != public:
        return Check(SIGNING_KEY, "FAIL", f"key {kid} of {trust.name} is not the public key the signature carries")
    status = f" ({key.status})" if key.status else ""
    return Check(SIGNING_KEY, "PASS", f"key {kid}{status} is in {trust.name}")


def transparency_checks(doc: dict[str, Any], digest: str, trust: Trust) -> list[Check]:
    """The transparency lines for a receipt document whose canonical payload hashes to ``digest``."""
    raw = doc.get("transparency")
    if raw is None:
        checks = [Check(name, "SKIPPED", "no proof in this document") for name in TRANSPARENCY_CHECKS[:-1]]
        if trust.witnesses is None:
            checks.append(Check(WITNESSES, "SKIPPED", "no proof in this document"))
        else:
            need = trust.witnesses.quorum
            checks.append(Check(WITNESSES, "FAIL", f"no proof in this document: 0 of the {need} cosignatures required"))
        return checks
    return _ProofCheck(doc, digest, trust).run()


class _Parsed(msgspec.Struct, frozen=True):
    data: bytes
    member: Transparency
    package: TlogProof
    note: Note
    checkpoint: Checkpoint


class _ProofCheck:
    def __init__(self, doc: dict[str, Any], digest: str, trust: Trust) -> None:
        self.doc, self.digest, self.trust = doc, digest, trust
        payload = doc.get("payload")
        self.payload: dict[str, Any] = payload if isinstance(payload, dict) else {}
        self.out: dict[str, Check] = {}

    def put(self, name: str, outcome: Outcome, detail: str) -> None:
        self.out[name] = Check(name, outcome, detail)

    def run(self) -> list[Check]:
        parsed = self.parse()
        if parsed is None:
            for name in TRANSPARENCY_CHECKS[1:]:
                self.put(name, "SKIPPED", "not checked: the proof package is unusable")
            return [self.out[name] for name in TRANSPARENCY_CHECKS]
        self.origin(parsed.checkpoint)
        self.leaf(parsed.package)
        log = self.log_key(parsed)
        proven: VerifiedProof | None = None
        refusal = "no log key to check the checkpoint with"
        if log is not None:
            try:
                proven = verify_tlog_proof(
                    parsed.data,
                    receipt_hash=self.digest,
                    origin=parsed.checkpoint.origin,
                    log=log,
                    witnesses=self.trust.witnesses,
                    now=self.trust.now,
                )
            except TlogProofError as exc:
                refusal = str(exc)
        if proven is not None and log is not None:
            self.accepted(parsed, proven, log)
        else:
            self.diagnose(parsed, log, refusal)
        return [self.out[name] for name in TRANSPARENCY_CHECKS]

    def parse(self) -> _Parsed | None:
        try:
            member = msgspec.convert(self.doc["transparency"], Transparency)
            data = member.proof.encode()
            package = parse_tlog_proof(data)
            note = parse_note(package.checkpoint)
            checkpoint = parse_checkpoint(note.text)
        except (msgspec.ValidationError, UnicodeEncodeError, TlogProofError, NoteError, CheckpointError) as exc:
            self.put(PROOF, "FAIL", f"unusable proof: {exc}")
            return None
        said = (member.origin, member.leaf_index, member.tree_size)
        proved = (checkpoint.origin, package.index, checkpoint.size)
        receipt = bytes.fromhex(digest_hex(self.digest))
        if said != proved:
            self.put(PROOF, "FAIL", f"the document says (origin, leaf, size) {said}, its proof {proved}")
        elif package.extra is not None and package.extra != receipt:
            self.put(PROOF, "FAIL", f"the proof is for receipt sha256:{package.extra.hex()[:16]}.., not this one")
        else:
            hashes = len(package.hashes)
            self.put(PROOF, "PASS", f"leaf {package.index} of tree size {checkpoint.size}, {hashes} proof hashes")
        return _Parsed(data, member, package, note, checkpoint)

    def origin(self, checkpoint: Checkpoint) -> None:
        org_id = self.payload.get("org_id")
        prefix = self.trust.keys.origin_prefix if self.trust.keys else None
        if not isinstance(org_id, str):
            self.put(ORIGIN, "FAIL", "the payload names no org_id")
        elif prefix is not None:
            expected = log_origin(prefix, org_id)
            if checkpoint.origin == expected:
                self.put(ORIGIN, "PASS", f"{expected}, the log of org {org_id} under {self.trust.name}")
            else:
                self.put(ORIGIN, "FAIL", f"the checkpoint is of {checkpoint.origin!r}, not the org's log {expected!r}")
        elif checkpoint.origin.endswith("/" + org_id):
            self.put(ORIGIN, "PASS", f"{checkpoint.origin} names org {org_id} (no origin prefix is trusted)")
        else:
            self.put(ORIGIN, "FAIL", f"the checkpoint is of {checkpoint.origin!r}, not a log of org {org_id}")

    def leaf(self, package: TlogProof) -> None:
        seq = self.payload.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self.put(LEAF, "FAIL", "the payload has no integer seq")
        elif package.index == seq - 1:
            self.put(LEAF, "PASS", f"leaf {package.index} is the receipt at seq {seq}")
        else:
            self.put(LEAF, "FAIL", f"the proof is for leaf {package.index}, but seq {seq} is leaf {seq - 1}")

    def log_key(self, parsed: _Parsed) -> Ed25519Verifier | None:
        """The key set's key that made the checkpoint's log signature (name: the origin)."""
        origin = parsed.checkpoint.origin
        ids = {s.key_id for s in parsed.note.signatures if s.name == origin}
        keys = self.trust.keys
        try:
            if keys is None:
                carried = self.doc.get("signature")
                public = carried.get("public_key") if isinstance(carried, dict) else None
                verifier = Ed25519Verifier(origin, b64url_strict(public if isinstance(public, str) else ""))
                if verifier.key_id in ids:
                    self.put(LOG_KEY, "SKIPPED", "no key set given: the log key is taken to be the receipt's own key")
                    return verifier
                self.put(LOG_KEY, "FAIL", "no key set given, and the receipt's own key did not sign the checkpoint")
                return None
            for key in keys.keys:
                verifier = Ed25519Verifier(origin, keys.raw(key))
                if verifier.key_id in ids:
                    status = f" ({key.status})" if key.status else ""
                    self.put(LOG_KEY, "PASS", f"key {key.kid}{status} of {self.trust.name}, as {origin}")
                    return verifier
        except (NoteError, ValueError) as exc:
            self.put(LOG_KEY, "FAIL", f"no log key for {origin[:80]!r}: {exc}")
            return None
        self.put(LOG_KEY, "FAIL", f"no key of {self.trust.name} signed the checkpoint as {origin}")
        return None

    def accepted(self, parsed: _Parsed, proven: VerifiedProof, log: Ed25519Verifier) -> None:
        checkpoint = parsed.checkpoint
        root = checkpoint.root_hash.hex()[:16]
        self.put(INCLUSION, "PASS", f"leaf {proven.index} leads to root {root}.. of tree size {checkpoint.size}")
        self.put(LOG_SIGNATURE, "PASS", f"signed by {log.name}+{log.key_id:08x}")
        policy = self.trust.witnesses
        if policy is None:
            others = sum(1 for s in parsed.note.signatures if s.name != checkpoint.origin)
            self.put(WITNESSES, "SKIPPED", f"no witness keys configured: {others} cosignature lines not checked")
        else:
            named = ", ".join(f"{c.name} at {_when(c.timestamp)}" for c in proven.cosigned)
            count = f"{len(proven.cosigned)} of {len(policy.cosigners)} (need {policy.quorum})"
            self.put(WITNESSES, "PASS", f"{count}: {named}")

    def diagnose(self, parsed: _Parsed, log: Ed25519Verifier | None, refusal: str) -> None:
        """`verify_tlog_proof` refused: say which part fails, each part checked on its own."""
        package, checkpoint, note = parsed.package, parsed.checkpoint, parsed.note
        try:
            leaf = leaf_hash(bytes.fromhex(digest_hex(self.digest)))
            verify_inclusion(leaf, package.index, checkpoint.size, package.hashes, checkpoint.root_hash)
        except ProofError as exc:
            self.put(INCLUSION, "FAIL", str(exc))
        else:
            root = checkpoint.root_hash.hex()[:16]
            self.put(INCLUSION, "PASS", f"leaf {package.index} leads to root {root}.. of tree size {checkpoint.size}")
        if log is None:
            self.put(LOG_SIGNATURE, "FAIL", "not checked: no known log key signed the checkpoint")
        else:
            try:
                verify_checkpoint(note, log=log)
            except (NoteError, CheckpointError) as exc:
                self.put(LOG_SIGNATURE, "FAIL", str(exc))
            else:
                self.put(LOG_SIGNATURE, "PASS", f"signed by {log.name}+{log.key_id:08x}")
        self.witnesses(note, checkpoint)
        if not any(self.out[name].outcome == "FAIL" for name in self.out):
            self.put(PROOF, "FAIL", refusal)  # never all PASS when the package was refused

    def witnesses(self, note: Note, checkpoint: Checkpoint) -> None:
        policy = self.trust.witnesses
        if policy is None:
            others = sum(1 for s in note.signatures if s.name != checkpoint.origin)
            self.put(WITNESSES, "SKIPPED", f"no witness keys configured: {others} cosignature lines not checked")
            return
        try:
            verified = verify_note(note, policy.cosigners).verified
        except UnverifiedNote:
            verified = ()
        except InvalidSignature as exc:
            self.put(WITNESSES, "FAIL", str(exc))
            return
        ids = {c.name: c.key_id for c in policy.cosigners}
        stamps = {s.name: cosignature_timestamp(s.signature) for s in verified if ids.get(s.name) == s.key_id}
        now = self.trust.now
        late = [name for name, t in stamps.items() if now is not None and t > now]
        missing = [c.name for c in policy.cosigners if c.name not in stamps]
        if late:
            self.put(WITNESSES, "FAIL", f"cosignature by {late[0]} is dated {_when(stamps[late[0]])}, in the future")
        elif len(stamps) < policy.quorum:
            self.put(
                WITNESSES,
                "FAIL",
                f"{len(stamps)} of the {policy.quorum} cosignatures required; missing: {', '.join(missing)}",
            )
        else:
            named = ", ".join(f"{name} at {_when(t)}" for name, t in stamps.items())
            self.put(WITNESSES, "PASS", f"{len(stamps)} of {len(policy.cosigners)} (need {policy.quorum}): {named}")


def _when(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return str(timestamp)
