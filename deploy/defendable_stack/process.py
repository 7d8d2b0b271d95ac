"""Child processes: spawn detached, stop politely, kill hard, wait until gone.

Every process is started in its own session (``start_new_session``), so it is
the leader of its own process group: ``kill`` takes the whole group down at
once (a PostgreSQL postmaster and its backends, like a machine crash), and a
detached ``up`` leaves nothing tied to the terminal that ran it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 10.0


class StackError(Exception):
    """Base of every error this package raises."""


class ServerStartError(StackError):
    """A server did not become ready in time, or exited while starting."""


class ServiceMissing(StackError):
    """A service's module cannot be imported from this interpreter."""


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account to run a child as (PostgreSQL refuses root)."""

    name: str
    uid: int
    gid: int


def free_port(host: str = "127.0.0.1", *, avoid: Sequence[int] = ()) -> int:
    """A TCP port nothing listens on right now (the kernel's pick), not in ``avoid``."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port
    raise StackError(f"no free port on {host} after 100 tries")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        ports.append(free_port(host, avoid=ports))
    return ports


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``port`` (TIME_WAIT leftovers don't count:
    servers bind with SO_REUSEADDR, so we probe the same way)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            # Drop root's supplementary groups too, not just the uid.
            extra_groups=[] if run_as else None,
        )


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): kill(0) succeeding is the best we know
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # after ')': state, ppid, pgrp
            return True
    return False


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def wait_gone(pid: int, timeout: float, *, popen: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait until ``pid`` has exited (reaping it when it is our child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        time.sleep(0.02)
    return False


def stop_pid(
    pid: int,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT_S,
    popen: subprocess.Popen[bytes] | None = None,
) -> bool:
    """Send ``sig`` to the group leader ``pid``; SIGKILL its group after ``timeout``.

    The leader gets the polite signal alone (a postmaster shuts its backends
    down itself); whatever of the group outlives the leader is killed.
    Returns True when the leader exited on ``sig``, False when it was killed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    polite = wait_gone(pid, timeout, popen=popen)
    if not polite:
        signal_group(pid, signal.SIGKILL)
        wait_gone(pid, 5.0, popen=popen)
    signal_group(pid, signal.SIGKILL)
    wait_group_gone(pid, 5.0)
    return polite


def kill_pid(pid: int, *, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGKILL ``pid``, its process group and all its descendants, as a crash would.

    Plan: 1. freeze the leader so it forks no more; 2. list its descendants
    (PostgreSQL backends call setsid(), so the group alone misses them);
    3. SIGKILL them all; 4. reap: the leader through ``popen``, the orphans
    as their sub-reaper, so no ``<defunct>`` entries remain even where pid 1
    does not reap.
    """
    with contextlib.suppress(ProcessLookupError):  # 1
        os.kill(pid, signal.SIGSTOP)
    family = descendants(pid)  # 2
    if popen is not None and family:
        become_subreaper()
    signal_group(pid, signal.SIGKILL)  # 3
    for member in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    wait_gone(pid, 5.0, popen=popen)  # 4
    deadline = time.monotonic() + 5.0
    pending = list(family)
    while pending and time.monotonic() < deadline:
        for member in list(pending):
            try:
                done = os.waitpid(member, os.WNOHANG)[0] == member
            except ChildProcessError:  # not ours to reap: someone else's child now
                done = not pid_alive(member)
            if done:
                pending.remove(member)
        if pending:
            time.sleep(0.01)
    wait_group_gone(pid, 5.0)


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))  # after ')': state, ppid
    found: list[int] = []
    frontier = [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            found.append(child)
            frontier.append(child)
    return found


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Adopt our orphaned descendants (Linux PR_SET_CHILD_SUBREAPER), so we can reap them."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' when unknown), to guard against pid reuse."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# --- services ---------------------------------------------------------------


def ensure_importable(module: str) -> None:
    """Raise ``ServiceMissing`` unless ``python -m module`` can find it."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ServiceMissing(
            f"service module {module!r} is not importable from {sys.executable}; "
            "install the project into this interpreter (pip install -e .)"
        )


def start_service(module: str, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m module`` in its own process group, logging to ``log_path``.

    ``env`` is laid over the current environment (PATH and friends stay).
    """
    ensure_importable(module)
    return spawn(
        [sys.executable, "-m", module],
        log_path,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
    )


def stop_service(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the service's group leader; SIGKILL the group after ``timeout``."""
    stop_pid(process.pid, timeout=timeout, popen=process)


def kill_service(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the service and everything in its process group."""
    kill_pid(process.pid, popen=process)


def reap(pid: int, timeout: float = 5.0) -> None:
    """Collect the exit status of ``pid`` if it is (now) our child; no-op otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        time.sleep(0.01)
