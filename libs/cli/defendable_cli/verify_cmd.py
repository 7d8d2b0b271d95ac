"""`defendable verify`: a receipt file, a share URL, a proof package or an exported chain, offline.

What it reads:

- a receipt or share document saved to disk (``-``: stdin);
- a share URL (``https://host/share/TOKEN`` or ``https://host/r/TOKEN``): the share document,
  and the key set from ``--keys FILE`` or else the same host's
  ``/.well-known/defendable-keys.json``;
- a proof package, a directory or a ``.zip`` holding ``receipt.json``, ``proof.tlog`` (the
  C2SP tlog-proof), ``keys.json`` (the key set), ``checkpoint.txt`` (the checkpoint the proof
  ends with, byte for byte) and optionally ``evidence/<id or name>`` files;
- an exported chain (``--chain FILE.ndjson``, from ``GET /ledger/export``).

Trust: ``--keys FILE`` pins the ledger's key set; ``--witness VKEY`` (repeatable) and
``--witnesses-required K`` (default: all of them) a witness policy; ``--witnessed FILE`` a
checkpoint a witness cosigned, which an exported chain must extend.

Output: one line per check, ``PASS|FAIL|SKIPPED  name  detail``. Exit 0 only when every
applicable check passed, 1 when one failed, 2 for unusable input.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from defendable_canonical.note import MAX_NOTE_BYTES
from defendable_canonical.redaction import MAX_DISCLOSURES, Disclosure
from defendable_canonical.tlog_proof import MAX_TLOG_PROOF_BYTES, parse_tlog_proof
from defendable_canonical.verification import Check, all_passed, verify_document
from defendable_canonical.verify_export import MAX_LINE_BYTES, ExportVerifier
from defendable_canonical.verify_transparency import (
    MAX_KEY_SET_BYTES,
    KeySet,
    KeySetError,
    Trust,
    parse_key_set,
    witness_policy,
)

MAX_INPUT = 64 * 1024 * 1024  # a receipt document, a fetched page, a package member
MAX_DISCLOSURES_BYTES = 4 * 1024 * 1024
MAX_ZIP_ENTRIES = 100_000
CLOCK_SKEW_S = 600  # a cosignature may be dated this far past this machine's clock
KEYS_PATH = "/.well-known/defendable-keys.json"
RECEIPT, PROOF, KEYS, CHECKPOINT = "receipt.json", "proof.tlog", "keys.json", "checkpoint.txt"
PACKAGE_FILES = (RECEIPT, PROOF, KEYS, CHECKPOINT)
EVIDENCE = "evidence/"
_SHARE_PATH = re.compile(r"(?P<base>.*)/(?:share|r)/(?P<token>[A-Za-z0-9_-]{1,128})/?")


class UnusableInput(Exception):
    """Input this command cannot verify at all: printed as `defendable: <message>`, exit 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        nargs="?",
        metavar="FILE|DIR|ZIP|URL",
        help="a receipt or share document (- for stdin), a proof package (directory or .zip) or a share URL",
    )
    p.add_argument("--share", metavar="URL", help="a public share URL (/share/<token> or /r/<token>)")
    p.add_argument("--chain", metavar="FILE", help="an exported chain (GET /ledger/export, NDJSON)")
    p.add_argument("--keys", metavar="FILE", help="the ledger's key set to trust (defendable-keys.json)")
    p.add_argument("--witness", metavar="VKEY", action="append", default=[], help="a witness cosigner key (repeatable)")
    p.add_argument(
        "--witnesses-required", metavar="K", type=int, help="cosignatures required of the --witness keys (default: all)"
    )
    p.add_argument(
        "--witnessed", metavar="FILE", help="a checkpoint a witness cosigned, which --chain must extend (truncation)"
    )
    p.add_argument(
        "--reveal",
        metavar="FILE",
        help="disclosures of redacted fields (GET /receipts/{hash}/disclosures) to check against the receipt",
    )


def run(args: argparse.Namespace) -> int:
    given = [s for s in (args.source, args.share, args.chain) if s]
    if len(given) != 1:
        raise UnusableInput("give one thing to verify: FILE, DIR, ZIP or URL, or --share URL, or --chain FILE")
    try:
        policy = witness_policy(args.witness, args.witnesses_required)
    except ValueError as exc:
        raise UnusableInput(f"--witness: {exc}") from exc
    pinned = _key_set(read_file(args.keys, MAX_KEY_SET_BYTES), f"--keys {args.keys}") if args.keys else None
    trust = Trust(
        keys=pinned,
        source=f"the key set pinned with --keys {args.keys}" if args.keys else "no key set",
        name="the pinned key set",
        witnesses=policy,
        now=int(time.time()) + CLOCK_SKEW_S,
    )
    if args.witnessed and not args.chain:
        raise UnusableInput("--witnessed applies to --chain only")
    if args.reveal and args.chain:
        raise UnusableInput("--reveal applies to one receipt, not to --chain")
    disclosures = read_disclosures(args.reveal) if args.reveal else None
    if args.chain:
        witnessed = read_file(args.witnessed, MAX_NOTE_BYTES) if args.witnessed else None
        return verify_chain_file(args.chain, trust, witnessed)
    target: str = args.share or args.source
    if args.share or target.startswith(("http://", "https://")):
        return verify_share(target, trust, disclosures)
    if target != "-" and (Path(target).is_dir() or target.endswith(".zip") or _is_zip(target)):
        return verify_package(target, trust, disclosures)
    data = sys.stdin.buffer.read(MAX_INPUT + 1) if target == "-" else read_file(target, MAX_INPUT)
    if len(data) > MAX_INPUT:
        raise UnusableInput(f"input is larger than {MAX_INPUT} bytes")
    if trust.keys is None:
        trust = _with_source(trust, "none: no --keys given, so each signature is checked against the key it carries")
    doc = _document(data, target)
    return report(_receipt_title(doc), trust, verify_document(doc, trust, disclosures))


# ---------------------------------------------------------------------------- sources


def read_disclosures(path: str) -> list[Disclosure]:
    """A disclosures file: the body of GET /receipts/{hash}/disclosures, or its bare list."""
    data = read_file(path, MAX_DISCLOSURES_BYTES)
    try:
        parsed = msgspec.json.decode(data)
        listed = parsed.get("disclosures") if isinstance(parsed, dict) else parsed
        disclosures = msgspec.convert(listed, list[Disclosure])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UnusableInput(f"--reveal {path}: not a disclosures file ({exc})") from exc
    if len(disclosures) > MAX_DISCLOSURES:
        raise UnusableInput(f"--reveal {path}: more than {MAX_DISCLOSURES} disclosures")
    return disclosures


def verify_share(url: str, trust: Trust, disclosures: list[Disclosure] | None = None) -> int:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UnusableInput(f"a share URL must be http(s)://host/share/<token>, got {url[:100]!r}")
    shared = _SHARE_PATH.fullmatch(parts.path)
    base = shared.group("base") if shared else ""
    doc_url = f"{parts.scheme}://{parts.netloc}{base}/share/{shared.group('token')}" if shared else url
    doc = _document(fetch(doc_url), doc_url)
    if trust.keys is None:
        keys_url = f"{parts.scheme}://{parts.netloc}{base}{KEYS_PATH}"
        keys = _key_set(fetch(keys_url, MAX_KEY_SET_BYTES), keys_url)
        source = f"the key set at {keys_url} (the share link's own host: pin a copy with --keys to trust it apart)"
        trust = Trust(keys, source, "the host's key set", trust.witnesses, trust.now)
    return report(_receipt_title(doc), trust, verify_document(doc, trust, disclosures))


def verify_package(path: str, trust: Trust, disclosures: list[Disclosure] | None = None) -> int:
    package = Package.open(path)
    try:
        doc = _document(package.required(RECEIPT, MAX_INPUT), f"{path}/{RECEIPT}")
        checks = package_checks(package, doc, trust)
        if trust.keys is None and package.has(KEYS):
            keys = _key_set(package.read(KEYS, MAX_KEY_SET_BYTES), f"{path}/{KEYS}")
            source = f"{KEYS} in the package (from the receipt's own source: pin a copy with --keys to trust it apart)"
            trust = Trust(keys, source, "the package's keys.json", trust.witnesses, trust.now)
        elif trust.keys is None:
            trust = _with_source(trust, "none: the package has no keys.json and no --keys was given")
        checks = checks[:1] + verify_document(doc, trust, disclosures) + checks[1:] + [evidence_check(package, doc)]
    finally:
        package.close()
    return report(_receipt_title(doc), trust, checks)


def package_checks(package: Package, doc: dict[str, Any], trust: Trust) -> list[Check]:
    """The package's own lines; puts proof.tlog into ``doc`` as its `transparency` member."""
    missing = [name for name in PACKAGE_FILES if not package.has(name)]
    if missing and not (missing == [KEYS] and trust.keys is not None):
        contents = Check("package contents", "FAIL", f"missing {', '.join(missing)}")
    else:
        contents = Check("package contents", "PASS", ", ".join(n for n in PACKAGE_FILES if package.has(n)))
    proof = package.read(PROOF, MAX_TLOG_PROOF_BYTES + 1) if package.has(PROOF) else None
    if proof is not None:
        text = proof.decode("utf-8", "surrogateescape")
        carried = doc.get("transparency")
        if carried is None:
            doc["transparency"] = _transparency(proof, text)
        elif not isinstance(carried, dict) or carried.get("proof") != text:
            contents = Check("package contents", "FAIL", f"{PROOF} is not the proof {RECEIPT} carries")
    if not package.has(CHECKPOINT) or proof is None:
        cp = Check(CHECKPOINT, "SKIPPED" if contents.outcome == "FAIL" else "FAIL", f"{CHECKPOINT} or {PROOF} missing")
    elif package.read(CHECKPOINT, MAX_NOTE_BYTES + 1) == proof.partition(b"\n\n")[2]:
        cp = Check(CHECKPOINT, "PASS", f"the checkpoint {PROOF} ends with, byte for byte")
    else:
        cp = Check(CHECKPOINT, "FAIL", f"not the checkpoint {PROOF} ends with")
    return [contents, cp]


def _transparency(proof: bytes, text: str) -> dict[str, Any]:
    """The share document's `transparency` member for a package's proof.tlog."""
    try:
        package = parse_tlog_proof(proof)
        first = package.checkpoint.split(b"\n", 2)
        origin, size = first[0].decode(), int(first[1])
    except (ValueError, IndexError):
        return {"origin": "", "leaf_index": -1, "tree_size": -1, "proof": text}  # its checks say why
    return {"origin": origin, "leaf_index": package.index, "tree_size": size, "proof": text}


def evidence_check(package: Package, doc: dict[str, Any]) -> Check:
    name = "evidence files"
    payload = doc.get("payload")
    refs = payload.get("evidence") if isinstance(payload, dict) else None
    refs = [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []
    files = package.evidence()
    if not files:
        return Check(
            name, "SKIPPED", f"hashes only: the package holds no evidence files (the receipt names {len(refs)})"
        )
    matched: set[int] = set()
    for rel, opener in files:
        at = next((i for i, r in enumerate(refs) if rel in (r.get("id"), r.get("name"))), None)
        if at is None:
            return Check(name, "FAIL", f"{EVIDENCE}{rel[:200]} is not evidence this receipt names")
        ref = refs[at]
        size = ref.get("size") if isinstance(ref.get("size"), int) else -1
        digest, length = _hash(opener, size + 1 if size >= 0 else MAX_INPUT)
        if (f"sha256:{digest}", length) != (ref.get("sha256"), size):
            return Check(
                name,
                "FAIL",
                f"{EVIDENCE}{rel[:200]}: sha256:{digest[:16]}.. of {length} bytes, the receipt says"
                f" {str(ref.get('sha256'))[:23]}.. of {size}",
            )
        matched.add(at)
    missing = [str(r.get("id")) for i, r in enumerate(refs) if i not in matched]
    tail = f"; not in the package (hashes only): {', '.join(missing)}" if missing else ""
    return Check(name, "PASS", f"{len(matched)} of {len(refs)} match the receipt's sha256 and size{tail}")


def _hash(opener: Callable[[], IO[bytes]], limit: int) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with opener() as fh:
        while n < limit and (chunk := fh.read(min(1 << 20, limit - n))):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def verify_chain_file(path: str, trust: Trust, witnessed: bytes | None) -> int:
    if trust.keys is None:
        trust = _with_source(trust, "none: no --keys given, so each signature is checked against the key it carries")
    verifier = ExportVerifier(trust, witnessed=witnessed)
    try:
        with open(path, "rb") as fh:
            while line := fh.readline(MAX_LINE_BYTES + 1):
                verifier.feed(line)
                if len(line) > MAX_LINE_BYTES:
                    break
    except OSError as exc:
        raise UnusableInput(f"cannot read {path}: {exc.strerror}") from exc
    return report(f"chain export {path}", trust, verifier.checks())


# ---------------------------------------------------------------------------- packages


@dataclass
class Package:
    """A proof package, as a directory or a zip; members are found under one top folder too."""

    root: Path | None
    zf: zipfile.ZipFile | None
    prefix: str  # inside a zip: "" or "<folder>/"

    @classmethod
    def open(cls, path: str) -> Package:
        p = Path(path)
        if p.is_dir():
            if not (p / RECEIPT).is_file():
                inner = [d for d in p.iterdir() if d.is_dir() and (d / RECEIPT).is_file()]
                if len(inner) != 1:
                    raise UnusableInput(f"{path} holds no {RECEIPT}: not a proof package")
                p = inner[0]
            return cls(p, None, "")
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UnusableInput(f"cannot read {path} as a zip: {exc}") from exc
        names = zf.namelist()
        if len(names) > MAX_ZIP_ENTRIES:
            zf.close()
            raise UnusableInput(f"{path} has more than {MAX_ZIP_ENTRIES} entries")
        prefixes = [n[: -len(RECEIPT)] for n in names if n.endswith(RECEIPT) and n[: -len(RECEIPT)].count("/") <= 1]
        prefixes = [x for x in prefixes if x == "" or x.endswith("/")]
        if len(prefixes) != 1:
            zf.close()
            raise UnusableInput(f"{path} holds no single {RECEIPT}: not a proof package")
        return cls(None, zf, prefixes[0])

    def has(self, name: str) -> bool:
        if self.root is not None:
            return (self.root / name).is_file()
        assert self.zf is not None
        try:
            self.zf.getinfo(self.prefix + name)
        except KeyError:
            return False
        return True

    def read(self, name: str, limit: int) -> bytes:
        """At most ``limit + 1`` bytes: a caller that gets more refuses the member as too large."""
        try:
            with self._open(name) as fh:
                return fh.read(limit + 1)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise UnusableInput(f"cannot read {name} of the package: {exc}") from exc

    def required(self, name: str, limit: int) -> bytes:
        if not self.has(name):
            raise UnusableInput(f"the package holds no {name}")
        data = self.read(name, limit)
        if len(data) > limit:
            raise UnusableInput(f"{name} is larger than {limit} bytes")
        return data

    def _open(self, name: str) -> IO[bytes]:
        if self.root is not None:
            return open(self.root / name, "rb")
        assert self.zf is not None
        return self.zf.open(self.prefix + name)

    def evidence(self) -> list[tuple[str, Callable[[], IO[bytes]]]]:
        """Each evidence file: its path under ``evidence/`` and how to open it."""
        if self.root is not None:
            top = self.root / EVIDENCE
            if not top.is_dir():
                return []
            return [(f.relative_to(top).as_posix(), _opener(f)) for f in sorted(top.rglob("*")) if f.is_file()]
        assert self.zf is not None
        zf, start = self.zf, self.prefix + EVIDENCE
        return [
            (info.filename[len(start) :], _zip_opener(zf, info))
            for info in zf.infolist()
            if info.filename.startswith(start) and not info.is_dir()
        ]

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: open(path, "rb")


def _zip_opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: zf.open(info)


def _is_zip(path: str) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


# ---------------------------------------------------------------------------- input


def read_file(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UnusableInput(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise UnusableInput(f"{path} is larger than {limit} bytes")
    return data


def fetch(url: str, limit: int = MAX_INPUT) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise UnusableInput(f"need an http(s) URL, got {url[:100]!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310  # scheme checked
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # scheme checked above
            data: bytes = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise UnusableInput(f"{url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise UnusableInput(f"cannot fetch {url}: {exc}") from exc
    if len(data) > limit:
        raise UnusableInput(f"{url} answered more than {limit} bytes")
    return data


def _document(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise UnusableInput(f"{where} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise UnusableInput(f"{where} is not a receipt document (a JSON object)")
    return doc


def _key_set(data: bytes, where: str) -> KeySet:
    try:
        return parse_key_set(data)
    except KeySetError as exc:
        raise UnusableInput(f"{where}: {exc}") from exc


def _with_source(trust: Trust, source: str) -> Trust:
    return Trust(trust.keys, source, trust.name, trust.witnesses, trust.now)


def _receipt_title(doc: dict[str, Any]) -> str:
    return f"receipt {str(doc.get('receipt_hash', '?'))[:100]}"


# ---------------------------------------------------------------------------- output


def report(title: str, trust: Trust, checks: list[Check]) -> int:
    for line in render(title, trust, checks):
        print(line)
    ok = all_passed(checks)
    print("verified: every applicable check passed" if ok else "NOT VERIFIED: see the failed checks above")
    return 0 if ok else 1


def render(title: str, trust: Trust, checks: list[Check]) -> Iterator[str]:
    yield title
    yield f"trust root: {trust.source}"
    policy = trust.witnesses
    if policy is None:
        yield "witness policy: none (--witness VKEY to require cosignatures)"
    else:
        yield f"witness policy: {policy.quorum} of {', '.join(c.name for c in policy.cosigners)}"
    width = max((len(c.name) for c in checks), default=0)
    for c in checks:
        yield f"{c.outcome:<7}  {c.name.ljust(width)}  {_printable(c.detail)}"


def _printable(text: str) -> str:
    """A detail quoting hostile input must not move the cursor or fake another line."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
