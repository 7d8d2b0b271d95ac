"""Publishing on a real nats-server: group-committed atomic batches, each message stored once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker

from defendable_canonical.events import CommandRefused, encode
from defendable_canonical.subjects import INGEST_STREAM, RUNS_STREAM, event_subject
from defendable_runtime.batching import ATOMIC_BATCH_MAX, PublishRefused
from defendable_runtime.messaging import (
    MAX_MESSAGE_BYTES,
    NATS_MAX_PAYLOAD,
    ensure_streams,
    jetstream,
    make_broker,
    publish_event,
    publish_events,
)
from defendable_stack.servers import Stack


@pytest.fixture
async def broker(stack: Stack) -> AsyncIterator[NatsBroker]:
    broker = make_broker(stack.nats_url)
    await ensure_streams(broker)
    yield broker
    await broker.stop()


def refusals(org_id: str, start: int, count: int, reason: str = "test") -> list[CommandRefused]:
    return [
        CommandRefused(
            event_id=f"ev_{org_id}_{i}",
            org_id=org_id,
            run_id=f"run_{i}",
            occurred_at="2026-12-01T00:00:00.000Z",
            producer="test",
            command_id=f"cmd_{i}",
            command_type="Submit",
            reason=reason,
        )
        for i in range(start, start + count)
    ]


async def stored(broker: NatsBroker, org_id: str) -> dict[str, int]:
    """Messages per subject in RUNS for this org."""
    info = await jetstream(broker).stream_info(RUNS_STREAM, subjects_filter=f"run.refused.{org_id}.>")
    return dict(info.state.subjects or {})


async def test_many_events_are_stored_once_each_across_batches(broker: NatsBroker) -> None:
    org_id = "org_" + secrets.token_hex(6)
    events = refusals(org_id, 0, ATOMIC_BATCH_MAX + 250)  # two batches: the server's limit is per batch
    await publish_events(broker, events)
    assert await stored(broker, org_id) == {event_subject(e): 1 for e in events}


async def test_republishing_stores_only_what_is_new(broker: NatsBroker) -> None:
    """A redelivery re-publishes events already stored: the batch is refused whole by
    JetStream, and the one-by-one fallback lets the duplicate window drop exactly those."""
    org_id = "org_" + secrets.token_hex(6)
    first = refusals(org_id, 0, 40)
    await publish_events(broker, first)
    again = refusals(org_id, 20, 40)  # 20 already stored, 20 new
    await publish_events(broker, again)
    assert await stored(broker, org_id) == {event_subject(e): 1 for e in refusals(org_id, 0, 60)}


async def test_a_message_jetstream_refuses_fails_alone(broker: NatsBroker) -> None:
    """The batch holding it is refused whole; its other messages are then stored one by one,
    so one bad message never fails the messages of other callers that shared its batch."""
    org_id = "org_" + secrets.token_hex(6)
    events = refusals(org_id, 0, 10)
    events[5] = refusals(org_id, 5, 1, reason="x" * (MAX_MESSAGE_BYTES + 1))[0]  # over the stream's limit
    with pytest.raises(PublishRefused):
        await publish_events(broker, events)
    assert await stored(broker, org_id) == {event_subject(e): 1 for e in events if e is not events[5]}


async def test_a_message_beyond_the_servers_max_payload_fails_alone_and_the_connection_stays(
    broker: NatsBroker,
) -> None:
    """nats-py refuses it before sending (the server would close the connection): refused as
    the stream's refusals are, the batch it shared still stored one by one."""
    org_id = "org_" + secrets.token_hex(6)
    events = refusals(org_id, 0, 6)
    events[2] = refusals(org_id, 2, 1, reason="x" * (NATS_MAX_PAYLOAD + 1))[0]
    with pytest.raises(PublishRefused, match="exceed the server's max_payload"):
        await publish_events(broker, events)
    assert await stored(broker, org_id) == {event_subject(e): 1 for e in events if e is not events[2]}
    await publish_event(broker, refusals(org_id, 9, 1)[0])  # the same connection, still serving


async def test_the_servers_and_the_streams_agree_on_how_large_a_message_may_be(broker: NatsBroker) -> None:
    """The stack's nats-server allows NATS_MAX_PAYLOAD; the streams store up to MAX_MESSAGE_BYTES,
    64 KiB less, headers included: the largest message any service publishes is stored."""
    assert broker.config.connection_state.connection.max_payload == NATS_MAX_PAYLOAD == 8 * 1024 * 1024
    js = jetstream(broker)
    for name in (RUNS_STREAM, INGEST_STREAM):
        assert (await js.stream_info(name)).config.max_msg_size == MAX_MESSAGE_BYTES == NATS_MAX_PAYLOAD - 64 * 1024
    org_id = "org_" + secrets.token_hex(6)
    envelope = len(encode(refusals(org_id, 0, 1)[0]))
    largest = refusals(org_id, 0, 1, reason="x" * (MAX_MESSAGE_BYTES - 1024 - envelope))[0]  # 1 KiB for headers
    await publish_event(broker, largest)
    assert await stored(broker, org_id) == {event_subject(largest): 1}


async def test_concurrent_publishes_each_return_once_stored(broker: NatsBroker) -> None:
    """Many callers at once (coalesced into shared batches): every one returns only after
    its own event is in the stream, and every event is stored exactly once."""
    org_id = "org_" + secrets.token_hex(6)
    events = refusals(org_id, 0, 600)

    async def publish_then_look(event: CommandRefused) -> bool:
        await publish_event(broker, event)
        return event_subject(event) in await stored(broker, org_id)

    assert all(await asyncio.gather(*(publish_then_look(e) for e in events[:50])))
    await asyncio.gather(*(publish_event(broker, e) for e in events))  # the first 50 again, and 550 new
    assert await stored(broker, org_id) == {event_subject(e): 1 for e in events}
