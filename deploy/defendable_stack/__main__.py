"""python -m defendable_stack up|down|status — the whole stack on this machine.

``up`` starts NATS, SeaweedFS (S3) and PostgreSQL with their data under
``.stack/`` (kept between runs), unless NATS_URL, DATABASE_URL or
S3_ENDPOINT_URL name servers to use instead; then the five services and the witness, all
detached. ``down`` stops what ``up`` started; ``status`` says what is alive.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defendable_stack.process import (
    StackError,
    cmdline,
    ensure_importable,
    free_port,
    log_tail,
    pid_alive,
    port_is_free,
    start_service,
    stop_pid,
)
from defendable_stack.servers import Server, Stack, start_stack

SERVICES = ("gateway", "intake", "referee", "ledger", "render", "witness")
DEFAULT_GATEWAY_PORT = 8700
READY_TIMEOUT_S = 60.0
STATE_VERSION = 1


def default_dir() -> Path:
    """``.stack/`` in the repository root (cwd when not run from a checkout)."""
    if env := os.environ.get("DEFENDABLE_STACK_DIR"):
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / ".stack"
    return Path.cwd() / ".stack"


def line(name: str, state: str, detail: str = "") -> None:
    print(f"{name:<10}{state:<9}{detail}".rstrip(), flush=True)


# --- up ----------------------------------------------------------------------


def gateway_port() -> int:
    if env := os.environ.get("GATEWAY_PORT"):
        return int(env)
    return DEFAULT_GATEWAY_PORT if port_is_free(DEFAULT_GATEWAY_PORT) else free_port()


def server_entry(server: Server) -> dict[str, Any]:
    return {
        "name": server.name,
        "kind": "server",
        "pid": server.pid,
        "url": server.url,
        "port": server.port,
        "log": str(server.log_path),
        "marker": Path(server.argv[0]).name,
        "stop_signal": server.stop_signal.name,
        "stop_timeout": server.stop_timeout,
        "ready_s": round(server.ready_s, 2),
    }


def up(base: Path, *, wait: bool, servers_only: bool, timeout: float) -> int:
    state_path = base / "state.json"
    if state_path.exists():
        previous = json.loads(state_path.read_text())
        if any(pid_alive(p["pid"]) for p in previous["processes"]):
            line("stack", "up", f"already running; state in {state_path}")
            return status(base)
        state_path.unlink()  # every process of it is gone: a stale file
    if not servers_only:
        for name in SERVICES:
            ensure_importable(f"defendable_{name}")

    base.mkdir(parents=True, exist_ok=True)
    stack = start_stack(base)
    processes = [server_entry(server) for server in stack.servers]
    for server in stack.servers:
        line(server.name, "started", f"pid {server.pid:<8}{server.url}  ({server.ready_s:.1f}s)")
    for name, url in external(stack).items():
        line(name, "external", url)

    env = stack.env()
    port = gateway_port()
    env |= {
        "GATEWAY_HOST": os.environ.get("GATEWAY_HOST", "127.0.0.1"),
        "GATEWAY_PORT": str(port),
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}"),
    }
    state: dict[str, Any] = {
        "version": STATE_VERSION,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gateway_url": f"http://127.0.0.1:{port}",
        "env": env,
        "processes": processes,
    }
    if not servers_only:
        try:
            for name in SERVICES:
                module = f"defendable_{name}"
                log_path = base / "logs" / f"{name}.log"
                process = start_service(module, env, log_path)
                processes.append(
                    {"name": name, "kind": "service", "pid": process.pid, "log": str(log_path), "marker": module}
                )
                line(name, "started", f"pid {process.pid:<8}log {log_path}")
        except BaseException:
            write_state(state_path, state)
            down(base, purge=False, quiet=True)
            raise
    write_state(state_path, state)
    line("state", "written", str(state_path))
    if wait and not servers_only:
        return wait_ready(state, timeout)
    return 0


def demo(base: Path) -> int:
    """Bring the stack up (or find it up and ready), then push one real run through it."""
    from defendable_stack.demo import run_demo  # imports the services' client code: only when asked

    state_path = base / "state.json"
    was_up = state_path.exists()
    code = up(base, wait=True, servers_only=False, timeout=READY_TIMEOUT_S)
    if code == 0 and was_up:  # found running: still make sure it is ready
        code = wait_ready(json.loads(state_path.read_text()), READY_TIMEOUT_S)
    if code != 0:
        return code
    code = run_demo(base, state_path)
    print("The stack stays up: `make down` stops it.")
    return code


def external(stack: Stack) -> dict[str, str]:
    ours = {server.url for server in stack.servers}
    urls = {"nats": stack.nats_url, "postgres": stack.database_url, "s3": stack.s3_endpoint_url}
    return {name: url for name, url in urls.items() if url not in ours}


def write_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.chmod(0o600)  # it holds the S3 secret
    temporary.replace(path)


def wait_ready(state: dict[str, Any], timeout: float) -> int:
    url = f"{state['gateway_url']}/readyz"
    started = time.monotonic()
    next_note = started + 5.0
    line("gateway", "waiting", f"for {url} (up to {timeout:.0f}s)")
    while (elapsed := time.monotonic() - started) < timeout:
        for process in state["processes"]:
            if not pid_alive(process["pid"]):
                line(process["name"], "exited", f"log {process['log']}")
                print(log_tail(Path(process["log"])), file=sys.stderr)
                return 1
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 — our own http URL
        ):
            if response.status == 200:
                line("gateway", "ready", f"{state['gateway_url']}  ({elapsed:.1f}s)")
                return 0
        if time.monotonic() >= next_note:
            line("gateway", "waiting", f"{elapsed:.0f}s")
            next_note += 5.0
        time.sleep(0.25)
    line(
        "gateway", "timeout", f"{url} not 200 after {timeout:.0f}s; logs in {Path(state['processes'][0]['log']).parent}"
    )
    return 1


# --- down --------------------------------------------------------------------


def down(base: Path, *, purge: bool, quiet: bool = False) -> int:
    def say(name: str, state: str, detail: str = "") -> None:
        if not quiet:
            line(name, state, detail)

    state_path = base / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_text())
        processes: list[dict[str, Any]] = state["processes"]
        # Services first (they hold connections), then servers, last started first;
        # the members of each phase stop in parallel.
        for kind in ("service", "server"):
            phase = [p for p in reversed(processes) if p["kind"] == kind]
            with ThreadPoolExecutor(max_workers=max(1, len(phase))) as pool:
                outcomes = list(pool.map(stop_entry, phase))
            for process, (state, detail) in zip(phase, outcomes, strict=True):
                say(process["name"], state, detail)
        state_path.unlink()
    else:
        say("stack", "down", "nothing running")
    if purge and base.exists():
        shutil.rmtree(base)
        say("data", "removed", str(base))
    return 0


def stop_entry(process: dict[str, Any]) -> tuple[str, str]:
    """Stop one process from state.json; (state, detail) for the report line."""
    pid = int(process["pid"])
    if not pid_alive(pid):
        return "gone", f"pid {pid}"
    if process["marker"] not in cmdline(pid):
        return "gone", f"pid {pid} (now another program's; left alone)"
    started = time.monotonic()
    polite = stop_pid(
        pid,
        sig=signal.Signals[process.get("stop_signal", "SIGTERM")],
        timeout=float(process.get("stop_timeout", 10.0)),
    )
    elapsed = time.monotonic() - started
    return "stopped", f"pid {pid:<8}({elapsed:.1f}s{'' if polite else ', forced'})"


# --- status ------------------------------------------------------------------


def status(base: Path) -> int:
    state_path = base / "state.json"
    if not state_path.exists():
        line("stack", "down", f"no {state_path}")
        return 3
    state = json.loads(state_path.read_text())
    all_alive = True
    for process in state["processes"]:
        alive = pid_alive(process["pid"]) and process["marker"] in cmdline(process["pid"])
        all_alive &= alive
        where = process.get("url") or f"log {process['log']}"
        line(process["name"], "alive" if alive else "dead", f"pid {process['pid']:<8}{where}")
    line("gateway", "url", state["gateway_url"])
    return 0 if all_alive else 1


# --- entry point -----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m defendable_stack",
        description="Run NATS, S3 (SeaweedFS), PostgreSQL and the five Defendable services on this machine.",
        epilog="NATS_URL, DATABASE_URL and S3_ENDPOINT_URL (+ S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, "
        "S3_REGION) name existing servers to use instead of starting them. GATEWAY_PORT picks the "
        f"gateway's port (default {DEFAULT_GATEWAY_PORT}, or a free one when taken).",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="state and data directory (default: .stack/ in the repo)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start servers and services, detached")
    up_parser.add_argument("--wait", action="store_true", help="wait until the gateway's /readyz answers 200")
    up_parser.add_argument("--timeout", type=float, default=READY_TIMEOUT_S, help="seconds --wait waits (default 60)")
    up_parser.add_argument("--servers-only", action="store_true", help="start NATS, S3 and PostgreSQL only")
    down_parser = commands.add_parser("down", help="stop everything 'up' started")
    down_parser.add_argument("--purge", action="store_true", help="also delete the data directories")
    commands.add_parser("status", help="show each process and whether it is alive")
    commands.add_parser("demo", help="start the stack if needed and push one real run through it")
    args = parser.parse_args(argv)
    base: Path = (args.dir or default_dir()).resolve()
    try:
        if args.command == "up":
            return up(base, wait=args.wait, servers_only=args.servers_only, timeout=args.timeout)
        if args.command == "demo":
            return demo(base)
        if args.command == "down":
            return down(base, purge=args.purge)
        return status(base)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
