"""A subscriber stopping gracefully hands back what JetStream sent after its last fetch (real nats-server).

A fetch returns after its time window; JetStream keeps sending for that pull, and nats-py parks
the rest in the subscription's queue for the next fetch. A stopping subscriber never makes one:
without the hand-back those messages stay with the stopped process until the ack wait.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import nats
from faststream.nats import JStream, PullSub
from nats.js.api import StreamConfig

from defendable_runtime import progress
from defendable_runtime.messaging import NatsBatchMessage, consumer, durable_subscriber, ensure_streams, make_broker
from defendable_stack.servers import Stack

MESSAGES = 400
BODY = b"x" * 48 * 1024  # ~19 MB in all: far more than one 20 ms fetch window takes in


async def test_a_stopping_subscriber_hands_back_what_arrived_after_its_last_fetch(stack: Stack) -> None:
    tag = secrets.token_hex(4)
    stream, subject, durable = f"HANDBACK_{tag}", f"handback.{tag}.>", f"handback-{tag}"
    nc = await nats.connect(stack.nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    await asyncio.gather(*(js.publish(f"handback.{tag}.{i}", BODY) for i in range(MESSAGES)))

    broker = make_broker(stack.nats_url)
    pull = PullSub(batch_size=MESSAGES, timeout=0.02, batch=True)
    subscriber = durable_subscriber(broker, subject, JStream(stream, declare=False), consumer(durable), pull)
    taken: list[int] = []
    finish = asyncio.Event()

    @subscriber
    async def handle(msg: NatsBatchMessage) -> None:
        raws = list(msg.raw_message)
        taken.append(len(raws))
        await finish.wait()  # still running when the stop begins: FastStream waits for it
        for raw in raws:
            await raw.ack()

    try:
        await ensure_streams(broker)
        await broker.start()
        deadline = time.monotonic() + 30
        while not taken:
            assert time.monotonic() < deadline, "the subscriber took nothing"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # the rest of the pull arrives meanwhile
        pulled: Any = subscriber.subscription
        parked = pulled._sub._pending_queue.qsize()  # nats-py's queue: what arrived after the fetch
        assert parked > 0 and taken[0] < MESSAGES, f"no message arrived after the fetch ({taken}): nothing to test"
        stopping = asyncio.create_task(broker.stop())
        await asyncio.sleep(0.2)
        finish.set()
        await stopping

        # Another replica on the same durable gets every message the stopped one did not ack,
        # at once: well inside the ack wait, which is when an unreturned message would come back.
        assert progress.ACK_WAIT_S >= 5
        replica = await js.pull_subscribe(subject, durable=durable, stream=stream)
        got = 0
        deadline = time.monotonic() + progress.ACK_WAIT_S / 2
        while got < MESSAGES - taken[0] and time.monotonic() < deadline:
            try:
                batch = await replica.fetch(MESSAGES, timeout=0.5)
            except TimeoutError:
                continue
            got += len(batch)
            for msg in batch:
                await msg.ack()
        assert got == MESSAGES - taken[0], f"{got} of {MESSAGES - taken[0]} came back ({parked} were parked)"
    finally:
        if broker.running:
            await broker.stop()
        await js.delete_stream(stream)
        await nc.close()
