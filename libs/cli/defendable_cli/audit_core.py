"""The pure core of `defendable audit replay`: recorded events and stored receipts in, divergences out.

No I/O and no clock: `audit.py` reads an org's RUNS events (stream order) and the ledger's
stored receipts (seq order, `tlog_api.ReceiptsQuery` pages) and feeds them to a `Replay`
in whatever interleaving it likes; every call returns the divergences it found.

What is compared (docs/audit-replay.md):

1. The referee, again: each recorded `Submitted` is re-checked with the referee's own
   `check_submission` and the Flight Sheet id@version it names, from the referee's sheet
   library, and the result is compared with the recorded `Checked` (`verdict_drift`). A
   version the library lacks, or holds under another hash, is `sheet_unavailable`. Runs whose
   check read evidence bytes (quoted text, dataset or compute files, an OTLP trail) are counted
   as not re-checked: the bytes are in S3, not in the stream.
2. The ledger, again: each receipt payload is rebuilt from the recorded Approved /
   CookApproved / IncidentAcknowledged / LaneUnlocked body with the ledger's own
   `mint.mint_request` and `receipt.build_any_payload`, at the stored seq, parent_hash and
   minted_at, and its bytes and hash compared with the stored ones (`hash_mismatch`); a
   Minted event announcing another seq or hash is one too.
3. The chain: every stored link (seq continuity, parent hash, stored bytes hashing to the
   recorded hash, the payload's own chain fields) — every broken link, not only the first
   (`chain_broken`) — and every signature, against the ledger's published keys when given
   (`bad_signature`).
4. The record: a receipt without its approval (or, for an eval receipt, without its
   RunCreated, Submitted or Checked) is `missing_event`; an approval without a stored
   receipt is `unminted`; recorded events of one run that disagree with one another (an
   approval body that is not what the run's Checked said, two different approvals of one
   run, a submission that does not hash to its digest) are `inconsistent`.

Memory: a run's state is a few digests and short strings while its receipt is outstanding;
once its receipt is compared only its seq, receipt hash and approval id stay (Minted
cross-check, duplicate approvals). Stored receipts waiting for their approval keep their
payload bytes only for the newest `retain_payloads` of them (for field-level detail).
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, Literal, NamedTuple, get_args

import msgspec

from defendable_canonical.chain import short
from defendable_canonical.digest import GENESIS_HASH, PREFIX, is_digest, sha256_digest
from defendable_canonical.events import (
    EVENT_NAMES,
    AnyEvent,
    Approved,
    Checked,
    CookApproved,
    Event,
    IncidentAcknowledged,
    LaneUnlocked,
    Minted,
    Rejected,
    RunCreated,
    Submitted,
)
from defendable_canonical.incident import UNLOCK_RECEIPT_SCHEMA
from defendable_canonical.model import (
    COOK_RECEIPT_SCHEMA,
    INCIDENT_RECEIPT_SCHEMA,
    EvidenceRef,
    Finding,
    FlightSheetRef,
    Signature,
    Verdict,
    receipt_schema_for,
)
from defendable_canonical.receipt import build_any_payload, payload_bytes
from defendable_canonical.redaction import evidence_name_path, opens, value_at
from defendable_canonical.signature import verify_signature
from defendable_canonical.tlog_api import StoredReceiptRow
from defendable_ledger.mint import MINT_EVENTS, MintEvent, MintRequest, Unmintable, mint_request
from defendable_referee.check import check_submission
from defendable_referee.errors import UnknownFlightSheet
from defendable_referee.evidence_files import reads_files
from defendable_referee.evidence_reader import is_trail, to_read
from defendable_referee.sheet import Library, LoadedSheet
from defendable_referee.text_rules import TEXT_RULE_KINDS

Kind = Literal[
    "verdict_drift",
    "sheet_unavailable",
    "hash_mismatch",
    "chain_broken",
    "bad_signature",
    "missing_event",
    "unminted",
    "inconsistent",
]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
# The history an eval receipt must have in the stream, by event name.
HISTORY: Final = ("created", "submitted", "checked")
RETAIN_PAYLOADS: Final = 4096


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    kind: Kind
    run_id: str = ""  # the run, cook, incident or unlock it concerns; "" for a link of the chain only
    seq: int | None = None  # the receipt's, when one is concerned
    detail: str


class Summary(msgspec.Struct, kw_only=True):
    """What the replay looked at. `divergences` counts them by kind (every kind listed)."""

    org_id: str
    from_seq: int
    events: int = 0  # events fed, of this org
    runs: int = 0  # runs with a Submitted
    rechecked: int = 0  # Submitted events re-checked by the referee's code
    not_rechecked: dict[str, int] = {}  # why the others were not, with counts
    receipts: int = 0  # stored receipts from `from_seq` on
    rebuilt: int = 0  # of them, rebuilt from their approval and compared
    out_of_range: int = 0  # approvals whose receipt is before `from_seq`
    pending: int = 0  # approvals younger than the grace period, not minted yet: not divergences
    divergences: dict[str, int] = {}  # live: counted as they are found


# ---------------------------------------------------------------- compact per-run facts


class _Created(NamedTuple):
    event_id: str
    project: str
    lane: str
    profile_d: bytes
    assignment_sha256: str
    sheet_key: str


class _Submitted(NamedTuple):
    event_id: str
    lane: str
    sheet_key: str
    evidence_d: bytes
    submission_sha256: str


class _Checked(NamedTuple):
    event_id: str
    sheet: FlightSheetRef
    submission_sha256: str
    findings_d: bytes
    verdict_d: bytes
    trail_d: bytes
    # Held only while the re-check it is compared with has not happened yet.
    findings: list[Finding] | None
    verdict: Verdict | None


class _Recheck(NamedTuple):
    sheet: FlightSheetRef
    findings: list[Finding]
    verdict: Verdict


class _Run:
    __slots__ = ("checked", "created", "looked_up", "recheck", "submitted")

    def __init__(self) -> None:
        self.created: _Created | None = None
        self.submitted: _Submitted | None = None
        self.recheck: _Recheck | None = None
        self.checked: _Checked | None = None
        self.looked_up = False


class _Stored:
    """A stored receipt waiting for its approval."""

    __slots__ = ("actual", "minted_at", "parent_hash", "payload", "receipt_hash", "schema", "seq")

    def __init__(
        self, seq: int, receipt_hash: str, parent_hash: str, minted_at: str, schema: str, actual: str, payload: bytes
    ) -> None:
        self.seq = seq
        self.receipt_hash = receipt_hash
        self.parent_hash = parent_hash
        self.minted_at = minted_at
        self.schema = schema
        self.actual = actual  # the hash of the stored bytes, kept when the bytes are not
        self.payload: bytes | None = payload


class _Unminted(NamedTuple):
    event_type: str
    event_id: str
    occurred_at: str


class _PayloadKeys(msgspec.Struct, frozen=True):
    """The fields of a stored payload the replay joins and links on; msgspec skips the rest."""

    schema: str
    org_id: str
    seq: int
    parent_hash: str
    minted_at: str
    run_id: str = ""
    incident_id: str = ""
    unlock_id: str = ""


_keys_decoder = msgspec.json.Decoder(_PayloadKeys)
_signature_decoder = msgspec.json.Decoder(Signature)
_encoder = msgspec.json.Encoder()


def revealed_evidence(event: Approved) -> list[EvidenceRef]:
    """The receipt's evidence with redacted names put back from the disclosures, as Submitted
    recorded it; `Replay._disclosures` checks that each disclosure opens its commitment."""
    if not event.disclosures:
        return event.receipt.evidence
    names = {d.path: d.value for d in event.disclosures}
    return [
        msgspec.structs.replace(ref, name=names.get(evidence_name_path(i), ref.name))
        for i, ref in enumerate(event.receipt.evidence)
    ]


def _d(value: object) -> bytes:
    """A 16-byte digest of a value's JSON encoding: enough to tell two apart, small to hold."""
    if value is msgspec.UNSET:
        return b""
    return hashlib.blake2b(_encoder.encode(value), digest_size=16).digest()


def receipt_key(schema: str, run_id: str, incident_id: str, unlock_id: str) -> str:
    """The (org-unique) key the ledger mints one receipt for: the run's, cook's, incident's or unlock's id."""
    if schema == INCIDENT_RECEIPT_SCHEMA:
        return incident_id
    if schema == UNLOCK_RECEIPT_SCHEMA:
        return unlock_id
    return run_id


def mint_event_name(schema: str) -> str:
    """The event (its subject name) that asks for a receipt of this schema."""
    kind: type[MintEvent] = Approved
    if schema == COOK_RECEIPT_SCHEMA:
        kind = CookApproved
    elif schema == INCIDENT_RECEIPT_SCHEMA:
        kind = IncidentAcknowledged
    elif schema == UNLOCK_RECEIPT_SCHEMA:
        kind = LaneUnlocked
    return EVENT_NAMES[kind]


def needs_evidence_bytes(sheet: LoadedSheet, submitted: Submitted) -> str | None:
    """Why the referee's check of this submission read evidence bytes (which only S3 holds), or None.

    Mirrors the referee (app.py): an OTLP trail item is always read; a sheet with file rules
    reads every file; a sheet with text rules reads the text items within the budgets.
    """
    if any(is_trail(ref) for ref in submitted.evidence):
        return "it has an OTLP trail (evidence bytes)"
    if reads_files(sheet.sheet):
        return "its sheet computes from the evidence files"
    if any(rule.kind in TEXT_RULE_KINDS for rule in sheet.sheet.rules) and to_read(
        submitted.evidence, text=True, trail=False
    ):
        return "its sheet quotes the evidence text"
    return None


def drift(recheck: _Recheck, sheet: FlightSheetRef, findings: Sequence[Finding], verdict: Verdict) -> str | None:
    """How a recorded check differs from the re-check (None: it does not)."""
    parts: list[str] = []
    if sheet != recheck.sheet:
        parts.append(
            f"checked under {sheet.id}@{sheet.version} {short(sheet.sha256)}, re-checked under"
            f" {recheck.sheet.id}@{recheck.sheet.version} {short(recheck.sheet.sha256)}"
        )
    if verdict != recheck.verdict:
        was, now = verdict, recheck.verdict
        parts.append(
            f"verdict was {was.severity} {was.score} {was.recommended_action},"
            f" re-derives to {now.severity} {now.score} {now.recommended_action}"
            if (was.severity, was.score, was.recommended_action) != (now.severity, now.score, now.recommended_action)
            else "verdict differs in its flags or risk breakdown"
        )
    if list(findings) != recheck.findings:
        recorded = {f.rule_id: f for f in findings}
        rederived = {f.rule_id: f for f in recheck.findings}
        changed = [r for r in dict.fromkeys([*recorded, *rederived]) if recorded.get(r) != rederived.get(r)]
        shown = []
        for rule_id in changed[:3]:
            a, b = _finding(recorded.get(rule_id)), _finding(rederived.get(rule_id))
            if a == b:  # the same outcome, told otherwise
                a, b = (
                    repr(f.message[:60]) if f else "absent" for f in (recorded.get(rule_id), rederived.get(rule_id))
                )
            shown.append(f"{rule_id} {a} → {b}")
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        parts.append("findings: " + "; ".join(shown) + more if changed else "findings are in another order")
    return "; ".join(parts) or None


def _finding(finding: Finding | None) -> str:
    if finding is None:
        return "absent"
    return finding.status + (f"/{finding.tier}" if finding.tier else "")


def _field_diff(rebuilt: bytes, stored: bytes) -> str:
    """The top-level payload members whose values differ (or: the bytes are not JSON)."""
    try:
        a, b = msgspec.json.decode(rebuilt), msgspec.json.decode(stored)
    except msgspec.DecodeError:
        return "the stored bytes are not JSON"
    if not isinstance(b, dict) or not isinstance(a, dict):
        return "the stored bytes are not a JSON object"
    names = [k for k in dict.fromkeys([*a, *b]) if a.get(k, ...) != b.get(k, ...)]
    if not names:
        return "the same members, in other bytes (not canonical JSON)"
    return ", ".join(names[:6]) + (" …" if len(names) > 6 else "")


def _is_after(occurred_at: str, now: datetime, grace_s: float) -> bool:
    """True when `occurred_at` is later than `grace_s` before `now` (or unreadable: not young)."""
    try:
        at = datetime.fromisoformat(occurred_at)
    except ValueError:
        return False
    if at.tzinfo is None or now.tzinfo is None:
        return False
    return (now - at).total_seconds() < grace_s


# ---------------------------------------------------------------- the replay


class Replay:
    """One org's audit replay. Feed `on_event` (stream order) and `on_receipts` (seq order),
    call `receipts_exhausted` once the ledger has no more, feed what `lookups` names, then
    `finish`. `awaits_receipt` and `history_to_fetch` tell the caller what to fetch first.

    `library`: the referee's sheets; None skips the re-check. `keys`: kid -> public key of the
    ledger's published key set; None checks each signature against its own key only.
    `now` and `grace_s`: an approval younger than that is pending, not unminted.
    """

    def __init__(
        self,
        org_id: str,
        *,
        library: Library | None,
        from_seq: int = 1,
        keys: Mapping[str, str] | None = None,
        now: datetime | None = None,
        grace_s: float = 0.0,
        retain_payloads: int = RETAIN_PAYLOADS,
    ) -> None:
        if from_seq < 1:
            raise ValueError(f"from_seq must be at least 1, not {from_seq}")
        self.org_id = org_id
        self.from_seq = from_seq
        self._library = library
        self._keys = dict(keys) if keys is not None else None
        self._now = now
        self._grace_s = grace_s
        self._retain = retain_payloads
        self._runs: dict[str, _Run] = {}
        self._pending: dict[str, _Stored] = {}  # stored receipts waiting for their approval
        self._retained: deque[_Stored] = deque()  # of those, the ones still holding payload bytes
        self._waiting: dict[str, tuple[MintEvent, MintRequest]] = {}  # approvals waiting for a receipt
        self._unminted: dict[str, _Unminted] = {}  # approvals no receipt can come for any more
        self._done: dict[str, bytes] = {}  # key -> seq (8 bytes) + receipt hash (32) + approval event id
        self._minted_early: dict[str, tuple[int, str]] = {}  # Minted before its receipt was compared
        self._minted_late: dict[str, tuple[int, str]] = {}  # Minted for an unminted approval
        self._before_range: set[str] = set()  # keys minted before from_seq (by their Minted event)
        self._prev_seq = from_seq - 1
        self._prev_hash: str | None = GENESIS_HASH if from_seq == 1 else None
        self._exhausted = False
        self._not_rechecked: Counter[str] = Counter()
        self.summary = Summary(org_id=org_id, from_seq=from_seq, divergences=dict.fromkeys(KINDS, 0))

    # -- pacing hints for the caller

    @property
    def pending_receipts(self) -> int:
        return len(self._pending)

    def awaits_receipt(self, event: AnyEvent) -> bool:
        """A mint event of this org whose stored receipt has not been fed yet (nor can be
        known to be out of range): the caller should feed more receipts first, if any."""
        if not isinstance(event, MINT_EVENTS) or event.org_id != self.org_id or self._exhausted:
            return False
        key = event.run_id
        return key not in self._pending and key not in self._done and key not in self._before_range

    def history_to_fetch(self, event: AnyEvent) -> list[str]:
        """For an Approved whose run's RunCreated, Submitted or Checked has not been fed (the
        stream was replayed from later on, or the event came from a lookup): those event names,
        once per run. The caller fetches them by subject and feeds them before the approval."""
        if not isinstance(event, Approved) or event.org_id != self.org_id or event.run_id in self._done:
            return []
        run = self._runs.setdefault(event.run_id, _Run())
        if run.looked_up:
            return []
        run.looked_up = True
        have = {"created": run.created, "submitted": run.submitted, "checked": run.checked}
        return [name for name in HISTORY if have[name] is None]

    def minted_wanted(self, event: AnyEvent) -> bool:
        """With `from_seq` > 1: a mint event whose Minted event would tell whether its receipt
        is before the range (so that no receipts need be fetched to find out)."""
        return self.from_seq > 1 and self.awaits_receipt(event)

    def lookups(self) -> list[tuple[str, str]]:
        """(event name, key) to fetch by subject once the stream and the receipts are read: the
        approval of each receipt that has none yet (it may precede the replayed part of the
        stream, or follow its end), and, from a later seq on, the Minted event of each approval
        without a receipt."""
        wanted = [(mint_event_name(stored.schema), key) for key, stored in self._pending.items()]
        if self.from_seq > 1:
            wanted += [(EVENT_NAMES[Minted], key) for key in self._unminted if key not in self._minted_late]
        return wanted

    # -- feeding

    def on_event(self, event: AnyEvent) -> list[Divergence]:
        if event.org_id != self.org_id:
            return []
        self.summary.events += 1
        match event:
            case RunCreated():
                return self._created(event)
            case Submitted():
                return self._submitted(event)
            case Checked():
                return self._checked(event)
            case Approved() | CookApproved() | IncidentAcknowledged() | LaneUnlocked():
                return self._approval(event)
            case Minted():
                return self._minted(event)
            case Rejected():
                if event.run_id not in self._done:
                    self._runs.pop(event.run_id, None)
                return []
            case _:
                return []

    def on_receipts(self, rows: Sequence[StoredReceiptRow]) -> list[Divergence]:
        out: list[Divergence] = []
        for row in rows:
            out += self._receipt(row)
        return out

    def receipts_exhausted(self) -> list[Divergence]:
        """The ledger has no more receipts: approvals still waiting can never get one."""
        self._exhausted = True
        for key, (event, _) in self._waiting.items():
            self._unminted[key] = _Unminted(type(event).__name__, event.event_id, event.occurred_at)
        self._waiting.clear()
        return []

    def finish(self) -> list[Divergence]:
        out: list[Divergence] = []
        if not self._exhausted:
            self.receipts_exhausted()
        for key, stored in self._pending.items():
            name = mint_event_name(stored.schema)
            out.append(
                self._div(
                    "missing_event", key, stored.seq, f"the ledger stores a receipt, but no {name} event asked for it"
                )
            )
        for key, unminted in self._unminted.items():
            if self._now is not None and _is_after(unminted.occurred_at, self._now, self._grace_s):
                self.summary.pending += 1
                continue
            minted = self._minted_late.get(key)
            said = f"; a Minted event announced seq {minted[0]} {short(minted[1])}" if minted else ""
            out.append(
                self._div(
                    "unminted",
                    key,
                    minted[0] if minted else None,
                    f"{unminted.event_type} {unminted.event_id} at {unminted.occurred_at}, but the ledger stores"
                    f" no receipt for it{said}",
                )
            )
        for key, (seq, digest) in self._minted_early.items():
            if key not in self._unminted and key not in self._done and key not in self._pending:
                out.append(
                    self._div(
                        "missing_event",
                        key,
                        seq,
                        f"a Minted event announced seq {seq} {short(digest)}, but neither its approval nor"
                        " its receipt is there",
                    )
                )
        self._minted_early.clear()
        self.summary.not_rechecked = dict(self._not_rechecked)
        return out

    # -- events

    def undecodable(self, subject: str, stream_seq: int, reason: str) -> Divergence:
        """An event on the org's subjects that is no event of ours (the services dead-letter such)."""
        run_id = subject.rsplit(".", 1)[-1]
        return self._div(
            "inconsistent", run_id, None, f"undecodable event at RUNS seq {stream_seq} ({subject}): {reason}"
        )

    def _div(self, kind: Kind, run_id: str, seq: int | None, detail: str) -> Divergence:
        self.summary.divergences[kind] += 1
        return Divergence(kind=kind, run_id=run_id, seq=seq, detail=detail)

    def _run(self, run_id: str) -> _Run | None:
        """The run's state, made on first use; None once its receipt has been compared."""
        if run_id in self._done:
            return None
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run()
        return run

    def _repeat(self, first_id: str | None, event: Event, run_id: str) -> list[Divergence] | None:
        """None for the first event of its kind for a run; [] for a redelivery of that same event;
        a divergence for a second, different one (the first one stands)."""
        if first_id is None:
            return None
        if first_id == event.event_id:
            return []
        return [self._div("inconsistent", run_id, None, f"a second {type(event).__name__} ({event.event_id})")]

    def _created(self, event: RunCreated) -> list[Divergence]:
        run = self._run(event.run_id)
        if run is None:
            return []
        if (repeat := self._repeat(run.created and run.created.event_id, event, event.run_id)) is not None:
            return repeat
        run.created = _Created(
            event.event_id,
            event.project,
            event.lane,
            _d(event.agent_profile),
            event.assignment_sha256,
            event.flight_sheet.key,
        )
        out = []
        if run.submitted is not None and (run.submitted.lane, run.submitted.sheet_key) != (
            event.lane,
            run.created.sheet_key,
        ):
            out.append(self._div("inconsistent", event.run_id, None, "Submitted names another lane or sheet"))
        return out

    def _submitted(self, event: Submitted) -> list[Divergence]:
        run = self._run(event.run_id)
        if run is None:
            return []
        if (repeat := self._repeat(run.submitted and run.submitted.event_id, event, event.run_id)) is not None:
            return repeat
        self.summary.runs += 1
        sheet_key = event.flight_sheet.key
        run.submitted = _Submitted(event.event_id, event.lane, sheet_key, _d(event.evidence), event.submission_sha256)
        out: list[Divergence] = []
        actual = sha256_digest(bytes(event.submission))
        if actual != event.submission_sha256:
            out.append(
                self._div(
                    "inconsistent",
                    event.run_id,
                    None,
                    f"the submission hashes to {short(actual)}, Submitted records {short(event.submission_sha256)}",
                )
            )
        if run.created is not None and (run.created.lane, run.created.sheet_key) != (event.lane, sheet_key):
            out.append(
                self._div(
                    "inconsistent",
                    event.run_id,
                    None,
                    f"Submitted names {event.lane} {sheet_key}, RunCreated {run.created.lane} {run.created.sheet_key}",
                )
            )
        recheck, problem = self._recheck(event)
        if problem is not None:
            out.append(problem)
        checked = run.checked
        if recheck is not None and checked is not None and checked.findings is not None and checked.verdict is not None:
            out += self._compare_check(event.run_id, recheck, checked.sheet, checked.findings, checked.verdict)
            run.checked = checked._replace(findings=None, verdict=None)
        elif recheck is not None:
            run.recheck = recheck
        return out

    def _recheck(self, event: Submitted) -> tuple[_Recheck | None, Divergence | None]:
        if self._library is None:
            self._not_rechecked["re-check not asked for"] += 1
            return None, None
        ref = event.flight_sheet
        try:
            sheet = self._library.get(ref.id, ref.version)
        except UnknownFlightSheet:
            self._not_rechecked["sheet not in the library"] += 1
            detail = f"the referee's library has no {ref.id}@{ref.version}: the verdict cannot be re-derived"
            return None, self._div("sheet_unavailable", event.run_id, None, detail)
        if sheet.sha256 != ref.sha256:
            self._not_rechecked["sheet not in the library"] += 1
            detail = (
                f"the library's {ref.id}@{ref.version} hashes to {short(sheet.sha256)}, the run names"
                f" {short(ref.sha256)}: the verdict cannot be re-derived"
            )
            return None, self._div("sheet_unavailable", event.run_id, None, detail)
        blocker = needs_evidence_bytes(sheet, event)
        if blocker is not None:
            self._not_rechecked[blocker] += 1
            return None, None
        try:
            findings, verdict = check_submission(sheet, bytes(event.submission), event.evidence)
        except Exception as exc:  # the referee never raises on a submission; if it does, that is drift
            detail = f"re-checking raised {type(exc).__name__}: {str(exc)[:200]}"
            return None, self._div("verdict_drift", event.run_id, None, detail)
        self.summary.rechecked += 1
        return _Recheck(sheet.ref(), findings, verdict), None

    def _checked(self, event: Checked) -> list[Divergence]:
        run = self._run(event.run_id)
        if run is None:
            return []
        if (repeat := self._repeat(run.checked and run.checked.event_id, event, event.run_id)) is not None:
            return repeat
        out: list[Divergence] = []
        submitted = run.submitted
        if submitted is not None and event.causation_id != submitted.event_id:
            detail = (
                f"Checked {event.event_id} answers {event.causation_id}, not the run's Submitted {submitted.event_id}"
            )
            out.append(self._div("inconsistent", event.run_id, None, detail))
        if submitted is not None and event.submission_sha256 != submitted.submission_sha256:
            detail = f"Checked is of submission {short(event.submission_sha256)}, Submitted recorded another"
            out.append(self._div("inconsistent", event.run_id, None, detail))
        hold = submitted is None  # the re-check happens when the Submitted comes
        run.checked = _Checked(
            event.event_id,
            event.flight_sheet,
            event.submission_sha256,
            _d(event.findings),
            _d(event.verdict),
            _d(event.execution_trail),
            event.findings if hold else None,
            event.verdict if hold else None,
        )
        if run.recheck is not None:
            out += self._compare_check(event.run_id, run.recheck, event.flight_sheet, event.findings, event.verdict)
            run.recheck = None
        return out

    def _compare_check(
        self, run_id: str, recheck: _Recheck, sheet: FlightSheetRef, findings: Sequence[Finding], verdict: Verdict
    ) -> list[Divergence]:
        detail = drift(recheck, sheet, findings, verdict)
        return [] if detail is None else [self._div("verdict_drift", run_id, None, detail)]

    def _approval(self, event: MintEvent) -> list[Divergence]:
        try:
            request = mint_request(event)
        except Unmintable as exc:
            return [self._div("inconsistent", event.run_id, None, f"the ledger cannot mint it: {exc}")]
        key = request.run_id
        done = self._done.get(key)
        if done is not None:
            first = done[40:].decode()
            if first == event.event_id:
                return []
            seq = struct.unpack(">Q", done[:8])[0]
            detail = (
                f"a second {type(event).__name__} ({event.event_id}) for what seq {seq} was minted from ({first});"
                " the ledger keeps one receipt per run"
            )
            return [self._div("inconsistent", key, seq, detail)]
        if key in self._before_range:
            self.summary.out_of_range += 1
            return []
        earlier = self._waiting.get(key)
        unminted = self._unminted.get(key)
        first_id = earlier[0].event_id if earlier else unminted.event_id if unminted else None
        if (repeat := self._repeat(first_id, event, key)) is not None:
            return repeat
        stored = self._pending.pop(key, None)
        if stored is None:
            if self._exhausted:
                self._unminted[key] = _Unminted(type(event).__name__, event.event_id, event.occurred_at)
            else:
                self._waiting[key] = (event, request)
            return []
        return self._settle(event, request, stored)

    def _disclosures(self, event: Approved, seq: int) -> list[Divergence]:
        """Each redacted field must have the disclosure that opens it (docs/redaction.md): else the
        org could never reveal it, or would reveal a value the receipt does not commit to."""
        body = msgspec.to_builtins(event.receipt)
        listed = set(event.receipt.redacted) if isinstance(event.receipt.redacted, list) else set()
        disclosed = {d.path for d in event.disclosures}
        problems = [f"{path} has no disclosure" for path in sorted(listed - disclosed)]
        problems += [f"a disclosure of {path}, which is not redacted" for path in sorted(disclosed - listed)]
        problems += [
            f"the disclosure of {d.path} does not open its commitment"
            for d in event.disclosures
            if d.path in listed and not opens(d, value_at(body, d.path))
        ]
        return [self._div("inconsistent", event.run_id, seq, "; ".join(problems))] if problems else []

    def _settle(self, event: MintEvent, request: MintRequest, stored: _Stored) -> list[Divergence]:
        """Rebuild the receipt from the approval at the stored chain fields, and compare."""
        key = request.run_id
        out: list[Divergence] = []
        rebuilt = payload_bytes(build_any_payload(request.body, stored.seq, stored.parent_hash, stored.minted_at))
        digest = sha256_digest(rebuilt)
        self.summary.rebuilt += 1
        problems = []
        if digest != stored.receipt_hash:
            problems.append(
                f"the approval rebuilds to {short(digest)}, the ledger records {short(stored.receipt_hash)}"
            )
        if digest != stored.actual:
            where = _field_diff(rebuilt, stored.payload) if stored.payload is not None else "bytes not retained"
            problems.append(f"the stored payload differs from the rebuilt one ({where})")
        if problems:
            out.append(self._div("hash_mismatch", key, stored.seq, "; ".join(problems)))
        if isinstance(event, Approved):
            out += self._against_history(event, stored.seq)
            if event.disclosures or event.receipt.redacted:
                out += self._disclosures(event, stored.seq)
        minted = self._minted_early.pop(key, None)
        if minted is not None:
            out += self._against_minted(key, minted, stored.seq, stored.receipt_hash)
        self._runs.pop(key, None)
        raw = bytes.fromhex(stored.receipt_hash[len(PREFIX) :]) if is_digest(stored.receipt_hash) else bytes(32)
        self._done[key] = struct.pack(">Q", stored.seq) + raw + event.event_id.encode()
        return out

    def _against_history(self, event: Approved, seq: int) -> list[Divergence]:
        """An eval receipt's body against the run's recorded RunCreated, Submitted and Checked."""
        body = event.receipt
        run = self._runs.get(event.run_id) or _Run()
        out: list[Divergence] = []
        names = {"created": "RunCreated", "submitted": "Submitted", "checked": "Checked"}
        have = {"created": run.created, "submitted": run.submitted, "checked": run.checked}
        missing = [names[n] for n in HISTORY if have[n] is None]
        if missing:
            detail = f"the receipt's run has no {', '.join(missing)} event in the stream"
            out.append(self._div("missing_event", event.run_id, seq, detail))
        differs: list[str] = []
        if body.schema != receipt_schema_for(body.lane):
            differs.append(f"schema {body.schema!r} is not the {body.lane} lane's")
        if run.created is not None:
            c = run.created
            fields = [
                ("project", body.project == c.project),
                ("lane", body.lane == c.lane),
                ("agent_profile", _d(body.agent_profile) == c.profile_d),
                ("assignment_sha256", body.assignment_sha256 == c.assignment_sha256),
                ("flight_sheet", body.flight_sheet.key == c.sheet_key),
            ]
            wrong = [name for name, same in fields if not same]
            if wrong:
                differs.append(f"{', '.join(wrong)} not as RunCreated recorded")
        if run.submitted is not None:
            s = run.submitted
            fields = [
                ("lane", body.lane == s.lane),
                ("submission_sha256", body.submission_sha256 == s.submission_sha256),
                ("evidence", _d(revealed_evidence(event)) == s.evidence_d),
            ]
            wrong = [name for name, same in fields if not same]
            if wrong:
                differs.append(f"{', '.join(wrong)} not as Submitted recorded")
        if run.checked is not None:
            k = run.checked
            fields = [
                ("flight_sheet", body.flight_sheet == k.sheet),
                ("submission_sha256", body.submission_sha256 == k.submission_sha256),
                ("findings", _d(body.findings) == k.findings_d),
                ("verdict", _d(body.verdict) == k.verdict_d),
                ("execution_trail", _d(body.execution_trail) == k.trail_d),
            ]
            wrong = [name for name, same in fields if not same]
            if wrong:
                differs.append(f"{', '.join(wrong)} not as Checked recorded")
        if differs:
            detail = f"Approved {event.event_id}: " + "; ".join(differs)
            out.append(self._div("inconsistent", event.run_id, seq, detail))
        return out

    def _minted(self, event: Minted) -> list[Divergence]:
        key = event.run_id
        if event.seq < self.from_seq:
            self._before_range.add(key)
            if self._waiting.pop(key, None) is not None or self._unminted.pop(key, None) is not None:
                self.summary.out_of_range += 1
            return []
        done = self._done.get(key)
        if done is not None:
            seq = struct.unpack(">Q", done[:8])[0]
            return self._against_minted(key, (event.seq, event.receipt_hash), seq, PREFIX + done[8:40].hex())
        if key in self._unminted:
            self._minted_late[key] = (event.seq, event.receipt_hash)
        else:
            self._minted_early[key] = (event.seq, event.receipt_hash)
        return []

    def _against_minted(self, key: str, minted: tuple[int, str], seq: int, receipt_hash: str) -> list[Divergence]:
        if minted == (seq, receipt_hash):
            return []
        detail = (
            f"a Minted event announced seq {minted[0]} {short(minted[1])}, the ledger stores seq {seq}"
            f" {short(receipt_hash)}"
        )
        return [self._div("hash_mismatch", key, seq, detail)]

    # -- stored receipts

    def _receipt(self, row: StoredReceiptRow) -> list[Divergence]:
        if row.seq < self.from_seq:  # the link before the range: only anchors the first one in it
            if row.seq == self.from_seq - 1:
                self._prev_seq, self._prev_hash = row.seq, row.receipt_hash
            return []
        self.summary.receipts += 1
        out: list[Divergence] = []
        data = bytes(row.payload)
        actual = sha256_digest(data)
        problems: list[str] = []
        if row.seq != self._prev_seq + 1:
            problems.append(f"seq {row.seq} follows seq {self._prev_seq}")
        if actual != row.receipt_hash:
            problems.append(
                f"the stored payload hashes to {short(actual)} but is recorded as {short(row.receipt_hash)}"
            )
        if self._prev_hash is not None and row.parent_hash != self._prev_hash:
            before = "genesis" if self._prev_seq == 0 else f"seq {self._prev_seq}"
            problems.append(f"parent_hash is {short(row.parent_hash)} but {before} is {short(self._prev_hash)}")
        keys: _PayloadKeys | None = None
        try:
            keys = _keys_decoder.decode(data)
        except msgspec.DecodeError as exc:
            problems.append(f"the stored payload is not a receipt payload: {exc}")
        if keys is not None:
            if (keys.seq, keys.parent_hash) != (row.seq, row.parent_hash):
                problems.append("the payload's own seq or parent_hash differs from the stored ones")
            if keys.org_id != self.org_id:
                problems.append(f"the payload names org {keys.org_id!r}")
        key = receipt_key(keys.schema, keys.run_id, keys.incident_id, keys.unlock_id) if keys is not None else ""
        if key and (key in self._pending or key in self._done):
            problems.append(f"a second receipt for {key}")
        if problems:
            out.append(self._div("chain_broken", key, row.seq, "; ".join(problems)))
        self._prev_seq, self._prev_hash = row.seq, row.receipt_hash
        if (problem := self._signature_problem(row)) is not None:
            out.append(self._div("bad_signature", key, row.seq, problem))
        if keys is None or not key or key in self._pending or key in self._done:
            return out
        stored = _Stored(row.seq, row.receipt_hash, row.parent_hash, keys.minted_at, keys.schema, actual, data)
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            return out + self._settle(waiting[0], waiting[1], stored)
        self._pending[key] = stored
        self._retained.append(stored)
        while len(self._retained) > self._retain:
            self._retained.popleft().payload = None
        return out

    def _signature_problem(self, row: StoredReceiptRow) -> str | None:
        try:
            signature = _signature_decoder.decode(row.signature)
        except msgspec.DecodeError as exc:
            return f"the stored signature is not a signature: {exc}"
        if self._keys is not None:
            published = self._keys.get(signature.kid)
            if published is None:
                return f"signed by key {signature.kid}, which the ledger does not publish"
            if published != signature.public_key:
                return f"key {signature.kid} is published with another public key"
        return verify_signature(signature, row.receipt_hash)
