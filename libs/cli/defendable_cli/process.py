"""Child processes with a deadline and a size limit: the probe runs tools it does not control.

Each child writes stdout straight into its evidence file (the bytes the referee will read,
unedited) and stderr into a small side file; a watcher kills the child's whole process
group once it runs past its deadline or writes past its limit, so neither a hung
`dcgmi` nor a runaway log can hold the probe or fill the disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.05
STDERR_LIMIT = 64 * 1024  # kept for messages
STDERR_FILE_LIMIT = 16 * 1024 * 1024  # a child that writes more to stderr is killed
STOP_GRACE_S = 5.0


class ProcessFailed(Exception):
    """The child could not start, ran past its deadline or limit, or exited non-zero; the message says which."""


@dataclass(frozen=True)
class Finished:
    argv: tuple[str, ...]
    returncode: int
    stdout: Path
    stderr: str  # its first STDERR_LIMIT bytes, decoded
    seconds: float
    stopped: bool  # still running when stop() ended it (a background sampler), rather than exited by itself


class Child:
    """A started child process. `wait` for one that ends by itself, `stop` for a background sampler."""

    def __init__(
        self,
        argv: Sequence[str],
        stdout: Path,
        *,
        limit_bytes: int,
        timeout_s: float,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.stdout = stdout
        self._limit = limit_bytes
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s
        self._began = time.monotonic()
        self._err_path = stdout.with_name(stdout.name + ".stderr")
        self._why = ""
        self._stopped = False
        with stdout.open("wb") as out, self._err_path.open("wb") as err:
            try:
                self._proc = subprocess.Popen(  # argv is the probe's own list, never a shell line
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=None if env is None else dict(env),
                    start_new_session=True,  # its own process group: killed whole, grandchildren included
                )
            except OSError as exc:
                self._err_path.unlink(missing_ok=True)
                raise ProcessFailed(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from exc
        self._watcher = threading.Thread(target=self._watch, name=f"watch {self.argv[0]}", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while self._proc.poll() is None:
            if time.monotonic() > self._deadline:
                self._kill(f"ran past its {self._timeout_s:g} s deadline")
            elif self._over_limit():
                self._kill(f"wrote more than {self._limit} bytes")
            time.sleep(POLL_S)

    def _over_limit(self) -> bool:
        try:
            return self.stdout.stat().st_size > self._limit or self._err_path.stat().st_size > STDERR_FILE_LIMIT
        except OSError:
            return False

    def _kill(self, why: str) -> None:
        self._why = self._why or why
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self._proc.pid, number)

    def wait(self) -> Finished:
        """Wait for the child to end by itself; ProcessFailed unless it exits 0 within its bounds."""
        self._proc.wait()
        self._watcher.join()
        finished = self._finished()
        if self._why:
            raise ProcessFailed(f"{self.argv[0]} {self._why} and was killed")
        if finished.returncode != 0:
            detail = finished.stderr.strip().splitlines()[-1:] or [""]
            raise ProcessFailed(f"{self.argv[0]} exited with {finished.returncode}: {detail[0][:300]}")
        return finished

    def stop(self) -> Finished:
        """End a background child (SIGTERM, then SIGKILL after a grace period); what it wrote so far."""
        if self._proc.poll() is None:
            self._stopped = True
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait()
        self._watcher.join()
        if self._why:
            raise ProcessFailed(f"{self.argv[0]} {self._why} and was killed")
        return self._finished()

    def _finished(self) -> Finished:
        with self._err_path.open("rb") as err:
            stderr = err.read(STDERR_LIMIT).decode("utf-8", "replace")
        self._err_path.unlink(missing_ok=True)
        return Finished(
            argv=self.argv,
            returncode=self._proc.returncode,
            stdout=self.stdout,
            stderr=stderr,
            seconds=time.monotonic() - self._began,
            stopped=self._stopped,
        )


def run(
    argv: Sequence[str],
    stdout: Path,
    *,
    limit_bytes: int,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> Finished:
    """Run a child to completion within its bounds; its stdout is left in `stdout`."""
    return Child(argv, stdout, limit_bytes=limit_bytes, timeout_s=timeout_s, env=env).wait()
