"""Proof packages, ``GET /receipts/{hash}/package``, and the org settings that shape them.

A proof package is one ZIP that proves a receipt with nothing else at hand
(docs/transparency.md, "Proof packages")::

    receipt.json     the share document: receipt_hash, payload, signature, transparency
    receipt.pdf      the rendered receipt
    proof.tlog       the C2SP tlog-proof (inclusion path + the checkpoint with cosignatures)
    checkpoint.txt   the checkpoint proof.tlog ends with, byte for byte
    keys.json        the ledger's key set (/.well-known/defendable-keys.json)
    evidence/<id>    each evidence file the receipt names, by evidence id (files mode only)
    README.txt       what each file is and how to verify it
    verify.html      receipt.css, verify.js and receipt.js inlined: verifies offline in a browser

``?evidence=hashes`` leaves the evidence bytes out (the receipt keeps their SHA-256 and size);
``?evidence=files`` asks for them and is refused (403) when the org's setting
``package_evidence`` is ``hashes``; without the parameter the org's setting decides. Files mode
includes at most ``MAX_PACKAGE_EVIDENCE_BYTES`` of evidence (413 above it: ask for hashes).
The ZIP is built in a spooled temporary file (``SPOOL_BYTES`` in memory, then disk), at most
``MAX_CONCURRENT_BUILDS`` at a time, and streamed back.

Also here: ``GET /org/settings`` and ``PUT /org/settings`` (admin); the settings themselves
and their table are ``org_settings.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
import tempfile
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, Final, Literal

import msgspec
from litestar import Request, get, put
from litestar.params import Parameter
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Stream

from defendable_runtime.storage import BlobTooLarge, evidence_key

from .org_settings import (
    MAX_SETTINGS_BYTES,
    SETTINGS_HELP,
    OrgSettings,
    decode_settings,
    get_org_settings,
    put_org_settings,
)
from .receipt_page import ASSETS
from .routes import holder, ledger_key_set, own_receipt, principal_of, problem, read_bounded, require_key
from .tlog_routes import share_document

MAX_PACKAGE_EVIDENCE_BYTES: Final = 256 * 1024 * 1024
SPOOL_BYTES: Final = 8 * 1024 * 1024
CHUNK: Final = 1024 * 1024
MAX_CONCURRENT_BUILDS: Final = 2
_EVIDENCE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")  # a safe file name: ids are ev_<24 hex> by construction
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_IMPORT_VERIFY = re.compile(r'^import \{[^}]*\} from "\./verify\.js";\n', re.M)
_builds = asyncio.Semaphore(MAX_CONCURRENT_BUILDS)
_encoder = msgspec.json.Encoder()

EvidenceMode = Literal["files", "hashes"]


# ---------------------------------------------------------------------------- org settings


@get("/org/settings", summary="This org's settings (proof package evidence, redacted fields)", guards=[require_key])
async def read_settings(request: Request[Any, Any, Any]) -> OrgSettings:
    return await get_org_settings(holder.res.pool, principal_of(request).org_id)


@put(
    "/org/settings",
    summary="Replace this org's settings (admin)",
    guards=[require_key],
    opt={"role": "admin"},
    request_max_body_size=None,  # bounded by read_bounded, whose 413 names the limit
)
async def write_settings(request: Request[Any, Any, Any]) -> OrgSettings:
    principal = principal_of(request)
    body = await read_bounded(request, MAX_SETTINGS_BYTES, "org settings")
    try:
        settings = decode_settings(body)
    except msgspec.DecodeError as exc:
        raise problem(400, f"the settings are not valid JSON ({exc}); send one JSON object: {SETTINGS_HELP}") from exc
    except msgspec.ValidationError as exc:
        raise problem(400, f"invalid settings: {exc}; {SETTINGS_HELP}") from exc
    await put_org_settings(holder.res.pool, principal.org_id, settings)
    return settings


# ---------------------------------------------------------------------------- the package


@dataclass(frozen=True)
class EvidenceFile:
    evidence_id: str
    sha256_hex: str
    size: int


def evidence_files(payload: Any) -> list[EvidenceFile]:
    """The evidence a receipt names that can be packaged: a safe id, a sha256 and a size."""
    refs = payload.get("evidence") if isinstance(payload, dict) else None
    found: dict[str, EvidenceFile] = {}
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, dict):
            continue
        ev_id, sha, size = ref.get("id"), ref.get("sha256"), ref.get("size")
        if not (isinstance(ev_id, str) and _EVIDENCE_ID.fullmatch(ev_id)):
            continue
        if isinstance(sha, str) and _SHA256.fullmatch(sha) and isinstance(size, int) and size >= 0:
            found.setdefault(ev_id, EvidenceFile(ev_id, sha[7:], size))
    return list(found.values())


def not_rendered() -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=409,
        detail="the receipt's PDF is not rendered yet; retry in a moment",
        headers={"Retry-After": "2"},
    )


@get(
    "/receipts/{ref:str}/package",
    summary="A proof package (ZIP): receipt, PDF, proof, checkpoint, keys, evidence or its hashes, verify.html",
    guards=[require_key],
)
async def receipt_package(
    request: Request[Any, Any, Any],
    ref: str,
    evidence: Literal["files", "hashes"] | None = Parameter(
        default=None, description="files (the evidence bytes) or hashes; default: the org's setting"
    ),
) -> Stream:
    principal = principal_of(request)
    row = await own_receipt(principal, ref)
    settings = await get_org_settings(holder.res.pool, principal.org_id)
    mode: EvidenceMode = evidence or settings.package_evidence
    if mode == "files" and settings.package_evidence == "hashes":
        raise problem(403, "this organisation packages evidence as hashes only (org setting package_evidence)")
    if row["pdf_key"] is None:
        raise not_rendered()
    payload = msgspec.json.decode(bytes(row["payload"]))
    named = evidence_files(payload)
    files = named if mode == "files" else []
    total = sum(f.size for f in files)
    if total > MAX_PACKAGE_EVIDENCE_BYTES:
        raise problem(
            413,
            f"the receipt's evidence is {total} bytes, over the {MAX_PACKAGE_EVIDENCE_BYTES} bytes a package may"
            " include; ask for ?evidence=hashes (the receipt still names every file's sha256)",
        )
    receipt_hash: str = row["receipt_hash"]
    doc, proof = await share_document(row)
    receipt_json = _encoder.encode(doc)
    keys = await ledger_key_set()
    pdf = await holder.res.blobs.get_bytes(row["pdf_key"])
    if pdf is None:
        raise problem(503, "the receipt's PDF is missing from storage; it is regenerable from the receipt, retry later")
    members = PackageMembers(
        receipt_json=receipt_json,
        pdf=pdf,
        proof=proof.proof.encode(),
        keys=keys,
        mode=mode,
        evidence_count=len(named),
        minted_at=payload.get("minted_at") if isinstance(payload, dict) else None,
    )
    async with _builds:
        spool = await build_package(members, files)
    return Stream(
        stream_file(spool),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="receipt-{receipt_hash[7:23]}.zip"',
            "Cache-Control": "no-store",
        },
    )


@dataclass(frozen=True)
class PackageMembers:
    receipt_json: bytes
    pdf: bytes
    proof: bytes
    keys: bytes
    mode: EvidenceMode
    evidence_count: int
    minted_at: object


async def build_package(members: PackageMembers, files: list[EvidenceFile]) -> IO[bytes]:
    """Fetch the evidence into a temporary folder, then zip everything in a thread; the ZIP, rewound."""
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="defendable-package-"))
    try:
        fetched: list[tuple[str, Path]] = []
        for f in files:
            path = folder / f.evidence_id
            try:
                got = await holder.res.blobs.download(evidence_key(f.sha256_hex), path, f.size)
            except BlobTooLarge as exc:
                raise problem(502, f"evidence {f.evidence_id} in storage is larger than the receipt says") from exc
            if got is None:
                raise problem(
                    502, f"evidence {f.evidence_id} is missing from storage; ask for ?evidence=hashes meanwhile"
                )
            if got != (f.sha256_hex, f.size):
                raise problem(502, f"evidence {f.evidence_id} in storage does not hash to what the receipt says")
            fetched.append((f.evidence_id, path))
        return await asyncio.to_thread(write_zip, members, fetched)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


def _date_time(minted_at: object) -> tuple[int, int, int, int, int, int]:
    """Every member is dated at the receipt's mint (UTC), so the same receipt zips to the same bytes."""
    match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", minted_at if isinstance(minted_at, str) else "")
    if match is None or int(match.group(1)) < 1980:
        return (1980, 1, 1, 0, 0, 0)
    y, mo, d, h, mi, s = (int(g) for g in match.groups())
    return (y, mo, d, h, mi, s)


def write_zip(members: PackageMembers, evidence: list[tuple[str, Path]]) -> IO[bytes]:
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115  # returned, closed by the stream
    try:
        when = _date_time(members.minted_at)

        def info(name: str) -> zipfile.ZipInfo:
            zi = zipfile.ZipInfo(name, date_time=when)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            return zi

        checkpoint = members.proof.partition(b"\n\n")[2]
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            zf.writestr(info("README.txt"), readme(members))
            zf.writestr(info("receipt.json"), members.receipt_json)
            zf.writestr(info("receipt.pdf"), members.pdf)
            zf.writestr(info("proof.tlog"), members.proof)
            zf.writestr(info("checkpoint.txt"), checkpoint)
            zf.writestr(info("keys.json"), members.keys)
            zf.writestr(info("verify.html"), verify_html(members.receipt_json, members.keys))
            for evidence_id, path in evidence:
                with path.open("rb") as src, zf.open(info(f"evidence/{evidence_id}"), "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


async def stream_file(spool: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(spool.read, CHUNK):
            yield chunk
    finally:
        spool.close()


def readme(members: PackageMembers) -> str:
    if members.mode == "files":
        evidence = "evidence/<id>   each evidence file the receipt names, under its evidence id\n"
    else:
        evidence = (
            f"(no evidence/)   hashes only: the receipt names {members.evidence_count} evidence file(s)"
            " by SHA-256 and size;\n                 hash your copies and compare\n"
        )
    return (
        "Defendable proof package\n"
        "========================\n\n"
        "receipt.json    the receipt (share document): receipt_hash, payload, signature, transparency\n"
        "receipt.pdf     the same receipt, rendered for people\n"
        "proof.tlog      C2SP tlog-proof: the receipt's RFC 9162 inclusion path and the signed,\n"
        "                witness-cosigned checkpoint of the org's transparency log\n"
        "checkpoint.txt  that checkpoint alone, byte for byte as proof.tlog ends with it\n"
        "keys.json       the ledger's public keys (/.well-known/defendable-keys.json)\n"
        f"{evidence}"
        "verify.html     open it in a browser: it verifies the receipt offline, fetching nothing\n\n"
        "Verify from a terminal:\n\n"
        "    defendable verify receipt-<hash>.zip\n"
        "    defendable verify receipt-<hash>.zip --keys keys-you-trust.json --witness <vkey>\n\n"
        "keys.json came with the receipt: to trust the ledger apart from this package, pin a copy\n"
        "of its key set obtained separately with --keys (and witnesses with --witness).\n"
    )


# ---------------------------------------------------------------------------- verify.html

VERIFY_BOOT: Final = """
// verify.html: the receipt and the key set are the JSON blocks of this file; nothing is fetched.
const readJSON = (id) => JSON.parse(document.getElementById(id).textContent);
const packageRoot = document.getElementById("receipt");
let packageDoc = null;
let packageKeys = null;
let packageChecks;
try {
  packageDoc = readJSON("defendable-receipt");
  packageKeys = readJSON("defendable-keys");
  packageChecks = await verifyReceipt(packageDoc, packageKeys, { keySource: "keys.json of this package" });
} catch (exc) {
  packageChecks = [{ name: "package", outcome: "FAIL", detail: `verify.html cannot read its receipt: ${exc}` }];
}
renderReceipt(packageRoot, packageDoc || {}, packageChecks);
"""


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass(frozen=True)
class VerifyTemplate:
    head: str  # up to the receipt's JSON
    middle: str  # between the receipt's JSON and the key set's
    tail: str


@cache
def verify_template() -> VerifyTemplate:
    """verify.html without its data: receipt.css inline, and one inline module: verify.js, then
    receipt.js without its import of it (the two share no top-level name), then the boot. The
    CSP allows exactly that script and that style, by hash: no data: or file: script can run."""
    css = ASSETS["receipt.css"][0].decode()
    verify_js = ASSETS["verify.js"][0].decode()
    receipt_js, imports = _IMPORT_VERIFY.subn("", ASSETS["receipt.js"][0].decode())
    if imports != 1:
        raise RuntimeError("receipt.js no longer imports ./verify.js in one line: verify.html needs changing")
    module = verify_js + "\n" + receipt_js + VERIFY_BOOT
    if any(re.search(r"</(script|style)|<!--", text, re.I) for text in (css, module)):
        raise RuntimeError("an inlined asset would close its own element")
    csp = (
        f"default-src 'none'; script-src {csp_hash(module)}; "
        f"style-src {csp_hash(css)}; img-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
    )
    head = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Receipt · Defendable (offline verification)</title>
<style>{css}</style>
</head>
<body>
<header class="topbar">
<span class="brand"><span class="brand__mark" aria-hidden="true">D</span>Defendable</span>
<span class="topbar__note">Proof package · verified offline</span>
</header>
<main class="page">
<div class="receipt" id="receipt" data-state="loading" aria-live="polite">
<p class="loading">Verifying the receipt in your browser…</p>
<noscript><p class="loading">This page verifies the receipt with JavaScript. Without it, run
<code>defendable verify</code> on this package.</p></noscript>
</div>
<footer class="footer">
<p>Checked in this browser, offline, with verify.js against keys.json of this package; nothing is
fetched or sent. The key set came with the receipt: to trust the ledger apart from it, compare it
with a copy you obtained separately.</p>
<p>The evidence files and checkpoint.txt are checked by <code>defendable verify</code> on the package.</p>
</footer>
</main>
<script type="application/json" id="defendable-receipt">"""
    middle = """</script>
<script type="application/json" id="defendable-keys">"""
    tail = f"""</script>
<script type="module">{module}</script>
</body>
</html>
"""
    return VerifyTemplate(head, middle, tail)


def embedded_json(data: bytes) -> str:
    """JSON safe inside a <script> element, its bytes otherwise as they are: `<`, `>` and `&` (which
    JSON has only inside strings) become \\u escapes, so no value can close the element."""
    text = data.decode("utf-8", "replace")
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def verify_html(receipt_json: bytes, keys_json: bytes) -> str:
    t = verify_template()
    return t.head + embedded_json(receipt_json) + t.middle + embedded_json(keys_json) + t.tail


PACKAGE_ROUTES = [receipt_package, read_settings, write_settings]
