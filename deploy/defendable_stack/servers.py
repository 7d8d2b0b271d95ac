"""Real NATS, S3 (SeaweedFS) and PostgreSQL servers from PyPI packages.

Each ``start_*`` function takes a data directory, picks free ports on
127.0.0.1, starts the server detached in its own process group with its log in
the data directory, and returns once the server answers a real request
(JetStream account info, an S3 put, ``SELECT 1``). A second start on the same
data directory reuses the data.

Durability settings follow DESIGN.md §5: JetStream fsyncs every write
(``sync_interval: always``) and PostgreSQL keeps ``fsync`` and
``synchronous_commit`` on.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from defendable_stack.process import (
    STOP_TIMEOUT_S,
    RunAs,
    ServerStartError,
    ServiceMissing,
    StackError,
    free_port,
    free_ports,
    kill_pid,
    kill_service,
    log_tail,
    port_is_free,
    spawn,
    start_service,
    stop_pid,
    stop_service,
)

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_REGION",
    "NatsServer",
    "PostgresServer",
    "S3Server",
    "Server",
    "ServerStartError",
    "ServiceMissing",
    "Stack",
    "StackError",
    "free_port",
    "kill_service",
    "stack_from_env",
    "start_nats",
    "start_postgres",
    "start_s3",
    "start_service",
    "stop_service",
]

HOST = "127.0.0.1"
DEFAULT_BUCKET = "defendable"
DEFAULT_REGION = "us-east-1"
READY_TIMEOUT_S = 60.0
PG_SUPERUSER = "postgres"
# The account PostgreSQL runs as when we are root; the same name pgserver uses.
PG_SYSTEM_USER = "pgserver"

T = TypeVar("T")


# --- binaries -----------------------------------------------------------------


def _script(name: str) -> str:
    """A console script installed next to this interpreter, else from PATH."""
    for directory in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found next to {sys.executable} or on PATH; pip install -e '.[stack]'")
    return found


def _pg_bin(name: str) -> str:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("pgserver is not installed; pip install -e '.[stack]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    if not path.is_file():
        raise StackError(f"{path} is missing from the pgserver package")
    return str(path)


# --- waiting -----------------------------------------------------------------


def _run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a private loop in a thread: safe inside a running loop too."""
    result: list[T] = []
    error: list[BaseException] = []

    def main() -> None:
        async def wrapper() -> T:
            return await make()

        try:
            result.append(asyncio.run(wrapper()))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=main, name="defendable-stack-probe", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _wait_ready(server: Server, probe: Callable[[], None], timeout: float) -> float:
    """Call ``probe`` until it stops raising; return the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise ServerStartError(
                f"{server.name} exited with code {server.process.returncode} while starting; "
                f"log {server.log_path}:\n{log_tail(server.log_path)}"
            )
        try:
            probe()
        except ServerStartError:
            raise  # the probe found what no retry mends
        except Exception as exc:
            last = exc
            time.sleep(0.1)
            continue
        return time.monotonic() - started
    raise ServerStartError(
        f"{server.name} not ready after {timeout:.0f}s (last error: {last!r}); "
        f"log {server.log_path}:\n{log_tail(server.log_path)}"
    )


# --- servers -----------------------------------------------------------------


@dataclass
class Server:
    """A server process we started: ``url``, ``pid``, ``stop()``, ``kill()``, ``restart()``."""

    name: str
    argv: list[str]
    data_dir: Path
    log_path: Path
    url: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    ready_s: float = 0.0
    """Seconds the last start took from spawn to the first successful probe."""
    env: dict[str, str] | None = None
    run_as: RunAs | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = STOP_TIMEOUT_S

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError(f"{self.name} is not running")
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def probe(self) -> None:
        """Raise unless the server answers a real request."""
        raise NotImplementedError

    def _accepting(self) -> None:
        # A cheap check first: some clients back off for seconds after a refusal.
        socket.create_connection((HOST, self.port), timeout=1).close()

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        if self.alive:
            raise StackError(f"{self.name} is already running as pid {self.pid}")
        self.process = spawn(self.argv, self.log_path, cwd=self.data_dir, env=self.env, run_as=self.run_as)
        try:
            self.ready_s = _wait_ready(self, self.probe, timeout)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float | None = None) -> None:
        """Polite shutdown; SIGKILL to the process group after ``timeout``."""
        if self.process is not None:
            wait = self.stop_timeout if timeout is None else timeout
            stop_pid(self.process.pid, sig=self.stop_signal, timeout=wait, popen=self.process)

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would; waits until it is gone."""
        if self.process is not None:
            kill_pid(self.process.pid, popen=self.process)

    def restart(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start again on the same data directory and port (stopping first if alive)."""
        if self.alive:
            self.stop()
        # A killed server's port can stay bound for a moment; wait for it.
        deadline = time.monotonic() + 10.0
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start(timeout)


@dataclass
class NatsServer(Server):
    def probe(self) -> None:
        self._accepting()
        _run_async(lambda: _nats_probe(self.url))


async def _nats_probe(url: str) -> None:
    import nats

    async def quiet(_: Exception) -> None:
        """Refused connections while starting are expected; nats-py would log each."""

    nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False, error_cb=quiet)
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


@dataclass
class S3Server(Server):
    access_key_id: str = ""
    secret_access_key: str = ""
    region: str = DEFAULT_REGION
    bucket: str | None = DEFAULT_BUCKET
    """Created on start and written to once, so the first real write finds a volume."""

    @property
    def endpoint(self) -> str:
        return self.url

    def client(self) -> Any:
        """A plain botocore S3 client for this server (signature v4, path-style)."""
        return s3_client(self.url, self.access_key_id, self.secret_access_key, self.region)

    def probe(self) -> None:
        self._accepting()
        client = self.client()
        client.list_buckets()
        if self.bucket is not None:
            from botocore.exceptions import ParamValidationError

            try:
                client.create_bucket(Bucket=self.bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            except (ParamValidationError, client.exceptions.ClientError) as exc:
                # refused by botocore's own check, or by the server: either way no retry mends it
                if isinstance(exc, ParamValidationError) or exc.response["Error"]["Code"] == "InvalidBucketName":
                    raise ServerStartError(
                        f"S3 refuses the bucket name {self.bucket!r}: set S3_BUCKET to 3-63 lowercase"
                        f" letters, digits, dots or hyphens ({exc})"
                    ) from exc
                raise
            client.put_object(Bucket=self.bucket, Key=".defendable-stack-probe", Body=b"ok")
            client.delete_object(Bucket=self.bucket, Key=".defendable-stack-probe")


def s3_client(endpoint: str, access_key_id: str, secret_access_key: str, region: str = DEFAULT_REGION) -> Any:
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=region,
        config=botocore.config.Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 1},
        ),
    )


@dataclass
class PostgresServer(Server):
    stop_signal: signal.Signals = signal.SIGINT  # "fast" shutdown; SIGTERM waits for clients

    @property
    def dsn(self) -> str:
        return self.url

    def probe(self) -> None:
        self._accepting()
        _run_async(lambda: _pg_probe(self.url))


async def _pg_probe(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


# --- NATS --------------------------------------------------------------------


def start_nats(data_dir: Path, *, port: int | None = None, timeout: float = READY_TIMEOUT_S) -> NatsServer:
    """nats-server with JetStream (fsync on every write) on 127.0.0.1:``port`` or a free port."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = data_dir / "nats.conf"
    config.write_text(
        "# Written by defendable_stack; rewritten on every start.\n"
        f"listen: {HOST}:{port}\n"
        "server_name: defendable\n"
        "max_payload: 8MB\n"  # 8 MiB: defendable_runtime.messaging.MAX_MESSAGE_BYTES
        "jetstream {\n"
        # nats-server appends "jetstream" itself: data_dir/jetstream.
        f"  store_dir: {json.dumps(str(data_dir))}\n"
        # DESIGN.md §5: an acknowledged publish is on disk before the ack.
        "  sync_interval: always\n"
        "}\n"
    )
    server = NatsServer(
        name="nats",
        argv=[_script("nats-server"), "--config", str(config)],
        data_dir=data_dir,
        log_path=data_dir / "nats.log",
        url=f"nats://{HOST}:{port}",
        port=port,
    )
    server.start(timeout)
    return server


# --- S3 (SeaweedFS) ----------------------------------------------------------


def _s3_identity(data_dir: Path) -> tuple[Path, str, str]:
    """The S3 config file and its one admin key; kept so a restart reuses it."""
    path = data_dir / "s3.json"
    if path.exists():
        config = json.loads(path.read_text())
        credential = config["identities"][0]["credentials"][0]
        return path, str(credential["accessKey"]), str(credential["secretKey"])
    access_key, secret_key = "defendable", secrets.token_hex(20)
    config = {
        "identities": [
            {
                "name": "defendable",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path, access_key, secret_key


def start_s3(
    data_dir: Path,
    *,
    port: int | None = None,
    bucket: str | None = DEFAULT_BUCKET,
    timeout: float = READY_TIMEOUT_S,
) -> S3Server:
    """``weed server -s3`` (master, volume, filer, S3) on 127.0.0.1 with one admin key.

    Every port SeaweedFS would open is named explicitly: it otherwise listens
    on each HTTP port + 10000 for gRPC and opens Iceberg and Lance catalogs.
    """
    data_dir = Path(data_dir).resolve()
    for sub in ("master", "volume", "filer"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    config, access_key, secret_key = _s3_identity(data_dir)
    s3_port = port or free_port()
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc, iam = free_ports(8)
    argv = [
        _script("weed"),
        "server",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-dir={data_dir / 'volume'}",
        f"-master.dir={data_dir / 'master'}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        # Small volumes so a temporary directory holds several; 0 = as many as the disk allows.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-master.telemetry=false",
        # The volume server otherwise lingers 10s after SIGTERM telling a master
        # that is shutting down too.
        "-volume.preStopSeconds=0",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        f"-s3.config={config}",
        f"-iam.port={iam}",
        "-iam=false",
        "-webdav=false",
        "-sftp=false",
        "-mq.broker=false",
        "-mq.agent=false",
        "-metricsPort=0",
    ]
    server = S3Server(
        name="s3",
        argv=argv,
        data_dir=data_dir,
        log_path=data_dir / "weed.log",
        url=f"http://{HOST}:{s3_port}",
        port=s3_port,
        access_key_id=access_key,
        secret_access_key=secret_key,
        bucket=bucket,
        # weed's graceful stop takes ~15s (gRPC streams drain); its writes are
        # already in the kernel by then, so a SIGKILL after 3s loses nothing.
        stop_timeout=3.0,
    )
    server.start(timeout)
    return server


# --- PostgreSQL --------------------------------------------------------------


def _pg_run_as() -> RunAs | None:
    """None unless we are root; then the unprivileged account to run PostgreSQL as.

    PostgreSQL refuses to run as root. Like pgserver, we create a system
    account (``pgserver``) once and run initdb and postgres as it.
    """
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise StackError(
                f"running as root, PostgreSQL needs an unprivileged account and useradd is missing; "
                f"create user {PG_SYSTEM_USER!r} or run as a normal user"
            ) from None
        subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    grp.getgrgid(entry.pw_gid)  # fail early if the account's group is gone
    return RunAs(PG_SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def _grant_traverse(path: Path) -> None:
    """Let other users pass through (not list) every directory above ``path``."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod(mode | 0o001)


def start_postgres(data_dir: Path, *, port: int | None = None, timeout: float = READY_TIMEOUT_S) -> PostgresServer:
    """PostgreSQL from pgserver's binaries on 127.0.0.1, trust auth, fsync and synchronous_commit on.

    The cluster lives in ``data_dir/pgdata``; initdb runs only when it is new.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    run_as = _pg_run_as()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    if run_as is not None:
        _grant_traverse(data_dir)
    if not (pgdata / "PG_VERSION").exists():
        shutil.rmtree(pgdata, ignore_errors=True)
        pgdata.mkdir(mode=0o700)
        if run_as is not None:
            os.chown(pgdata, run_as.uid, run_as.gid)
        with open(data_dir / "initdb.log", "wb") as log:
            result = subprocess.run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    PG_SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                env=env,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
                check=False,
            )
        if result.returncode != 0:
            raise ServerStartError(
                f"initdb failed with code {result.returncode}; log {data_dir / 'initdb.log'}:\n"
                f"{log_tail(data_dir / 'initdb.log')}"
            )
    port = port or free_port()
    settings = {
        "listen_addresses": HOST,
        "port": str(port),
        "unix_socket_directories": "",  # TCP only: no socket paths to own or outgrow
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "max_connections": "200",
    }
    argv = [_pg_bin("postgres"), "-D", str(pgdata)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    server = PostgresServer(
        name="postgres",
        argv=argv,
        data_dir=data_dir,
        log_path=data_dir / "postgres.log",
        url=f"postgresql://{PG_SUPERUSER}@{HOST}:{port}/postgres",
        port=port,
        env=env,
        run_as=run_as,
    )
    server.start(timeout)
    return server


# --- the stack -----------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """Where the services find NATS, PostgreSQL and S3."""

    nats_url: str
    database_url: str
    s3_endpoint_url: str
    s3_access_key_id: str
    s3_secret_access_key: str
    s3_region: str = DEFAULT_REGION
    s3_bucket: str = DEFAULT_BUCKET
    servers: tuple[Server, ...] = field(default=(), compare=False, repr=False)
    """The servers this process started for it (empty when all came from the environment)."""

    def env(self) -> dict[str, str]:
        """The environment variables every service reads."""
        return {
            "NATS_URL": self.nats_url,
            "DATABASE_URL": self.database_url,
            "S3_ENDPOINT_URL": self.s3_endpoint_url,
            "S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
            "S3_REGION": self.s3_region,
            "S3_BUCKET": self.s3_bucket,
        }

    def stop(self) -> None:
        """Stop the servers this process started, last started first."""
        for server in reversed(self.servers):
            server.stop()


def stack_from_env(environ: Mapping[str, str] | None = None) -> Stack | None:
    """A Stack naming existing servers, when NATS_URL, DATABASE_URL and S3_ENDPOINT_URL are all set."""
    environ = os.environ if environ is None else environ
    if not all(environ.get(name) for name in ("NATS_URL", "DATABASE_URL", "S3_ENDPOINT_URL")):
        return None
    return Stack(
        nats_url=environ["NATS_URL"],
        database_url=environ["DATABASE_URL"],
        s3_endpoint_url=environ["S3_ENDPOINT_URL"],
        s3_access_key_id=environ.get("S3_ACCESS_KEY_ID", ""),
        s3_secret_access_key=environ.get("S3_SECRET_ACCESS_KEY", ""),
        s3_region=environ.get("S3_REGION") or DEFAULT_REGION,
        s3_bucket=environ.get("S3_BUCKET") or DEFAULT_BUCKET,
    )


def start_stack(base_dir: Path, environ: Mapping[str, str] | None = None) -> Stack:
    """A Stack on ``base_dir/{nats,s3,pg}``; a server named by the environment is used, not started.

    Each of NATS_URL, DATABASE_URL and S3_ENDPOINT_URL (with S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY, S3_REGION) overrides its server on its own.
    """
    environ = os.environ if environ is None else environ
    base_dir = Path(base_dir)
    started: list[Server] = []
    try:
        nats_url = environ.get("NATS_URL") or _started(started, start_nats(base_dir / "nats")).url
        database_url = environ.get("DATABASE_URL") or _started(started, start_postgres(base_dir / "pg")).url
        bucket = environ.get("S3_BUCKET") or DEFAULT_BUCKET
        if environ.get("S3_ENDPOINT_URL"):
            endpoint = environ["S3_ENDPOINT_URL"]
            key, secret = environ.get("S3_ACCESS_KEY_ID", ""), environ.get("S3_SECRET_ACCESS_KEY", "")
            region = environ.get("S3_REGION") or DEFAULT_REGION
        else:
            s3 = _started(started, start_s3(base_dir / "s3", bucket=bucket))
            endpoint, key, secret, region = s3.url, s3.access_key_id, s3.secret_access_key, s3.region
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return Stack(nats_url, database_url, endpoint, key, secret, region, bucket, servers=tuple(started))


def _started(started: list[Server], server: T) -> T:
    assert isinstance(server, Server)
    started.append(server)
    return server
