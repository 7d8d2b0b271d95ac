"""`defendable audit replay --org ORG [--from SEQ]`: replay an org's record and report every divergence.

Reads the org's events from the RUNS stream and the ledger's stored receipts (the `receipts`
question on `svc.ledger.tlog`, page by page), re-runs the referee on every submission and
rebuilds every receipt; what is compared, and each divergence kind, is in
docs/audit-replay.md and `audit_core` (the pure part). Exit codes: 0 no divergence, 1 at
least one, 2 unusable input (a bad option, NATS or the ledger unreachable, no RUNS stream).

Plan:
1. connect; the RUNS stream's last sequence now is where the replay stops reading; the
   ledger's published keys;
2. with --from SEQ: the receipts from SEQ - 1 (its hash anchors seq SEQ's link) and the
   stream position of seq SEQ's run, to start reading there;
3. an ephemeral pull consumer over the org's lifecycle subjects (no acks, memory storage,
   deleted at the end and dropped by the server after INACTIVE_S if the replay dies; the
   services' durable consumers never see it); every event goes to the core, and before a
   mint event whose receipt the core has not seen, the next pages of receipts; an approval's
   missing history (and, from a later seq, its Minted event) is fetched by subject;
4. the receipts the stream did not reach, the approvals the core still wants (by subject),
   then `finish`;
5. the report: text, or JSON with --json; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from defendable_canonical.subjects import LEDGER_KEYS, LEDGER_TLOG, RUNS_STREAM, check_token
from defendable_cli.progress import Progress

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from defendable_canonical.events import AnyEvent
    from defendable_canonical.tlog_api import StoredReceiptRow
    from defendable_cli.audit_core import Divergence, Replay, Summary

# The events the replay reads (subject names, `EVENT_NAMES`): the rest of a run's
# (evidence, rendered, refusals, checkpoints) carry nothing a receipt is rebuilt from.
FILTERED = (
    "created",
    "submitted",
    "checked",
    "rejected",
    "approved",
    "cook_approved",
    "incident_acknowledged",
    "lane_unlocked",
    "minted",
)
FETCH_BATCH = 1000  # events per pull request
FETCH_BYTES = 16 * 1024 * 1024  # and at most this much of them (a cook's approval is up to ~6.4 MB)
FETCH_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
INACTIVE_S = 120.0  # a consumer left by a killed replay is removed by the server after this
MAX_LISTED = 10_000  # divergences kept for the report; the counts are always complete
PROGRESS_EVERY_S = 1.0
EXIT_OK, EXIT_DIVERGED, EXIT_UNUSABLE = 0, 1, 2


class Unusable(Exception):
    """Exit 2: the replay could not be done (the message says why)."""


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class Report(msgspec.Struct, kw_only=True):
    ok: bool
    summary: Summary
    divergences: list[Divergence]
    unlisted: int = 0  # divergences beyond MAX_LISTED, counted in summary.divergences only
    stream_last_seq: int  # the RUNS sequence the replay read up to
    seconds: float


def add_parser(sub: Any) -> None:
    """Register `audit replay` on the CLI's subcommands (main.py)."""
    audit = sub.add_parser("audit", help="audit an org's record against the ledger")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    r = asub.add_parser(
        "replay",
        help="replay an org's events, re-check every verdict and rebuild every receipt; exit 1 on any divergence",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    r.add_argument("--org", required=True, help="the org id")
    r.add_argument(
        "--from", dest="from_seq", metavar="SEQ", type=int, default=1, help="start at this receipt seq (default 1)"
    )
    r.add_argument("--nats", metavar="URL", help="the NATS server (default: $NATS_URL)")
    r.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    r.add_argument("--no-recheck", action="store_true", help="do not re-run the referee (receipts and chain only)")
    r.add_argument(
        "--sheets",
        metavar="DIR",
        help="the referee's Flight Sheet library (default: $FLIGHT_SHEETS_DIR, else the packaged one)",
    )
    r.add_argument(
        "--grace",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="an approval younger than this without a receipt is pending, not unminted (default 30)",
    )
    r.set_defaults(func=replay_command)


def replay_command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(replay(args))
    except Unusable as exc:
        print(f"defendable: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE


async def replay(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    import nats
    import nats.errors

    from defendable_referee.errors import FlightSheetInvalid
    from defendable_referee.sheet import load_library

    out = out or sys.stdout
    try:
        org_id = check_token(args.org, "--org")
    except ValueError as exc:
        raise Unusable(str(exc)) from None
    if args.from_seq < 1:
        raise Unusable(f"--from must be a receipt seq, 1 or more, not {args.from_seq}")
    if args.grace < 0:
        raise Unusable("--grace must not be negative")
    url = args.nats or os.environ.get("NATS_URL", "")
    if not url:
        raise Unusable("give --nats URL or set NATS_URL")
    library = None
    if not args.no_recheck:
        directory = args.sheets or os.environ.get("FLIGHT_SHEETS_DIR", "")
        try:
            library = load_library(Path(directory) if directory else None)
        except (FlightSheetInvalid, OSError) as exc:
            raise Unusable(f"the Flight Sheet library cannot be loaded: {exc}") from None

    async def quiet(_: Exception) -> None:
        return None

    try:  # nats-py retries a refused first connection forever, whatever its options: bound it here
        connecting = nats.connect(
            url, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False, error_cb=quiet
        )
        nc = await asyncio.wait_for(connecting, CONNECT_TIMEOUT_S)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        why = f"no server answered within {CONNECT_TIMEOUT_S:.0f} s" if isinstance(exc, TimeoutError) else _why(exc)
        raise Unusable(f"cannot connect to NATS at {url}: {why}") from None
    try:
        return await _replay(nc, org_id, args, library, out, err or sys.stderr)
    finally:
        await nc.close()


async def _replay(nc: Nats, org_id: str, args: argparse.Namespace, library: Any, out: TextIO, err: TextIO) -> int:
    from defendable_cli.audit_core import Replay

    # 1.
    started = time.monotonic()
    js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
    progress = Progress(err)
    last_seq = await stream_last_seq(js)
    keys = await published_keys(nc, progress)
    core = Replay(org_id, library=library, from_seq=args.from_seq, keys=keys, now=datetime.now(UTC), grace_s=args.grace)
    progress.step(
        "replay",
        f"org {org_id}, RUNS up to seq {last_seq:,}, from receipt seq {args.from_seq}"
        + ("" if library is not None else ", without re-checking verdicts"),
    )
    replayer = Replayer(nc, js, core, err, progress)
    # 2.
    start = 1
    if args.from_seq > 1:
        replayer.after = args.from_seq - 2
        start = await replayer.start_position(last_seq)
    # 3.
    await replayer.read_stream(start, last_seq)
    # 4.
    while not replayer.exhausted:
        await replayer.next_receipts()
    lookups = core.lookups()
    if lookups:
        progress.step("lookups", f"{len(lookups):,} events by subject, for receipts the stream did not explain")
    for name, key in lookups:
        found = await replayer.lookup(name, key)
        if found is not None:
            await replayer.feed(found)
    replayer.took(core.finish())
    # 5.
    summary = core.summary
    seconds = time.monotonic() - started
    report = Report(
        ok=not any(summary.divergences.values()),
        summary=summary,
        divergences=replayer.divergences,
        unlisted=replayer.unlisted,
        stream_last_seq=last_seq,
        seconds=round(seconds, 3),
    )
    replayer.meter.done()
    rate = summary.runs / seconds if seconds > 0 else 0.0
    progress.step(
        "done",
        f"{summary.events:,} events, {summary.receipts:,} receipts in {seconds:.1f} s ({rate:,.0f} runs/s):"
        f" {sum(summary.divergences.values()):,} divergences",
    )
    if args.json:
        out.write(msgspec.json.encode(report).decode() + "\n")
    else:
        print_report(report, out)
    out.flush()
    return EXIT_OK if report.ok else EXIT_DIVERGED


async def stream_last_seq(js: JetStreamContext) -> int:
    import nats.errors
    import nats.js.errors

    try:
        info = await js.stream_info(RUNS_STREAM)
    except nats.js.errors.NotFoundError:
        raise Unusable(f"there is no {RUNS_STREAM} stream on this NATS server") from None
    except (TimeoutError, nats.errors.Error) as exc:
        raise Unusable(f"JetStream did not answer: {_why(exc)}") from None
    return int(info.state.last_seq)


class _Key(msgspec.Struct):
    kid: str
    public_key: str


class _Keys(msgspec.Struct):
    keys: list[_Key]


async def published_keys(nc: Nats, progress: Progress) -> dict[str, str] | None:
    """The ledger's published key set (kid -> public key); None when it does not answer."""
    import nats.errors

    try:
        reply = await nc.request(LEDGER_KEYS, b"", timeout=REQUEST_TIMEOUT_S)
        return {k.kid: k.public_key for k in msgspec.json.decode(reply.data, type=_Keys).keys}
    except (TimeoutError, nats.errors.Error, msgspec.DecodeError) as exc:
        why = _why(exc)
        progress.step("keys", f"the ledger's key set is unavailable ({why}): signatures are checked alone")
        return None


class _PayloadKey(msgspec.Struct):
    schema: str
    run_id: str = ""
    incident_id: str = ""
    unlock_id: str = ""


class Replayer:
    """The I/O around one `audit_core.Replay`: the stream, the receipts, lookups by subject."""

    def __init__(self, nc: Nats, js: JetStreamContext, core: Replay, err: TextIO, progress: Progress) -> None:
        self.nc = nc
        self.js = js
        self.core = core
        self.org_id = core.org_id
        self.from_seq = core.from_seq
        self.progress = progress
        self.meter = Meter(err, progress)
        self.after = 0  # receipts fed up to this seq
        self.exhausted = False
        self.divergences: list[Divergence] = []
        self.unlisted = 0

    # -- 2.

    async def start_position(self, last_seq: int) -> int:
        """The stream sequence of the first event of seq `from`'s run (its RunCreated, or the
        approval of a cook, incident or unlock); past the end when there is no such receipt."""
        from defendable_canonical.receipt import EVAL_SCHEMAS
        from defendable_cli.audit_core import mint_event_name, receipt_key

        rows = await self.next_receipts()
        first = next((row for row in rows if row.seq >= self.from_seq), None)
        if first is None:
            return last_seq + 1  # nothing minted from that seq on
        try:
            keys = msgspec.json.decode(first.payload, type=_PayloadKey)
        except msgspec.DecodeError:
            return 1  # the core reports the bad payload; read everything
        key = receipt_key(keys.schema, keys.run_id, keys.incident_id, keys.unlock_id)
        name = "created" if keys.schema in EVAL_SCHEMAS else mint_event_name(keys.schema)
        found = await self.get_last(f"run.{name}.{self.org_id}.{key}")
        return found[0] if found is not None else 1

    # -- 3.

    async def read_stream(self, start: int, last_seq: int) -> None:
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        from defendable_canonical.events import event_decoder

        if start > last_seq:
            return
        name = f"audit-{self.org_id}-{secrets.token_hex(6)}"
        config = ConsumerConfig(
            name=name,
            deliver_policy=DeliverPolicy.ALL if start <= 1 else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if start <= 1 else start,
            ack_policy=AckPolicy.NONE,
            filter_subjects=[f"run.{event}.{self.org_id}.>" for event in FILTERED],
            inactive_threshold=INACTIVE_S,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            info = await self.js.add_consumer(RUNS_STREAM, config)
        except (TimeoutError, nats.errors.Error) as exc:
            raise Unusable(f"JetStream refused the replay's consumer: {_why(exc)}") from None
        puller = Puller(self.nc, RUNS_STREAM, name)
        try:
            total = info.num_pending or 0
            self.meter.start(total)
            seen = 0
            while seen < total:
                msgs = await puller.next_batch()
                if not msgs:
                    break  # the consumer has nothing more
                for msg in msgs:
                    try:
                        event = event_decoder.decode(msg.data)
                    except msgspec.DecodeError as exc:
                        self.took([self.core.undecodable(msg.subject, msg.metadata.sequence.stream, str(exc))])
                        continue
                    await self.feed(event)
                seen += len(msgs)
                self.meter.update(seen, self.core.summary)
                last = msgs[-1].metadata
                if last.sequence.stream >= last_seq or last.num_pending == 0:
                    break
        finally:
            with contextlib.suppress(TimeoutError, nats.errors.Error):  # else the server drops it after INACTIVE_S
                await self.js.delete_consumer(RUNS_STREAM, name)

    async def feed(self, event: AnyEvent) -> None:
        core = self.core
        if core.awaits_receipt(event):
            if core.minted_wanted(event):
                minted = await self.lookup("minted", event.run_id)
                if minted is not None:
                    self.took(core.on_event(minted))
            while not self.exhausted and core.awaits_receipt(event):
                await self.next_receipts()
        for name in core.history_to_fetch(event):
            found = await self.lookup(name, event.run_id)
            if found is not None:
                self.took(core.on_event(found))
        self.took(core.on_event(event))

    async def next_receipts(self) -> list[StoredReceiptRow]:
        """The next page of stored receipts, fed to the core (and returned)."""
        import nats.errors

        from defendable_canonical.tlog_api import MAX_PAGE, ReceiptsAnswer, ReceiptsQuery, TlogProblem, answer_decoder

        query = msgspec.json.encode(ReceiptsQuery(org_id=self.org_id, after=self.after, limit=MAX_PAGE))
        try:
            reply = await self.nc.request(LEDGER_TLOG, query, timeout=REQUEST_TIMEOUT_S)
        except nats.errors.NoRespondersError:
            raise Unusable(f"nothing answers {LEDGER_TLOG}: is the ledger running?") from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise Unusable(f"the ledger did not answer the receipts question: {_why(exc)}") from None
        try:
            answer = answer_decoder.decode(reply.data)
        except msgspec.DecodeError as exc:
            raise Unusable(f"the ledger's receipts answer is not one: {exc}") from None
        if isinstance(answer, TlogProblem):
            raise Unusable(f"the ledger answered {answer.status}: {answer.detail}")
        if not isinstance(answer, ReceiptsAnswer):
            raise Unusable(f"the ledger answered {type(answer).__name__} to a receipts question")
        rows = answer.receipts
        if rows and rows[0].seq <= self.after:
            raise Unusable(f"the ledger answered seq {rows[0].seq} to a question for receipts after {self.after}")
        self.took(self.core.on_receipts(rows))
        if rows:
            self.after = rows[-1].seq
        if len(rows) < MAX_PAGE:
            self.exhausted = True
            self.took(self.core.receipts_exhausted())
        return rows

    async def lookup(self, name: str, key: str) -> AnyEvent | None:
        from defendable_canonical.events import event_decoder

        found = await self.get_last(f"run.{name}.{self.org_id}.{key}")
        if found is None:
            return None
        try:
            return event_decoder.decode(found[1])
        except msgspec.DecodeError as exc:
            self.took([self.core.undecodable(f"run.{name}.{self.org_id}.{key}", found[0], str(exc))])
            return None

    async def get_last(self, subject: str) -> tuple[int, bytes] | None:
        """The last message on `subject` (its stream sequence and data), or None."""
        import nats.errors
        import nats.js.errors

        try:
            check_token(subject.rsplit(".", 1)[-1], "key")
        except ValueError:
            return None  # a key no subject can carry: nothing was published under it
        try:
            msg = await self.js.get_last_msg(RUNS_STREAM, subject)
        except nats.js.errors.NotFoundError:
            return None
        except (TimeoutError, nats.errors.Error) as exc:
            raise Unusable(f"JetStream did not answer a lookup of {subject}: {_why(exc)}") from None
        if msg.data is None or msg.seq is None:
            return None
        return int(msg.seq), msg.data

    def took(self, found: list[Divergence]) -> None:
        for divergence in found:
            if len(self.divergences) < MAX_LISTED:
                self.divergences.append(divergence)
            else:
                self.unlisted += 1


class Puller:
    """Batches of a pull consumer's messages, in stream order, by pull requests of our own.

    nats-py's `fetch` waits for every message with a task of its own: about twice the CPU per
    event of this (measured with decoding: 110 vs 50 µs per event). One request at a time:
    the server splits messages between requests that wait together, out of stream order.
    Each request has an inbox (and subscription) of its own, since the server's status that
    ends a request (404 nothing left, 409 batch or bytes complete) may trail it.
    """

    def __init__(self, nc: Nats, stream: str, consumer: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._request = msgspec.json.encode({"batch": FETCH_BATCH, "max_bytes": FETCH_BYTES, "no_wait": True})

    async def next_batch(self) -> list[Msg]:
        """The next batch; empty when the consumer has nothing more."""
        request = _Request()
        inbox = self._nc.new_inbox()
        request.sub = await self._nc.subscribe(
            inbox, cb=request.on_message, pending_msgs_limit=2 * FETCH_BATCH, pending_bytes_limit=2 * FETCH_BYTES
        )
        try:
            await self._nc.publish(self._next, self._request, reply=inbox)
            return await asyncio.wait_for(request.done, FETCH_TIMEOUT_S)
        except TimeoutError:
            raise Unusable(f"JetStream delivered nothing for {FETCH_TIMEOUT_S:.0f} s") from None
        finally:
            await request.close()


class _Request:
    def __init__(self) -> None:
        self.got: list[Msg] = []
        self.done: asyncio.Future[list[Msg]] = asyncio.get_running_loop().create_future()
        self.sub: Any = None

    async def on_message(self, msg: Msg) -> None:
        if self.done.done():
            return
        headers = msg.headers
        if headers and not msg.data and "Status" in headers:
            self.done.set_result(self.got)
            return
        self.got.append(msg)
        if len(self.got) >= FETCH_BATCH:
            self.done.set_result(self.got)

    async def close(self) -> None:
        import nats.errors

        if not self.done.done():
            self.done.cancel()
        if self.sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self.sub.unsubscribe()
            self.sub = None


class Meter:
    """A progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise."""

    WIDTH = 28

    def __init__(self, stream: TextIO, progress: Progress, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._progress = progress  # its line format and clock; its stream is `stream`
        self._clock = clock
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._total = 0
        self._began = self._last = clock()
        self._drawn = False

    def start(self, total: int) -> None:
        self._total = total
        self._began = self._last = self._clock()

    def update(self, done: int, summary: Summary) -> None:
        now = self._clock()
        if now - self._last < (PROGRESS_EVERY_S if self._tty else 5 * PROGRESS_EVERY_S) and done < self._total:
            return
        self._last = now
        elapsed = max(now - self._began, 1e-9)
        share = min(done / self._total, 1.0) if self._total else 1.0
        filled = int(self.WIDTH * share)
        text = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} {done:,}/{self._total:,} events,"
            f" {summary.runs:,} runs ({summary.runs / elapsed:,.0f}/s), {summary.receipts:,} receipts,"
            f" {sum(summary.divergences.values()):,} divergences"
        )
        if self._tty:
            self._stream.write("\r\033[K" + self._progress.line(self._progress.elapsed, "stream", text))
            self._stream.flush()
            self._drawn = True
        else:
            self._progress.step("stream", text)

    def done(self) -> None:
        if self._drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._drawn = False


def print_report(report: Report, out: TextIO) -> None:
    s = report.summary
    for d in report.divergences:
        seq = f"seq {d.seq}" if d.seq is not None else "-"
        out.write(f"✘ {d.kind:<17} {seq:<10} {d.run_id or '-'}  {d.detail}\n")
    if report.unlisted:
        out.write(f"… and {report.unlisted:,} more (counted below)\n")
    rechecked = f"{s.rechecked:,} re-checked"
    if s.not_rechecked:
        rechecked += " (not: " + ", ".join(f"{n:,} {why}" for why, n in sorted(s.not_rechecked.items())) + ")"
    out.write(
        f"org {s.org_id} from seq {s.from_seq}: {s.events:,} events, {s.runs:,} runs, {rechecked};"
        f" {s.receipts:,} receipts, {s.rebuilt:,} rebuilt from their approvals"
        + (f", {s.out_of_range:,} approvals before seq {s.from_seq}" if s.out_of_range else "")
        + (f", {s.pending:,} approvals still minting" if s.pending else "")
        + "\n"
    )
    counted = ", ".join(f"{kind} {n:,}" for kind, n in s.divergences.items() if n)
    out.write(("DIVERGED: " + counted if counted else "no divergence") + "\n")
