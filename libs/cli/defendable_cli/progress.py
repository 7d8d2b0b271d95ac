"""Progress lines for long commands: one line per step, on stderr, with the time since the start.

    [  3.2s] benchmark   LoadGen Offline VALID, 4,812 samples/s

Plain text, so a log file or CI reads it as well as a person does. On a terminal (and only
there) a step that waits shows a ticking clock on its line until it ends.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

NAME_WIDTH = 11
TICK_S = 0.25


class Progress:
    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def line(self, at: float, name: str, message: str) -> str:
        return f"[{at:6.1f}s] {name:<{NAME_WIDTH}} {message}"

    def step(self, name: str, message: str) -> None:
        with self._lock:
            clear = "\r\033[K" if self._tty else ""
            self._stream.write(clear + self.line(self.elapsed, name, message) + "\n")
            self._stream.flush()

    @contextmanager
    def waiting(self, name: str, message: str) -> Iterator[None]:
        """A step that takes a while: announced on its own line; on a terminal, a line that
        ticks its clock instead, wiped when the step ends (its result is the next step)."""
        if not self._tty:
            self.step(name, message)
            yield
            return
        done = threading.Event()
        began = self.elapsed

        def show() -> None:
            with self._lock:
                shown = self.line(self.elapsed, name, f"{message} … {self.elapsed - began:.0f} s")
                self._stream.write("\r\033[K" + shown)
                self._stream.flush()

        def tick() -> None:
            show()
            while not done.wait(TICK_S):
                show()

        ticker = threading.Thread(target=tick, name="progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            with self._lock:
                self._stream.write("\r\033[K")
                self._stream.flush()
