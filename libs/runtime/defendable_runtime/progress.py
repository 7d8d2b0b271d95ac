"""Progress reports for fetched messages, so consumers can have a short ack wait.

JetStream redelivers a fetched message once its consumer's ack wait passes without an
answer. A short wait hands a crashed process's messages to another one quickly, but a
live process may legitimately hold a message longer: waiting behind its run's earlier
commands, in a mint queue, through a database outage. So every message a process holds
is registered here from fetch until it is settled (acked, naked, terminated), and every
quarter of the ack wait each one gets a progress report (`+WPI`), which restarts its ack
wait. Only a process that died stops reporting, and only its messages come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Iterator

from nats.aio.msg import Msg


def _ack_wait_from_env() -> float:
    wait = float(os.environ.get("CONSUMER_ACK_WAIT_S", "10"))
    if not wait >= 1.0:  # also refuses NaN
        raise SystemExit(f"CONSUMER_ACK_WAIT_S must be at least 1 (seconds), not {wait}")
    return wait


# What a message fetched by a process that died waits before another process gets it.
ACK_WAIT_S = _ack_wait_from_env()
REPORT_EVERY_S = ACK_WAIT_S / 4  # three reports in a row may be late before a wait expires

_held: dict[int, Msg] = {}  # by id(): nats-py messages are unhashable; held here, ids stay unique
_reporter: asyncio.Task[None] | None = None


def hold(raws: Iterable[Msg]) -> None:
    """These messages are this process's until `release`d: report progress on them."""
    global _reporter
    for raw in raws:
        _held[id(raw)] = raw
    loop = asyncio.get_running_loop()
    if _reporter is None or _reporter.done() or _reporter.get_loop() is not loop:
        _reporter = loop.create_task(_report_forever())


def release(raws: Iterable[Msg]) -> None:
    """Settled or handed back: no more reports (one after a nak would postpone its redelivery)."""
    for raw in raws:
        _held.pop(id(raw), None)


@contextlib.contextmanager
def holding(raws: list[Msg]) -> Iterator[None]:
    """Hold a fetched batch while its handler runs: by the handler's end each message is
    settled or handed back, so a handler that failed leaves nothing reported forever."""
    hold(raws)
    try:
        yield
    finally:
        release(raws)


async def _report_forever() -> None:
    while True:
        await asyncio.sleep(REPORT_EVERY_S)
        for raw in list(_held.values()):
            if id(raw) in _held:  # not released while an earlier report was being sent
                with contextlib.suppress(Exception):  # NATS may be away: the ack wait then decides
                    await raw.in_progress()
