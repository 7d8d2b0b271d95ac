"""`defendable verify` over files, proof packages (directory and zip), exported chains and share
URLs (served here by a small local HTTP server): its output lines and its exit codes —
0 every applicable check passed, 1 a check failed, 2 unusable input."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from defendable_cli.main import main

from ..canonical.test_verify_transparency import mutations
from ..canonical.tlog_kit import WITNESSES, Log, vkeys

EVIDENCE = {"report.pdf": b"%PDF-1.7 the report", "data/rows.csv": b"a,b\n1,2\n"}
LINE = re.compile(r"^(PASS|FAIL|SKIPPED) +(\S.*?)  +(\S.*)$")


@pytest.fixture(scope="module")
def log() -> Log:
    return Log(9, evidence=EVIDENCE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def check_lines(out: str) -> dict[str, str]:
    return {m.group(2).strip(): m.group(1) for line in out.splitlines() if (m := LINE.match(line))}


def witness_args() -> list[str]:
    return [arg for v in vkeys(WITNESSES[:2]) for arg in ("--witness", v)]


# ---------------------------------------------------------------- files


def test_a_receipt_file_verifies_and_the_output_is_one_aligned_line_per_check(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(log.share_document(4))
    code, out, _ = run(capsys, str(path))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"receipt {log.receipts[4].receipt_hash}"
    assert lines[1].startswith("trust root: none")
    assert lines[-1] == "verified: every applicable check passed"
    checks = [line for line in lines if LINE.match(line)]
    assert len(checks) == 14
    columns = {line.index(line.split(None, 1)[1]) for line in checks}
    assert columns == {9}  # "SKIPPED" and two spaces: every name starts in one column
    details = {line.index(LINE.match(line).group(3)) for line in checks}  # type: ignore[union-attr]
    assert len(details) == 1


def test_a_share_document_with_pinned_keys_and_witnesses_passes_every_check(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.json").write_bytes(log.share_document(4))
    (tmp_path / "keys.json").write_bytes(log.key_set())
    code, out, _ = run(capsys, str(tmp_path / "r.json"), "--keys", str(tmp_path / "keys.json"), *witness_args())
    assert code == 0, out
    assert "trust root: the key set pinned with --keys" in out
    assert "witness policy: 2 of w0.example, w1.example" in out
    assert {k: v for k, v in check_lines(out).items() if v != "PASS"} == {
        "chain links": "SKIPPED",
        "redacted fields": "SKIPPED",
    }


def test_a_tampered_receipt_exits_1_and_an_unmet_witness_policy_exits_1(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(log.share_document(4).replace(b'"score":"66.67"', b'"score":"99.99"'))
    code, out, _ = run(capsys, str(path))
    assert code == 1 and out.splitlines()[-1].startswith("NOT VERIFIED")
    assert check_lines(out)["receipt hash"] == "FAIL"
    path.write_bytes(log.share_document(4))
    code, out, _ = run(capsys, str(path), *witness_args(), "--witness", vkeys(WITNESSES[2:])[0])
    assert code == 1 and check_lines(out)["witness cosignatures"] == "FAIL"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give one thing to verify"),
        (["a.json", "--chain", "b.ndjson"], "give one thing to verify"),
        (["missing.json"], "cannot read missing.json"),
        (["notjson.json"], "is not JSON"),
        (["r.json", "--keys", "notjson.json"], "not a key set"),
        (["r.json", "--witness", "nonsense"], "--witness"),
        (["r.json", "--witnesses-required", "2"], "needs witness keys"),
        (["r.json", "--witnessed", "r.json"], "--witnessed applies to --chain only"),
        (["--share", "ftp://host/share/x"], "http(s)"),
    ],
)
def test_unusable_input_exits_2_with_a_clear_message(
    log: Log,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.json").write_bytes(log.share_document(1))
    (tmp_path / "notjson.json").write_bytes(b"{nope")
    code, out, err = run(capsys, *argv)
    assert code == 2, out
    assert err.startswith("defendable: ") and message in err, err


def test_an_input_over_64_mib_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024 + 1)
    code, _, err = run(capsys, str(big))
    assert code == 2 and "larger than" in err


# ---------------------------------------------------------------- proof packages


def test_a_proof_package_directory_verifies_its_evidence_files(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = log.package(tmp_path / "pkg", 3, evidence=EVIDENCE)
    code, out, _ = run(capsys, str(package), *witness_args())
    assert code == 0, out
    got = check_lines(out)
    assert got["package contents"] == got["checkpoint.txt"] == got["evidence files"] == "PASS"
    assert got["inclusion proof (RFC 9162)"] == got["witness cosignatures"] == "PASS"
    assert "trust root: keys.json in the package" in out
    assert "2 of 2 match the receipt's sha256 and size" in out


def test_a_package_without_evidence_files_checks_hashes_only(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, str(log.package(tmp_path / "pkg", 3)))
    assert code == 0, out
    assert re.search(r"SKIPPED +evidence files +hashes only", out)


def test_a_package_with_a_changed_or_unnamed_evidence_file_fails(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = log.package(tmp_path / "pkg", 3, evidence=EVIDENCE)
    (package / "evidence" / "report.pdf").write_bytes(b"%PDF-1.7 the report, edited")
    code, out, _ = run(capsys, str(package))
    assert code == 1 and check_lines(out)["evidence files"] == "FAIL"
    package = log.package(tmp_path / "pkg2", 3, evidence={**EVIDENCE, "extra.txt": b"?"})
    code, out, _ = run(capsys, str(package))
    assert code == 1 and "not evidence this receipt names" in out


def test_a_zipped_package_under_one_folder_verifies(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = log.package(tmp_path / "pkg", 3, evidence=EVIDENCE)
    archive = log.zip_package(package, tmp_path / "receipt.zip", folder="receipt-3/")
    code, out, _ = run(capsys, str(archive), *witness_args())
    assert code == 0, out
    assert check_lines(out)["evidence files"] == "PASS"


def test_a_package_missing_its_proof_fails_and_one_missing_its_receipt_is_unusable(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = log.package(tmp_path / "pkg", 3)
    (package / "proof.tlog").unlink()
    code, out, _ = run(capsys, str(package))
    assert code == 1 and check_lines(out)["package contents"] == "FAIL"
    (package / "receipt.json").unlink()
    code, _, err = run(capsys, str(package))
    assert code == 2 and "receipt.json" in err


def test_every_single_byte_change_to_checkpoint_txt_fails(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = log.package(tmp_path / "pkg", 3)
    original = (package / "checkpoint.txt").read_bytes()
    passed = []
    for i, mutated in mutations(original):
        (package / "checkpoint.txt").write_bytes(mutated)
        if run(capsys, str(package))[0] == 0:
            passed.append(i)
    assert passed == []


def test_every_single_byte_change_to_proof_tlog_fails(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = log.package(tmp_path / "pkg", 3)
    original = (package / "proof.tlog").read_bytes()
    passed = []
    for i, mutated in mutations(original):
        (package / "proof.tlog").write_bytes(mutated)
        if run(capsys, str(package), *witness_args())[0] == 0:
            passed.append(i)
    assert passed == []


# ---------------------------------------------------------------- exported chains


def test_an_exported_chain_verifies_and_a_truncated_one_fails_against_a_witnessed_checkpoint(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keys.json").write_bytes(log.key_set())
    (tmp_path / "witnessed.txt").write_bytes(log.checkpoint(9))
    (tmp_path / "chain.ndjson").write_bytes(b"".join(log.export([3, 6, 9])))
    trust = ["--keys", str(tmp_path / "keys.json"), *witness_args(), "--witnessed", str(tmp_path / "witnessed.txt")]
    code, out, _ = run(capsys, "--chain", str(tmp_path / "chain.ndjson"), *trust)
    assert code == 0, out
    assert set(check_lines(out).values()) == {"PASS"}
    (tmp_path / "short.ndjson").write_bytes(b"".join(log.export([3, 6], receipts=7)))
    code, out, _ = run(capsys, "--chain", str(tmp_path / "short.ndjson"), *trust)
    assert code == 1
    assert re.search(r"FAIL +witnessed checkpoint \(truncation\) +tail deleted or history rewritten", out)


def test_a_chain_that_is_not_there_is_unusable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--chain", str(tmp_path / "none.ndjson"))
    assert code == 2 and "cannot read" in err


# ---------------------------------------------------------------- share URLs


class Site(http.server.BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body or b'{"status": 404}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(log: Log) -> Iterator[str]:
    Site.pages = {
        "/share/tok_abcdefghijklmnopqrstuv": log.share_document(5),
        "/.well-known/defendable-keys.json": log.key_set(),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("path", ["/share/tok_abcdefghijklmnopqrstuv", "/r/tok_abcdefghijklmnopqrstuv"])
def test_a_share_url_is_verified_with_the_hosts_key_set_and_says_so(
    site: str, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, site + path)
    assert code == 0, out
    assert f"trust root: the key set at {site}/.well-known/defendable-keys.json (the share link's own host" in out
    assert check_lines(out)["signing key known"] == "PASS"
    code, out, _ = run(capsys, "--share", site + path, *witness_args())
    assert code == 0, out


def test_a_share_url_with_pinned_keys_does_not_fetch_the_hosts(
    site: str, log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    del Site.pages["/.well-known/defendable-keys.json"]
    code, _, err = run(capsys, site + "/share/tok_abcdefghijklmnopqrstuv")
    assert code == 2 and "defendable-keys.json answered HTTP 404" in err
    (tmp_path / "keys.json").write_bytes(Log(1, seed=hashlib.sha256(b"x").digest()).key_set())
    code, out, _ = run(capsys, site + "/share/tok_abcdefghijklmnopqrstuv", "--keys", str(tmp_path / "keys.json"))
    assert code == 1 and check_lines(out)["signing key known"] == "FAIL"


def test_an_unknown_share_link_is_unusable(site: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, site + "/share/tok_unknownunknownunknown")
    assert code == 2 and "answered HTTP 404" in err
