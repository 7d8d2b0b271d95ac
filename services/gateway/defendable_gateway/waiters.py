"""Long-poll support: wake HTTP requests waiting on a run when the read model moves it.

In-process only: with several gateway replicas sharing one durable consumer, an
event may be applied by another replica, so a waiter also re-reads the database
every RECHECK_S. Bounded: at most MAX_WAITERS requests wait at once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

RECHECK_S = 1.0
MAX_WAITERS = 10_000
MAX_WAIT_S = 30.0


class Waiters:
    def __init__(self) -> None:
        self._events: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._count = 0

    def full(self) -> bool:
        return self._count >= MAX_WAITERS

    def notify(self, keys: set[tuple[str, str]]) -> None:
        for key in keys:
            for event in self._events.pop(key, ()):
                event.set()

    # `timeout` is one slice of an HTTP long-poll; running out is a normal return, not an error.
    async def wait(self, org_id: str, run_id: str, timeout: float) -> None:  # noqa: ASYNC109
        """Return when the run may have changed, or after `timeout` (whichever first)."""
        event = asyncio.Event()
        key = (org_id, run_id)
        self._events[key].add(event)
        self._count += 1
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._count -= 1
            waiting = self._events.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[key]


waiters = Waiters()
