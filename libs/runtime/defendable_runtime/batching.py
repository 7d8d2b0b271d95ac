"""Group commit for JetStream: concurrent publishes share one acknowledged, fsync'd write.

With `sync_interval: always` (DESIGN.md §5) every stored message costs nats-server an
fsync, so a service publishing one event per handled message pays one fsync per event
(measured here: 2,300 pipelined publishes/s, about 24 fsyncs per full run). A JetStream
atomic batch (ADR-50) is stored whole or not at all under one commit (13,000 messages/s
in batches of 500). `GroupPublisher` queues what its callers publish while a batch is in
flight and sends the queue as the next batch; each caller returns once JetStream has
acknowledged the batch holding its message, exactly as it would after its own publish.
Idle, a publish goes out at once: batching adds no wait, it only absorbs a queue.

A batch that JetStream refuses is refused whole: one message already stored (a
redelivery re-publishing its events), or one it would never store. Its messages are then
published one by one, so the duplicate window drops exactly the duplicates and a bad
message fails alone, not the other callers' messages that shared its batch.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from typing import NamedTuple

import msgspec
from nats.aio.client import Client as NatsClient
from nats.errors import MaxPayloadError

ATOMIC_BATCH_MAX = 1000  # messages per atomic batch: the server's limit (ADR-50)
BATCH_BYTES_MAX = 4 * 1024 * 1024  # what one batch may hold, so the server stages a bounded amount
PUBLISH_TIMEOUT_S = 10.0


class Outgoing(NamedTuple):
    """One message for a stream, deduplicated by `msg_id` (`Nats-Msg-Id`)."""

    subject: str
    data: bytes
    msg_id: str


class PublishRefused(Exception):
    """JetStream refused the message (or the whole batch); nothing of it was stored."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"JetStream refused the publish ({code}): {description}")
        self.code = code


class _ApiError(msgspec.Struct):
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    error: _ApiError | None = None


_puback_decoder = msgspec.json.Decoder(_PubAck)


def _check_puback(data: bytes) -> None:
    error = _puback_decoder.decode(data).error
    if error is not None:
        raise PublishRefused(error.err_code, error.description)


async def store_one(client: NatsClient, message: Outgoing) -> None:
    """A plain JetStream publish: a request, answered by a PubAck once stored (or a duplicate)."""
    headers = {"Nats-Msg-Id": message.msg_id}
    try:
        reply = await client.request(message.subject, message.data, timeout=PUBLISH_TIMEOUT_S, headers=headers)
    except MaxPayloadError as exc:  # nats-py's own check, before anything is sent
        raise PublishRefused(0, f"{len(message.data)} bytes exceed the server's max_payload") from exc
    _check_puback(reply.data)


async def store_batch(client: NatsClient, messages: Sequence[Outgoing]) -> list[BaseException | None]:
    """Store `messages`, in one atomic batch when there are several; see the module doc.
    Returns, per message, None once stored or why it was not."""
    if len(messages) > 1:
        try:
            await _atomic(client, messages)
            return [None] * len(messages)
        except (PublishRefused, MaxPayloadError):
            pass  # each message gets its own answer below (an unfinished batch is never committed)
    return list(await asyncio.gather(*(store_one(client, m) for m in messages), return_exceptions=True))


async def _atomic(client: NatsClient, messages: Sequence[Outgoing]) -> None:
    """The first message and the commit are requests (the server answers the start with an
    empty reply, the commit with a PubAck); the messages between are plain publishes."""
    batch_id = secrets.token_hex(16)
    last = len(messages) - 1
    for index, message in enumerate(messages):
        headers = {"Nats-Msg-Id": message.msg_id, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(index + 1)}
        if index == last:
            headers["Nats-Batch-Commit"] = "1"
        if index in (0, last):
            reply = await client.request(message.subject, message.data, timeout=PUBLISH_TIMEOUT_S, headers=headers)
            if reply.data:
                _check_puback(reply.data)
            elif index == last:
                raise PublishRefused(0, "the batch commit was answered without a publish acknowledgement")
        else:
            await client.publish(message.subject, message.data, headers=headers)


class _Call:
    """One `publish` call: its messages are settled together, so a call costs one future
    however many messages it holds (a future and a gather entry per message cost ~2.3 µs
    of client CPU a message on the ledger's 2,000-event publishes)."""

    __slots__ = ("done", "error", "left")

    def __init__(self, done: asyncio.Future[None], left: int) -> None:
        self.done, self.left = done, left
        self.error: BaseException | None = None

    def settle(self, outcome: BaseException | None) -> None:
        """One of the call's messages was stored (None) or not; once all are, wake the caller
        with the first failure, if any."""
        if outcome is not None and self.error is None:
            self.error = outcome
        self.left -= 1
        if self.left == 0 and not self.done.done():  # done: its caller was cancelled meanwhile
            if self.error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(self.error)


class GroupPublisher:
    """Publishes of one process, coalesced into atomic batches while a batch is in flight."""

    def __init__(self, client: Callable[[], NatsClient]) -> None:
        self._client = client
        self._queue: list[tuple[Outgoing, _Call]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Return once JetStream has stored every message, or raise the first reason one was
        not (after every message of the call has had its answer)."""
        if not messages:
            return
        call = _Call(asyncio.get_running_loop().create_future(), len(messages))
        self._queue += [(message, call) for message in messages]
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await call.done

    async def _flush(self) -> None:
        while self._queue:
            taken, size = 0, 0
            for message, _ in self._queue[:ATOMIC_BATCH_MAX]:
                if taken and size + len(message.data) > BATCH_BYTES_MAX:
                    break
                taken, size = taken + 1, size + len(message.data)
            batch, self._queue = self._queue[:taken], self._queue[taken:]
            try:
                outcomes = await store_batch(self._client(), [message for message, _ in batch])
            except BaseException as exc:  # NATS unreachable, or we are cancelled: no caller hangs
                outcomes = [exc] * len(batch)
                if not isinstance(exc, Exception):
                    _settle(batch, outcomes)
                    raise
            _settle(batch, outcomes)


def _settle(batch: list[tuple[Outgoing, _Call]], outcomes: Sequence[BaseException | None]) -> None:
    for (_, call), outcome in zip(batch, outcomes, strict=True):
        call.settle(outcome)
