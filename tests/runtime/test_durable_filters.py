"""One durable consumer over several subjects (real nats-server): the ledger takes its four mint events this way.

An existing durable on one subject converges onto the several (the ledger's "ledger" durable
took approvals alone before cooks and incidents), and delivers them in stream order, skipping
the subjects it does not name.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import nats
from faststream.nats import JStream, PullSub
from nats.js.api import StreamConfig

from defendable_runtime.messaging import NatsBatchMessage, consumer, durable_subscriber, ensure_streams, make_broker
from defendable_stack.servers import Stack


async def test_a_durable_on_one_subject_converges_onto_several_and_delivers_them_in_stream_order(stack: Stack) -> None:
    tag = secrets.token_hex(4)
    stream, durable = f"FILTERS_{tag}", f"filters-{tag}"
    nc = await nats.connect(stack.nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"f{tag}.>"]))
    pull = PullSub(batch_size=10, timeout=0.05, batch=True)

    # 1. As first deployed: one subject.
    first = make_broker(stack.nats_url)
    durable_subscriber(first, f"f{tag}.a.>", JStream(stream, declare=False), consumer(durable), pull)
    await ensure_streams(first)
    before = await js.consumer_info(stream, durable)
    await first.stop()
    assert (before.config.filter_subject, before.config.filter_subjects) == (f"f{tag}.a.>", None)

    # 2. The next version names two subjects under the same durable.
    broker = make_broker(stack.nats_url)
    subscriber = durable_subscriber(
        broker, [f"f{tag}.a.>", f"f{tag}.c.>"], JStream(stream, declare=False), consumer(durable), pull
    )
    got: list[str] = []
    arrived = asyncio.Event()

    @subscriber
    async def handle(msg: NatsBatchMessage) -> None:
        for raw in msg.raw_message:
            got.append(raw.subject)
            await raw.ack()
        arrived.set()

    try:
        await ensure_streams(broker)
        after = await js.consumer_info(stream, durable)
        assert (after.config.filter_subject, after.config.filter_subjects) == (None, [f"f{tag}.a.>", f"f{tag}.c.>"])
        await broker.start()
        sent = [f"f{tag}.{kind}.{i}" for i in range(5) for kind in ("a", "b", "c")]
        for subject in sent:
            await js.publish(subject, b"{}")
        wanted = [s for s in sent if not s.startswith(f"f{tag}.b.")]
        deadline = time.monotonic() + 30
        while len(got) < len(wanted) and time.monotonic() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 1.0)
        await asyncio.sleep(0.2)  # a message of the unnamed subject would arrive now
        assert got == wanted
    finally:
        await broker.stop()
        await js.delete_stream(stream)
        await nc.close()
