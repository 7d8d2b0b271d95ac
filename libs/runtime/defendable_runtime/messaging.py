"""JetStream on FastStream: streams, durable consumers, publishing, settlement.

Settlement policy (DESIGN.md §3):
- ack only after the handler's own database transaction committed;
- a message that can never succeed (undecodable, invalid) raises `Poison`
  and goes at once to ``dead.<service>.<subject>`` with the reason, then is
  terminated — nothing is dropped silently;
- an infrastructure failure (PostgreSQL, S3 or NATS unreachable) is retried
  with back-off for as long as it takes: a crash of a dependency must delay
  work, never lose it;
- any other exception is retried, and dead-lettered after MAX_ATTEMPTS;
- a message is held (`progress`) from fetch until settled: the process reports
  progress on it, so the consumers' ack wait can be short and only a dead
  process's messages are redelivered.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, NamedTuple, TypeVar

import msgspec
from faststream import AckPolicy, Context
from faststream.message import StreamMessage
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from faststream.nats.message import NatsBatchMessage as _NatsBatchMessage
from faststream.nats.subscriber.usecases import LogicSubscriber
from faststream.nats.subscriber.usecases import stream_pull_subscriber as _pull_module
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy as NatsAckPolicy
from nats.js.api import DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError

from defendable_canonical.events import Command, Event, encode, event_decoder
from defendable_canonical.subjects import (
    DEAD_STREAM,
    DEAD_SUBJECTS,
    INGEST_STREAM,
    INGEST_SUBJECTS,
    RUNS_STREAM,
    RUNS_SUBJECTS,
    dead_subject,
    event_filter,
    event_subject,
    ingest_subject,
)

from . import progress
from .batching import GroupPublisher, Outgoing
from .progress import holding, release

log = logging.getLogger("defendable.messaging")
E = TypeVar("E", bound=Event)

# What a batch subscriber (`PullSub(batch=True)`) receives: its `raw_message` is
# the list of NATS messages, which FastStream's `NatsMessage` alias types as one.
NatsBatchMessage = Annotated[_NatsBatchMessage, Context("message")]

# FastStream 0.7's pull loops suppress `nats.errors.TimeoutError`, but nats-py's
# `fetch` raises the builtin `asyncio.TimeoutError` (its parent class) when a
# pull expires empty. The loop then dies on every idle expiry and is restarted
# by FastStream's supervisor, racing the next delivery. Catching the builtin
# (which also catches nats' subclass) restores the intended loop.
_pull_module.TimeoutError = builtins.TimeoutError  # type: ignore[attr-defined,assignment]  # see the comment above

MAX_ATTEMPTS = 10  # failures of our own code per message (in this process), not deliveries
INLINE_OUTAGE_WAIT_S = 20.0  # wait out a dependency outage in place before handing a message back
DUPLICATE_WINDOW_S = 120.0  # ≥ 2 min (DESIGN.md §3); databases enforce idempotency beyond it
# nats-server's max_payload ("max_payload: 8MB" in the stack's config is 8 MiB; NATS recommends
# no more): a publish whose payload and headers exceed it makes the server close the connection.
# A server configured lower is reported at start (`ensure_streams`).
NATS_MAX_PAYLOAD = 8 * 1024 * 1024
# What a stored message may weigh, headers included (the streams' max_msg_size): 64 KiB under
# max_payload, so that an oversized message is refused by the stream alone (a PublishRefused),
# never by the server dropping the connection under every other publish in flight. The largest
# messages are a 10,000-item cook's, at most ~6.4 MB (docs/decisions.md, "Cooks of 10,000 items").
MAX_MESSAGE_BYTES = NATS_MAX_PAYLOAD - 64 * 1024

# Streams are declared here, explicitly and before any consumer starts; the
# FastStream subscribers get `declare=False` so nothing else reshapes them.
STREAMS = (
    StreamConfig(
        name=RUNS_STREAM,
        subjects=[RUNS_SUBJECTS],
        retention=RetentionPolicy.LIMITS,  # the system of record: kept, no expiry
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_msg_size=MAX_MESSAGE_BYTES,
        allow_atomic=True,  # publishes are group-committed as atomic batches (`batching`)
    ),
    StreamConfig(
        name=INGEST_STREAM,
        subjects=[INGEST_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_msg_size=MAX_MESSAGE_BYTES,
        allow_atomic=True,
    ),
    StreamConfig(
        name=DEAD_STREAM,
        subjects=[DEAD_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
    ),
)
RUNS = JStream(RUNS_STREAM, declare=False)
INGEST = JStream(INGEST_STREAM, declare=False)


class Poison(Exception):
    """This message can never be processed; dead-letter it with this reason."""


class Transient(Exception):
    """A dependency is unavailable; retry later, without counting towards dead-lettering."""


async def undecoded(message: StreamMessage[Any]) -> Any:
    """Every handler decodes its own messages with msgspec from `raw_message`; FastStream's
    default decoder would first run stdlib `json.loads` over every body (measured: an eighth
    of the ledger's CPU) only for the result to be thrown away."""
    return message.body


def make_broker(nats_url: str) -> NatsBroker:
    # Reconnect forever: a NATS restart must pause the service, not end it.
    # Per-message logs at DEBUG; handler errors still surface at ERROR.
    return NatsBroker(
        nats_url,
        decoder=undecoded,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # typed int, but nats-py sleeps on it: a float works
        logger=logging.getLogger("defendable.broker"),
        log_level=logging.DEBUG,
    )


def consumer(durable: str, max_ack_pending: int = 4096) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=NatsAckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=progress.ACK_WAIT_S,  # short: held messages get progress reports
        max_deliver=-1,  # we count attempts ourselves: infra outages must not exhaust them
        max_ack_pending=max_ack_pending,
    )


class _Durable(NamedTuple):
    stream: str
    subjects: tuple[str, ...]
    config: ConsumerConfig


_durables: weakref.WeakKeyDictionary[NatsBroker, list[_Durable]] = weakref.WeakKeyDictionary()


def durable_subscriber(
    broker: NatsBroker, subject: str | Sequence[str], stream: JStream, config: ConsumerConfig, pull_sub: PullSub
) -> LogicSubscriber[Any]:
    """A durable pull subscriber with manual acks, whose consumer `ensure_streams` converges
    onto `config`: FastStream alone would reuse an existing durable as it was first created
    (with an older ack wait, say). Several subjects make one consumer over all of them
    (JetStream `filter_subjects`), delivering in stream order across them."""
    subjects = (subject,) if isinstance(subject, str) else tuple(subject)
    _durables.setdefault(broker, []).append(_Durable(stream.name, subjects, config))
    if len(subjects) > 1:  # FastStream then addresses the consumer by its filter subjects
        config = dataclasses.replace(config, filter_subjects=list(subjects))
    subscriber = broker.subscriber(
        subjects[0] if len(subjects) == 1 else "",
        stream=stream,
        durable=config.durable_name,
        config=config,
        pull_sub=pull_sub,
        ack_policy=AckPolicy.MANUAL,
    )
    _hand_back_on_stop(subscriber)
    return subscriber


def _hand_back_on_stop(subscriber: LogicSubscriber[Any]) -> None:
    """On a graceful stop, nak what JetStream sent for the last pull but no fetch took (see
    `_undelivered`), so another replica or the next start gets it at once, not after the ack
    wait. FastStream stops every subscriber (waiting for running handlers) before it drains
    the connection, so the naks still go out; the queue outlives the unsubscribe."""
    stop = subscriber.stop

    async def stop_and_hand_back() -> None:
        pulled = getattr(subscriber, "subscription", None)  # FastStream clears it while stopping
        await stop()
        late = _undelivered(pulled)
        if late:
            log.info("handing back %d messages delivered after the last fetch", len(late))
        with contextlib.suppress(Exception):  # NATS itself may be going away
            for msg in late:
                await msg.nak()

    subscriber.stop = stop_and_hand_back  # type: ignore[method-assign]  # one instance, our wrapper


def _undelivered(pulled: object) -> list[Msg]:
    """Messages JetStream sent for a pull whose fetch had already returned, taken out of the
    queue of `pulled` (nats-py's `PullSubscription`; None gives []).

    nats-py keeps them in the subscription's queue for the next fetch; a consumer that stops
    before that fetch drops them, and they come back only after the ack wait. Measured on a
    graceful ledger stop: 22 to 96 of 200 approvals sat there. Reads nats-py's private queue
    (nats-py 2.x has no public way to drain it) and skips status messages (no messages,
    timeouts), which have nothing to hand back.
    """
    sub = getattr(pulled, "_sub", None)
    queue = getattr(sub, "_pending_queue", None)
    taken: list[Msg] = []
    while queue is not None and not queue.empty():
        msg: Msg = queue.get_nowait()
        sub._pending_size -= len(msg.data)  # type: ignore[union-attr]  # as nats-py's own fetch does
        if JetStreamContext.is_status_msg(msg) is None:
            taken.append(msg)
    return taken


def jetstream(broker: NatsBroker) -> JetStreamContext:
    js: JetStreamContext | None = broker.config.connection_state.stream
    assert js is not None, "broker is not connected"
    return js


async def ensure_streams(broker: NatsBroker) -> None:
    """Connect and create (or converge) the three streams; every service calls this at start."""
    await broker.connect()
    client: NatsClient = broker.config.connection_state.connection
    served = client.max_payload
    if served < NATS_MAX_PAYLOAD:
        log.error(
            "nats-server's max_payload is %d bytes, below the %d this system's messages need (a cook of"
            " thousands of items would not be stored): set max_payload: 8MB in its config",
            served,
            NATS_MAX_PAYLOAD,
        )
    js = jetstream(broker)
    for config in STREAMS:
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with another config: converge on ours
            await js.update_stream(config)
    for durable in _durables.get(broker, []):  # created, or updated in place (same name; filters may change)
        single = len(durable.subjects) == 1
        converged = dataclasses.replace(
            durable.config,
            filter_subject=durable.subjects[0] if single else None,
            filter_subjects=None if single else list(durable.subjects),
        )
        await js.add_consumer(durable.stream, converged)


_publishers: weakref.WeakKeyDictionary[NatsBroker, GroupPublisher] = weakref.WeakKeyDictionary()


def publisher(broker: NatsBroker) -> GroupPublisher:
    """The broker's group-commit publisher (see `batching`): one per broker, made on first use."""
    found = _publishers.get(broker)
    if found is None:
        owner = weakref.ref(broker)  # the publisher must not keep its broker alive

        def connection() -> NatsClient:
            live = owner()
            assert live is not None, "the broker is gone"
            client: NatsClient = live.config.connection_state.connection
            return client

        found = _publishers[broker] = GroupPublisher(connection)
    return found


def outgoing_event(event: Event) -> Outgoing:
    return Outgoing(event_subject(event), encode(event), event.event_id)  # Nats-Msg-Id = event id


async def publish_event(broker: NatsBroker, event: Event) -> None:
    """Publish to RUNS and return once JetStream stored it (deduplicated by event id)."""
    await publish_events(broker, [event])


async def publish_events(broker: NatsBroker, events: Sequence[Event]) -> None:
    """Publish many events to RUNS, each stored exactly as `publish_event` would store it,
    as few atomic batches (one fsync'd commit each) rather than one write per event."""
    await publisher(broker).publish([outgoing_event(event) for event in events])


async def publish_command(broker: NatsBroker, command: Command) -> None:
    message = Outgoing(ingest_subject(command), encode(command), command.command_id)
    await publisher(broker).publish([message])


def expect_event(raw: Msg, kind: type[E]) -> E:
    """Decode a run event of the one type this consumer takes; anything else is poison."""
    try:
        event = event_decoder.decode(raw.data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise Poison(f"undecodable event: {exc}") from exc
    if not isinstance(event, kind):
        raise Poison(f"expected {kind.__name__} on {raw.subject}, got {type(event).__name__}")
    return event


def consume_events(
    broker: NatsBroker,
    service: str,
    event: str,
    durable: str,
    handle: Callable[[Msg], Awaitable[None]],
    *,
    fetch: int = 64,
    infra_errors: tuple[type[BaseException], ...] = (),
) -> None:
    """A durable pull consumer of one run event type (`run.<event>.>`), each message settled on its own.

    The messages of one fetch are handled concurrently, so `handle` must not rely
    on their order (batch consumers that need order declare their own subscriber).
    """

    async def on_message(msg: NatsMessage) -> None:
        raw: Msg = msg.raw_message
        with holding([raw]):
            await settle(broker, service, [raw], lambda: handle(raw), infra_errors=infra_errors)

    on_message.__name__ = on_message.__qualname__ = f"on_{event}"
    subscriber = durable_subscriber(
        broker, event_filter(event), RUNS, consumer(durable), PullSub(batch_size=fetch, timeout=1.0)
    )
    subscriber(on_message)


def attempts(raw: Msg) -> int:
    try:
        return int(raw.metadata.num_delivered)
    except Exception:
        return 1


async def dead_letter(broker: NatsBroker, service: str, raw: Msg, reason: str) -> None:
    headers = dict(raw.headers or {})
    headers.pop("Nats-Msg-Id", None)
    headers["Defendable-Dead-Reason"] = reason[:1000]
    headers["Defendable-Dead-Subject"] = raw.subject
    await broker.publish(raw.data, dead_subject(service, raw.subject), headers=headers, stream=DEAD_STREAM)
    log.error("dead-lettered %s from %s: %s", raw.subject, service, reason)


async def settle(
    broker: NatsBroker,
    service: str,
    raws: list[Msg],
    work: Callable[[], Awaitable[Any]],
    *,
    infra_errors: tuple[type[BaseException], ...] = (),
) -> bool:
    """Run `work` for these messages, then ack, retry or dead-letter them (see module doc).

    True when the messages are settled for good (acked or dead-lettered), False
    when they were handed back for a retry. A dependency outage is first waited
    out here (extending the ack deadline) so that it does not burn deliveries,
    which other rules count; failures of our own code are counted per message
    in this process, so an outage never pushes a message towards the dead letters.
    """
    try:
        return await _settle(broker, service, raws, work, (TimeoutError, OSError, *infra_errors))
    finally:
        release(raws)  # acked, handed back or dead-lettered: no more progress reports


async def _settle(
    broker: NatsBroker,
    service: str,
    raws: list[Msg],
    work: Callable[[], Awaitable[Any]],
    infra: tuple[type[BaseException], ...],
) -> bool:
    waited = 0.0
    while True:
        try:
            await work()
        except Poison as exc:
            for raw in raws:
                await dead_letter(broker, service, raw, str(exc))
                await raw.term()
            return True
        except Transient as exc:
            log.info("%s: not yet, will retry: %s", service, exc)
            await retry_later(raws)
            return False
        except infra as exc:
            if waited >= INLINE_OUTAGE_WAIT_S:
                log.warning("%s: dependency still unavailable, handing back for redelivery: %r", service, exc)
                await retry_later(raws)
                return False
            log.warning("%s: dependency unavailable, retrying: %r", service, exc)
            pause = min(0.25 * 2 ** min(int(waited), 4), 2.0)
            await asyncio.sleep(pause)
            waited += pause
            for raw in raws:
                with contextlib.suppress(Exception):  # NATS itself may be the outage
                    await raw.in_progress()
            continue
        except Exception as exc:
            log.exception("%s: handler failed", service)
            counts = [_count_failure(raw) for raw in raws]
            if all(count >= MAX_ATTEMPTS for count in counts):
                for raw in raws:
                    await dead_letter(broker, service, raw, f"failed {MAX_ATTEMPTS} times: {exc!r}")
                    await raw.term()
                    _failures.pop(_message_key(raw), None)
                return True
            await retry_later(raws)
            return False
        for raw in raws:
            await raw.ack()
        if _failures:  # parsing each message's metadata for its key costs a few µs
            for raw in raws:
                _failures.pop(_message_key(raw), None)
        return True


_failures: dict[tuple[str, int], int] = {}


def _message_key(raw: Msg) -> tuple[str, int]:
    try:
        return (raw.metadata.stream, int(raw.metadata.sequence.stream))
    except Exception:
        return (raw.subject, id(raw))


def _count_failure(raw: Msg) -> int:
    if len(_failures) > 100_000:  # bounded: forget (and so retry longer) rather than grow
        _failures.clear()
    key = _message_key(raw)
    _failures[key] = _failures.get(key, 0) + 1
    return _failures[key]


async def retry_later(raws: list[Msg]) -> None:
    release(raws)
    for raw in raws:
        await raw.nak(delay=min(0.2 * attempts(raw), 5.0))
