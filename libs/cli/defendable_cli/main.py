"""`defendable` — canonicalise, hash and verify receipts; probe compute runs; administer orgs.

Exit codes: 0 success (for `verify`: every applicable check passed), 1 a check
failed, 2 bad input or usage; `probe` also: 3 collection failed, 4 the API refused
or could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import msgspec

from defendable_canonical.digest import sha256_digest
from defendable_canonical.jcs import CanonicalError, canonicalize_json
from defendable_cli import audit, verify_cmd

MAX_INPUT = 64 * 1024 * 1024


class CliError(Exception):
    """Bad input: printed as `defendable: <message>`, exit 2."""


def read_input(path: str | None) -> bytes:
    if path not in (None, "-"):
        try:
            return verify_cmd.read_file(path, MAX_INPUT)  # the one bounded file read of the CLI
        except verify_cmd.UnusableInput as exc:
            raise CliError(str(exc)) from exc
    data = sys.stdin.buffer.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise CliError(f"input is larger than {MAX_INPUT} bytes")
    return data


def canonical(data: bytes) -> bytes:
    try:
        return canonicalize_json(data)
    except CanonicalError as exc:
        raise CliError(f"invalid JSON for RFC 8785: {exc}") from exc


def cmd_canonicalize(args: argparse.Namespace) -> int:
    sys.stdout.buffer.write(canonical(read_input(args.file)))
    sys.stdout.buffer.flush()
    return 0


def cmd_hash(args: argparse.Namespace) -> int:
    print(sha256_digest(canonical(read_input(args.file))))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        return verify_cmd.run(args)
    except verify_cmd.UnusableInput as exc:
        raise CliError(str(exc)) from exc


def cmd_create_org(args: argparse.Namespace) -> int:
    from defendable_gateway.admin import create_org  # the gateway owns orgs and keys

    dsn = args.database_url or os.environ.get("DATABASE_URL")
    if not dsn:
        raise CliError("set DATABASE_URL (or pass --database-url) to the gateway's PostgreSQL")
    try:
        created = asyncio.run(create_org(dsn, args.name, args.approver))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(created) + b"\n")
        return 0
    print(f"org {created.org_id} ({created.name})")
    for key in created.keys:
        print(f"  {key.role:<10} {key.key}")
    print("Keys are shown once; only their hashes are stored.")
    return 0


def cmd_sheet_lint(args: argparse.Namespace) -> int:
    from defendable_cli.sheets import lint_files

    return lint_files([Path(f) for f in args.files], as_json=args.json)


def cmd_sheet_publish(args: argparse.Namespace) -> int:
    from defendable_cli.sheets import publish_directory

    try:
        return publish_directory(Path(args.directory) if args.directory else None)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def cmd_probe(args: argparse.Namespace) -> int:
    from defendable_cli.probe import probe  # numpy, the referee's parsers and the client load only here

    return probe(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="defendable", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("canonicalize", help="write the RFC 8785 canonical form of JSON (file or stdin)")
    c.add_argument("file", nargs="?")
    c.set_defaults(func=cmd_canonicalize)
    h = sub.add_parser("hash", help="print sha256:<hex> of the canonical form")
    h.add_argument("file", nargs="?")
    h.set_defaults(func=cmd_hash)
    v = sub.add_parser(
        "verify",
        help="verify a receipt, share link, proof package or exported chain offline; exit 0 only if all checks pass",
        description=verify_cmd.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify_cmd.add_arguments(v)
    v.set_defaults(func=cmd_verify)
    f = sub.add_parser("flight-sheet", help="check and publish Flight Sheets")
    fsub = f.add_subparsers(dest="sheet_command", required=True)
    lint = fsub.add_parser("lint", help="validate sheet files; print every problem with its path; exit 1 if any")
    lint.add_argument("files", nargs="+", metavar="FILE")
    lint.add_argument("--json", action="store_true", help="machine-readable output")
    lint.set_defaults(func=cmd_sheet_lint)
    pub = fsub.add_parser("publish", help="pin the hash of each new id@version in the directory's published.txt")
    pub.add_argument("directory", nargs="?", help="a library directory (default: the packaged library)")
    pub.set_defaults(func=cmd_sheet_publish)
    pr = sub.add_parser(
        "probe",
        help="measure a compute run on this machine (GPU or CPU) and submit it; exit 3 collection, 4 API failed",
        description="Collect nvidia-smi, DCGM, host facts, an MLPerf LoadGen run and a bandwidth triad on this"
        " machine, and submit them as the evidence of a compute run. Without an NVIDIA GPU it submits a CPU"
        " compute run, and says so. Exit codes: 0 done (the verdict is printed), 2 usage, 3 collection failed,"
        " 4 the API refused or could not be reached.",
    )
    pr.add_argument("--url", help="the Defendable API (default: $DEFENDABLE_URL)")
    pr.add_argument("--key", help="a submitter API key (default: $DEFENDABLE_SUBMITTER_KEY)")
    pr.add_argument("--project", metavar="NAME", default="compute probe", help="the project the run belongs to")
    pr.add_argument(
        "--sheet",
        metavar="ID@VERSION",
        help="the Flight Sheet (default: compute_benchmark_score_validation_v1@1.0.0 on a GPU,"
        " compute_cpu_benchmark_v1@1.0.0 without one)",
    )
    pr.add_argument(
        "--duration",
        metavar="SECONDS",
        type=float,
        default=20.0,
        help="seconds of benchmark load, at least (default: 20)",
    )
    pr.add_argument(
        "--min-samples-per-second",
        metavar="RATE",
        type=float,
        help="the throughput target (default: the sheet's floor)",
    )
    pr.add_argument(
        "--assignment", metavar="TEXT", default="", help="the assignment this run answers (default: the run id)"
    )
    pr.add_argument(
        "--disk", metavar="PATH", type=Path, default=Path("."), help="where free disk is measured (default: .)"
    )
    pr.add_argument(
        "--out", metavar="DIR", type=Path, help="keep every evidence file and submission.json here (new or empty)"
    )
    pr.add_argument("--no-submit", action="store_true", help="collect and check here only: no server needed")
    pr.set_defaults(func=cmd_probe)
    audit.add_parser(sub)  # `audit replay`: the referee and NATS load only when it runs
    a = sub.add_parser("admin", help="administer organisations and keys")
    asub = a.add_subparsers(dest="admin_command", required=True)
    o = asub.add_parser("create-org", help="create an org and print one API key per role")
    o.add_argument("name")
    o.add_argument("--approver", help="the human named on approvals made with the approver key")
    o.add_argument("--database-url", help="defaults to $DATABASE_URL")
    o.add_argument("--json", action="store_true", help="machine-readable output")
    o.set_defaults(func=cmd_create_org)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CliError as exc:
        print(f"defendable: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
