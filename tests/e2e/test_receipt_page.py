"""The public receipt page (GET /r/{token}): the receipt verified by verify.js in real headless Chromium.

Two halves. First the JavaScript alone, on documents made here with the repo's own pure
code (a chain of receipts, an RFC 9162 tree, a signed and cosigned C2SP checkpoint, a
tlog-proof) and served to the real page through Playwright routes: its RFC 8785
canonicaliser against `jcs.canonicalize`, and its checks against `verify_document`'s, case
by case. Then the page on the real stack: a minted receipt's share link, and the same
receipt tampered with on its way to the browser.

Chromium is Debian's (/usr/bin/chromium, installed by `make install`); Playwright
downloads nothing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import shutil
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import Browser, Page, Route

from defendable.client import AsyncClient
from defendable_canonical.checkpoint import Checkpoint, sign_checkpoint
from defendable_canonical.cosignature import CosignatureSigner, cosign
from defendable_canonical.digest import GENESIS_HASH, digest_hex
from defendable_canonical.jcs import CanonicalError, canonicalize
from defendable_canonical.merkle import MerkleTree, receipt_leaf_hash
from defendable_canonical.note import Ed25519Signer
from defendable_canonical.perf import typical_body
from defendable_canonical.receipt import build_payload, payload_bytes, receipt_hash
from defendable_canonical.redaction import redact_body
from defendable_canonical.signature import b64url, key_id
from defendable_canonical.tlog_api import log_origin
from defendable_canonical.tlog_proof import build_tlog_proof
from defendable_canonical.verification import verify_document
from defendable_canonical.verify_transparency import TRANSPARENCY_CHECKS, Trust, parse_key_set, witness_policy
from defendable_gateway.receipt_page import ASSETS, CSP, SECURITY_HEADERS, page_html

from .conftest import Services, minted_receipt

SITE = "http://127.0.0.1:9"  # never contacted: page.route answers every request (127.0.0.1 is a secure context)
PREFIX = "defendable.test/log"
ORG = "org_receipt_page"
T0 = 1_760_000_000
SEED = hashlib.sha256(b"receipt-page ledger").digest()
LEDGER = Ed25519PrivateKey.from_private_bytes(SEED)
PUBLIC = LEDGER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
WITNESSES = [CosignatureSigner.from_seed(f"witness{i}.test", hashlib.sha256(b"w%d" % i).digest()) for i in range(3)]
STRANGER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"not the ledger").digest())

Doc = dict[str, Any]
Outcomes = dict[str, str]


# ---------------------------------------------------------------- documents made with the repo's pure code


@dataclass
class Minted:
    payload: bytes
    digest: str
    signature: dict[str, str]


def sign(digest: str, key: Ed25519PrivateKey = LEDGER) -> dict[str, str]:
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sig = key.sign(bytes.fromhex(digest_hex(digest)))
    return {"alg": "Ed25519", "kid": key_id(public), "public_key": b64url(public), "sig": b64url(sig)}


@dataclass
class Log:
    """One org's chain and tree, as the ledger keeps them: what a share document is made from."""

    n: int = 6
    org: str = ORG
    receipts: list[Minted] = field(default_factory=list)
    redact: tuple[str, ...] = ()  # fields minted as salted commitments (redaction.py)

    def __post_init__(self) -> None:
        parent = str(GENESIS_HASH)
        for seq in range(1, self.n + 1):
            body, _ = redact_body(typical_body(seq, self.org), self.redact)
            data = payload_bytes(build_payload(body, seq, parent, f"2026-03-0{seq}T10:00:00Z"))
            digest = receipt_hash(data)
            self.receipts.append(Minted(data, digest, sign(digest)))
            parent = digest
        self.tree = MerkleTree(receipt_leaf_hash(r.digest) for r in self.receipts)
        self.origin = log_origin(PREFIX, self.org)

    def checkpoint(self, size: int, cosigners: list[CosignatureSigner], seed: bytes = SEED) -> bytes:
        note = sign_checkpoint(
            Checkpoint(self.origin, size, self.tree.root(size)),
            Ed25519Signer.from_seed(self.origin, seed),
            previous=None,
        )
        for i, witness in enumerate(cosigners):
            note = cosign(note, witness, T0 + 60 * i)
        return note

    def share(self, seq: int, size: int | None = None, cosigners: list[CosignatureSigner] | None = None) -> Doc:
        size = size or self.n
        receipt = self.receipts[seq - 1]
        note = self.checkpoint(size, WITNESSES[:2] if cosigners is None else cosigners)
        proof = build_tlog_proof(receipt.digest, seq - 1, self.tree.inclusion_proof(seq - 1, size), note)
        return {
            "receipt_hash": receipt.digest,
            "payload": json.loads(receipt.payload),
            "signature": dict(receipt.signature),
            "transparency": {"origin": self.origin, "leaf_index": seq - 1, "tree_size": size, "proof": proof.decode()},
        }


def key_set(
    *, witnesses: list[CosignatureSigner] | None = None, prefix: str | None = PREFIX, key: bytes = PUBLIC
) -> Doc:
    keys: Doc = {
        "keys": [
            {
                "kid": key_id(key),
                "alg": "Ed25519",
                "public_key": b64url(key),
                "status": "active",
                "first_used_at": "2026-03-01T09:00:00+00:00",
            }
        ]
    }
    if prefix is not None:
        keys["origin_prefix"] = prefix
    if witnesses is not None:
        keys["witnesses"] = [{"name": w.name, "vkey": w.verifier().vkey} for w in witnesses]
    return keys


def flip_b64(text: str, byte: int = 0) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[byte] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def flip_b64url(text: str, byte: int = 0) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[byte] ^= 0x01
    return b64url(bytes(raw))


def tampered(doc: Doc) -> Doc:
    bad = copy.deepcopy(doc)
    verdict = bad["payload"]["verdict"]
    verdict["score"] = "100.00" if verdict["score"] != "100.00" else "99.00"
    return bad


def bad_signature(doc: Doc) -> Doc:
    bad = copy.deepcopy(doc)
    bad["signature"]["sig"] = flip_b64url(bad["signature"]["sig"], 10)
    return bad


def bad_inclusion(doc: Doc) -> Doc:
    """Flip one bit of the first inclusion proof hash (the line after `index N`)."""
    bad = copy.deepcopy(doc)
    lines = bad["transparency"]["proof"].split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
    lines[at] = flip_b64(lines[at], 5)
    bad["transparency"]["proof"] = "\n".join(lines)
    return bad


def bad_cosignature(doc: Doc) -> Doc:
    """Flip a bit in the last byte of the last cosignature line's Ed25519 signature."""
    bad = copy.deepcopy(doc)
    proof: str = bad["transparency"]["proof"]
    head, _, last = proof.rstrip("\n").rpartition("\n")
    name, _, blob = last.rpartition(" ")
    bad["transparency"]["proof"] = f"{head}\n{name} {flip_b64(blob, len(base64.b64decode(blob)) - 1)}\n"
    return bad


# ---------------------------------------------------------------- the browser


@dataclass
class Tab:
    page: Page
    errors: list[str]

    async def checks(self) -> list[tuple[str, str, str]]:
        await self.page.wait_for_selector("#receipt[data-state=done]", timeout=15_000)
        rows: list[list[str]] = await self.page.eval_on_selector_all(
            "[data-check]",
            "els => els.map(e => [e.dataset.check, e.dataset.outcome, e.querySelector('.check__detail').textContent])",
        )
        return [(name, outcome, detail) for name, outcome, detail in rows]

    async def outcomes(self) -> Outcomes:
        return {name: outcome for name, outcome, _ in await self.checks()}

    async def verify(self, doc: Doc, keys: Doc | None, options: Doc | None = None) -> list[dict[str, str]]:
        """verify.js's verifyReceipt called directly, in this page."""
        result: list[dict[str, str]] = await self.page.evaluate(
            "async ([doc, keys, options]) => (await import('/static/verify.js')).verifyReceipt(doc, keys, options)",
            [doc, keys, options or {}],
        )
        return result


def served(doc: Doc | Callable[[], Doc] | None, keys: Doc | None) -> Callable[[Route], Any]:
    """The gateway's answers for the page, from the same code and files the gateway serves."""

    async def answer(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path.startswith("/r/"):
            await route.fulfill(status=200, body=page_html(path[3:]), headers=_headers("text/html; charset=utf-8"))
        elif path.startswith("/static/") and path[8:] in ASSETS:
            data, media_type = ASSETS[path[8:]]
            await route.fulfill(status=200, body=data, headers=_headers(media_type))
        elif path.startswith("/share/") and doc is not None:
            body = doc() if callable(doc) else doc
            await route.fulfill(status=200, body=json.dumps(body), headers=_headers("application/json"))
        elif path == "/.well-known/defendable-keys.json" and keys is not None:
            await route.fulfill(status=200, body=json.dumps(keys), headers=_headers("application/json"))
        elif path == "/lab":
            await route.fulfill(status=200, body="<!doctype html><title>lab</title>", headers=_headers("text/html"))
        else:
            await route.fulfill(status=404, body="not found", headers=_headers("text/plain"))

    return answer


def _headers(media_type: str) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Content-Type": media_type}


async def open_tab(browser: Browser, *, mobile: bool = False) -> Tab:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844} if mobile else {"width": 1100, "height": 900},
        device_scale_factor=2 if mobile else 1,
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(15_000)
    return Tab(page, errors)


async def constructed(browser: Browser, doc: Doc | None, keys: Doc | None, *, mobile: bool = False) -> Tab:
    tab = await open_tab(browser, mobile=mobile)
    await tab.page.route("**/*", served(doc, keys))
    await tab.page.goto(f"{SITE}/r/tok_constructedReceiptPage01")
    return tab


@pytest.fixture(scope="module")
async def lab(browser: Browser) -> AsyncIterator[Tab]:
    """A page of the site with verify.js importable, for calling it directly."""
    tab = await open_tab(browser)
    await tab.page.route("**/*", served(None, None))
    await tab.page.goto(f"{SITE}/lab")
    yield tab
    await tab.page.context.close()


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("receipt-page-screens")


LOG = Log()
REDACTED = Log(redact=("evidence.name", "approval.note", "approval.approver"))


# ---------------------------------------------------------------- RFC 8785: verify.js against jcs.canonicalize

JCS_CASES = [
    # numbers: ECMAScript Number::toString, as RFC 8785 §3.2.2.3 asks
    "[1e21, 1e20, 1e-7, 1e-6, 0.1, 0.30000000000000004, -0.0, 0.0, 5e-324, 1.7976931348623157e308,"
    " 2.2250738585072014e-308, 9007199254740991, -9007199254740991, 9007199254740992.0, 295147905179352830000.0,"
    " 333333333.3333333, 1e23, 4.5, 0.000001, 123456789012345680000.0, 1.0, 100.0, -1.5e-10, 1e+300, 4.35, 2e-3]",
    # strings: only '"', '\\' and U+0000..U+001F escaped, short forms where they exist; the rest raw UTF-8
    '["\\u0000\\u0001\\u001f\\u007f", "\\b\\t\\n\\f\\r", "\\"\\\\/", "\\u2028\\u2029", "é€😀", "\\ud83d\\ude00",'
    ' "<>&\'", "\\u00e9\\u0301", "\\uffff\\ufeff"]',
    # RFC 8785 §3.2.3's own example: keys sorted by UTF-16 code units (the surrogate pair sorts before U+FB33)
    '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",'
    '"\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
    # nesting, sort order at every level, empty members and containers
    '{"b":[{"d":1,"c":[3,{"f":2,"e":1}]}],"a":"x","aa":{"z":[],"y":{}},"A":true,"_":null,"":false,"a\\u0000":0}',
    "[" * 256 + "]" * 256,
    "[" * 257 + "]" * 257,  # deeper than MAX_DEPTH: no canonical form in either
    '"\\ud800"',  # lone surrogates: not UTF-8, no canonical form
    '{"k":"x\\udc00"}',
    '{"\\udbff":1}',
]


def random_numbers() -> str:
    """3,000 doubles from random bit patterns (every exponent), and small decimals, as JSON."""
    rng = random.Random(8785)  # test data, not secrets
    values: list[float] = []
    while len(values) < 2000:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if value == value and abs(value) != float("inf"):
            values.append(value)
    values += [rng.randint(-(10**6), 10**6) / 10 ** rng.randint(0, 8) for _ in range(1000)]
    return json.dumps(values)


def python_jcs(text: str) -> str:
    try:
        return canonicalize(json.loads(text)).hex()
    except CanonicalError:
        return "error"


async def test_the_javascript_canonical_form_is_jcs_canonicalize_byte_for_byte(lab: Tab) -> None:
    cases = [*JCS_CASES, random_numbers()]
    got: list[str] = await lab.page.evaluate(
        """async (cases) => {
            const { canonicalBytes, toHex } = await import('/static/verify.js');
            return cases.map((text) => {
                try { return toHex(canonicalBytes(JSON.parse(text))); } catch (e) { return 'error'; }
            });
        }""",
        cases,
    )
    expected = [python_jcs(text) for text in cases]
    for text, js, py in zip(cases, got, expected, strict=True):
        assert js == py, (text[:200], js[:400], py[:400])
    assert expected.count("error") == 4  # the cases that have no canonical form fail in both


# ---------------------------------------------------------------- verify.js against verify_document, case by case


def python_outcomes(doc: Doc, keys: Doc, quorum: int | None) -> Outcomes:
    vkeys = [w["vkey"] for w in keys.get("witnesses", [])]
    trust = Trust(
        keys=parse_key_set(json.dumps(keys).encode()),
        source="the published key set",
        witnesses=witness_policy(vkeys, quorum) if vkeys and quorum else None,
    )
    return {c.name: c.outcome for c in verify_document(doc, trust)}


TRANSPARENCY = TRANSPARENCY_CHECKS  # verify.js names its checks as the Python verifier does
FULL = key_set(witnesses=WITNESSES[:2])
CASES: dict[str, tuple[Doc, Doc, int | None, dict[str, str]]] = {
    # name: (document, key set, quorum, the outcomes that must differ from PASS)
    "valid, first receipt": (LOG.share(1), FULL, 2, {}),
    "valid, later receipt": (LOG.share(4), FULL, 2, {"chain position": "SKIPPED"}),
    "valid, an older checkpoint": (LOG.share(2, size=3), FULL, 2, {"chain position": "SKIPPED"}),
    "tampered payload": (
        tampered(LOG.share(1)),
        FULL,
        2,
        {"receipt hash": "FAIL", "proof package (C2SP tlog-proof)": "FAIL", "inclusion proof (RFC 9162)": "FAIL"},
    ),
    "wrong signature": (bad_signature(LOG.share(1)), FULL, 2, {"signature (Ed25519)": "FAIL"}),
    "wrong inclusion proof": (
        bad_inclusion(LOG.share(3)),
        FULL,
        2,
        {"inclusion proof (RFC 9162)": "FAIL", "chain position": "SKIPPED"},
    ),
    "proof for another leaf": (
        {**LOG.share(1), "transparency": LOG.share(2)["transparency"]},
        FULL,
        2,
        {"proof package (C2SP tlog-proof)": "FAIL", "leaf index": "FAIL", "inclusion proof (RFC 9162)": "FAIL"},
    ),
    "signing key not published": (
        LOG.share(1),
        key_set(witnesses=WITNESSES[:2], key=STRANGER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
        2,
        {"signing key known": "FAIL", "log key known": "FAIL", "checkpoint signature (log key)": "FAIL"},
    ),
    "another org's log": (
        LOG.share(1),
        key_set(witnesses=WITNESSES[:2], prefix="other.test/log"),
        2,
        {"log origin": "FAIL"},
    ),
    "no origin prefix published": (LOG.share(1), key_set(witnesses=WITNESSES[:2], prefix=None), 2, {}),
    "a bad cosignature": (bad_cosignature(LOG.share(1)), FULL, 2, {"witness cosignatures": "FAIL"}),
    "quorum not met": (LOG.share(1, cosigners=WITNESSES[:1]), FULL, 2, {"witness cosignatures": "FAIL"}),
    "no witnesses published": (LOG.share(1), key_set(), None, {"witness cosignatures": "SKIPPED"}),
    "no cosignatures": (LOG.share(1, cosigners=[]), FULL, None, {"witness cosignatures": "SKIPPED"}),
    "no proof": (
        {k: v for k, v in LOG.share(1).items() if k != "transparency"},
        FULL,
        None,
        dict.fromkeys(TRANSPARENCY, "SKIPPED"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_verify_js_agrees_with_the_python_verifier(lab: Tab, case: str) -> None:
    doc, keys, quorum, differ = CASES[case]
    options = {"quorum": quorum} if quorum else {}
    js = {c["name"]: c["outcome"] for c in await lab.verify(doc, keys, options)}
    assert len(js) == 14, js
    expected = {name: differ.get(name, "SKIPPED" if name == "redacted fields" else "PASS") for name in js}
    assert js == expected, [(c["name"], c["outcome"], c["detail"]) for c in await lab.verify(doc, keys, options)]
    py = python_outcomes(doc, keys, quorum)
    shared = set(js) & set(py)
    assert {"receipt hash", "signature (Ed25519)", "signing key known"} <= shared, py
    assert {n: js[n] for n in shared} == {n: py[n] for n in shared}, (case, js, py)


async def test_without_a_key_set_nothing_about_the_keys_passes(lab: Tab) -> None:
    checks = {c["name"]: c for c in await lab.verify(LOG.share(1), None)}
    assert checks["signature (Ed25519)"]["outcome"] == "PASS"  # by the key the receipt carries
    assert checks["signing key known"]["outcome"] == "FAIL"
    assert checks["log key known"]["outcome"] == "FAIL"
    assert checks["witness cosignatures"]["outcome"] == "SKIPPED"
    assert "no key set" in checks["witness cosignatures"]["detail"]


async def test_pinned_witnesses_and_a_quorum_are_the_verifiers_choice(lab: Tab) -> None:
    doc = LOG.share(1)  # cosigned by witnesses 0 and 1
    pinned = [{"name": w.name, "vkey": w.verifier().vkey} for w in WITNESSES]

    async def witnesses(options: Doc, keys: Doc = FULL) -> tuple[str, str]:
        check = next(c for c in await lab.verify(doc, keys, options) if c["name"] == "witness cosignatures")
        return check["outcome"], check["detail"]

    assert (await witnesses({}))[0] == "PASS"  # the key set's witnesses, any that cosigned
    assert (await witnesses({"witnesses": pinned, "quorum": 2}))[0] == "PASS"
    outcome, detail = await witnesses({"witnesses": pinned})  # pinned without a quorum: all of them
    assert outcome == "FAIL" and "missing: witness2.test" in detail
    assert (await witnesses({"witnesses": pinned[2:]}, key_set()))[0] == "FAIL"
    outcome, detail = await witnesses({"quorum": 1}, key_set())
    assert outcome == "FAIL" and "needs witness keys" in detail
    outcome, detail = await witnesses({"now": T0 - 1})
    assert outcome == "FAIL" and "in the future" in detail
    wrong_id = [{"name": "witness0.test", "vkey": "witness0.test+00000000+AAAA"}]
    assert (await witnesses({"witnesses": wrong_id}))[0] == "FAIL"


async def test_malformed_documents_fail_without_throwing(lab: Tab) -> None:
    good = LOG.share(1)
    for doc in (
        {},
        {"payload": {}, "receipt_hash": "x"},
        {**good, "signature": None},
        {**good, "signature": {**good["signature"], "extra": 1}},
        {**good, "signature": {**good["signature"], "public_key": good["signature"]["public_key"] + "="}},
        {**good, "transparency": {**good["transparency"], "proof": "garbage"}},
        {**good, "transparency": {**good["transparency"], "tree_size": 99}},
        {**good, "payload": {**good["payload"], "schema": "someone.else/v1"}},
        {**good, "payload": {**good["payload"], "parent_hash": "sha256:" + "1" * 64}},
    ):
        checks = await lab.verify(doc, FULL)
        assert any(c["outcome"] == "FAIL" for c in checks), (doc, checks)
        assert all(c["outcome"] in ("PASS", "FAIL", "SKIPPED") for c in checks)
    assert not lab.errors


# ---------------------------------------------------------------- the page, on documents made here


async def test_the_page_shows_a_valid_receipt_with_every_check_passed(browser: Browser, screens: Path) -> None:
    doc = LOG.share(1)
    tab = await constructed(browser, doc, FULL)
    checks = await tab.checks()
    assert [(n, o) for n, o, _ in checks if o != "PASS"] == [("redacted fields", "SKIPPED")], checks
    assert len(checks) == 14
    page = tab.page
    assert await page.get_attribute("#receipt", "data-verified") == "true"
    assert "Receipt verified" in await page.inner_text("[data-testid=verification]")
    verdict = await page.inner_text("[data-testid=verdict]")
    assert "Jelly" in verdict and "66.67%" in verdict
    evidence = await page.inner_text("[data-testid=evidence]")
    assert doc["payload"]["evidence"][0]["name"] in evidence and doc["payload"]["evidence"][0]["sha256"] in evidence
    assert "user_ops_lead" in await page.inner_text("[data-testid=approval]")
    assert "fs_code_change" in await page.inner_text("[data-testid=run]")
    chain = await page.inner_text("[data-testid=chain]")
    assert "genesis" in chain and doc["receipt_hash"] in chain
    stats = await page.eval_on_selector_all("[data-testid=chain] .stat__value", "els => els.map(e => e.textContent)")
    assert stats == ["1", "6", "0"]  # seq, tree size, leaf index
    assert "rule.evidence.count" in await page.inner_text("[data-testid=flags]")
    assert not tab.errors  # no CSP violation, no script error
    await page.screenshot(path=screens / "valid.png", full_page=True)
    shutil.copy(screens / "valid.png", "/tmp/receipt_page.png")
    await page.context.close()

    phone = await constructed(browser, LOG.share(5), FULL, mobile=True)
    assert {o for _, o, _ in await phone.checks()} == {"PASS", "SKIPPED"}
    width = await phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing overflows a phone's width
    await phone.page.screenshot(path=screens / "valid-phone.png", full_page=True)
    shutil.copy(screens / "valid-phone.png", "/tmp/receipt_page_phone.png")
    await phone.page.context.close()


async def test_the_page_shows_redacted_fields_as_redacted_and_names_them(
    browser: Browser, lab: Tab, screens: Path
) -> None:
    doc = REDACTED.share(2)
    payload = doc["payload"]
    tab = await constructed(browser, doc, FULL)
    checks = {n: (o, d) for n, o, d in await tab.checks()}
    assert checks["redacted fields"][0] == "PASS", checks
    assert "approval.approver, approval.note, evidence[0].name" in checks["redacted fields"][1]
    assert checks["revealed fields"][0] == "SKIPPED"
    assert {o for o, _ in checks.values()} == {"PASS", "SKIPPED"}
    page = tab.page
    assert await page.get_attribute("#receipt", "data-verified") == "true"
    shown = await page.eval_on_selector_all("[data-redacted]", "els => els.map(e => [e.dataset.redacted, e.title])")
    assert sorted(map(tuple, shown)) == sorted(
        [("approval.approver", payload["approval"]["approver"]), ("approval.note", payload["approval"]["note"])]
        + [(f"evidence[{i}].name", e["name"]) for i, e in enumerate(payload["evidence"])]
    )
    assert "Redacted" in await page.inner_text("[data-testid=approval]")
    assert "user_ops_lead" not in await page.inner_text("#receipt")
    assert not tab.errors
    await page.screenshot(path=screens / "redacted.png", full_page=True)
    shutil.copy(screens / "redacted.png", "/tmp/receipt_page_redacted.png")
    await page.context.close()

    # verify.js and the Python verifier agree on a redacted receipt, and on a bad `redacted` list
    js = {c["name"]: c["outcome"] for c in await lab.verify(doc, FULL, {"quorum": 2})}
    py = python_outcomes(doc, FULL, 2)
    assert {"redacted fields", "revealed fields"} <= set(js) & set(py)
    assert {n: js[n] for n in set(js) & set(py)} == {n: py[n] for n in set(js) & set(py)}
    for bad in (["approval.approver", "approval.approver"], ["approval.decided_at"], "approval.note", [1]):
        broken = json.loads(json.dumps(doc))
        broken["payload"]["redacted"] = bad
        js = {c["name"]: c["outcome"] for c in await lab.verify(broken, FULL, {"quorum": 2})}
        py = python_outcomes(broken, FULL, 2)
        assert js["redacted fields"] == py["redacted fields"] == "FAIL", (bad, js, py)
        assert js.get("revealed fields") == py.get("revealed fields"), (bad, js, py)


@pytest.mark.parametrize(
    ("make", "failing"),
    [
        (tampered, "receipt hash"),
        (bad_signature, "signature (Ed25519)"),
        (bad_inclusion, "inclusion proof (RFC 9162)"),
    ],
    ids=["tampered-payload", "wrong-signature", "wrong-inclusion-proof"],
)
async def test_the_page_shows_what_fails(
    browser: Browser, screens: Path, make: Callable[[Doc], Doc], failing: str
) -> None:
    tab = await constructed(browser, make(LOG.share(1)), FULL)
    outcomes = await tab.outcomes()
    assert outcomes[failing] == "FAIL", outcomes
    assert await tab.page.get_attribute("#receipt", "data-verified") == "false"
    banner = await tab.page.inner_text("[data-testid=verification]")
    assert "Verification failed" in banner and failing in banner
    assert not tab.errors
    if failing == "receipt hash":
        await tab.page.screenshot(path=screens / "tampered.png", full_page=True)
        shutil.copy(screens / "tampered.png", "/tmp/receipt_page_failed.png")
    await tab.page.context.close()


async def test_the_page_renders_hostile_strings_as_text(browser: Browser) -> None:
    doc = LOG.share(1)
    doc["payload"]["project"] = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    tab = await constructed(browser, doc, FULL)
    outcomes = await tab.outcomes()
    assert outcomes["receipt hash"] == "FAIL"
    assert await tab.page.evaluate("window.pwned") is None
    assert "<script>" in await tab.page.inner_text("h1")
    await tab.page.context.close()


async def test_a_share_link_that_does_not_load_says_so(browser: Browser) -> None:
    tab = await constructed(browser, None, FULL)  # /share answers 404
    await tab.page.wait_for_selector("#receipt[data-state=error]")
    assert "could not be loaded" in await tab.page.inner_text("[data-testid=verification]")
    await tab.page.context.close()


# ---------------------------------------------------------------- the page on the real stack


async def minted_share(submitter: AsyncClient, approver: AsyncClient) -> str:
    share: str = (await minted_receipt(submitter, approver, "receipt page test"))["links"]["share"]
    return share


async def test_the_gateway_serves_the_page_and_the_browser_verifies_a_minted_receipt(
    submitter: AsyncClient, approver: AsyncClient, services: Services, browser: Browser, screens: Path
) -> None:
    await minted_share(submitter, approver)
    share = await minted_share(submitter, approver)  # seq 2: its inclusion proof has a hash to flip
    token = share.rsplit("/", 1)[1]
    base = services.base_url
    async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
        page = await anonymous.get(f"/r/{token}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert f'data-share-token="{token}"' in page.text and "<script>" not in page.text
        script = await anonymous.get("/static/verify.js")
        assert script.headers["content-type"].startswith("text/javascript") and "fetch(" not in script.text
        for missing in ("/r/" + "x" * 30, "/r/short", "/r/not%20a%20token%20at%20all%20no"):
            gone = await anonymous.get(missing)
            assert gone.status_code == 404 and "No receipt is shared under this link" in gone.text, missing
        assert (await anonymous.get("/static/nothing.js")).status_code == 404
        shared = (await anonymous.get(f"/share/{token}")).json()

    tab = await open_tab(browser)
    await tab.page.goto(f"{base}/r/{token}")
    checks = await tab.checks()
    assert [(n, o, d) for n, o, d in checks if o == "FAIL"] == []
    outcomes = {n: o for n, o, _ in checks}
    for name in ("canonical form (RFC 8785)", "receipt hash", "receipt schema", "signature (Ed25519)"):
        assert outcomes[name] == "PASS", checks
    assert outcomes["signing key known"] == "PASS", checks
    if "transparency" in shared:  # the ledger's log serves proofs: every proof check passes
        for name in ("proof package (C2SP tlog-proof)", "log origin", "leaf index", "inclusion proof (RFC 9162)"):
            assert outcomes[name] == "PASS", checks
        assert outcomes["log key known"] == outcomes["checkpoint signature (log key)"] == "PASS", checks
    assert not tab.errors
    await tab.page.screenshot(path=screens / "stack.png", full_page=True)

    # The same receipt, tampered with on its way to the browser.
    for make, failing in ((tampered, "receipt hash"), (bad_signature, "signature (Ed25519)")):
        await tab.page.route(f"{base}/share/{token}", _answer_with(make(shared)))
        await tab.page.goto(f"{base}/r/{token}")
        outcomes = await tab.outcomes()
        assert outcomes[failing] == "FAIL", outcomes
        await tab.page.unroute(f"{base}/share/{token}")
    if "transparency" in shared:
        await tab.page.route(f"{base}/share/{token}", _answer_with(bad_inclusion(shared)))
        await tab.page.goto(f"{base}/r/{token}")
        assert (await tab.outcomes())["inclusion proof (RFC 9162)"] == "FAIL"
    await tab.page.context.close()


def _answer_with(doc: Doc) -> Callable[[Route], Any]:
    async def answer(route: Route) -> None:
        await route.fulfill(status=200, body=json.dumps(doc), headers={"Content-Type": "application/json"})

    return answer


def test_the_static_assets_are_what_the_page_loads() -> None:
    assert set(ASSETS) == {"verify.js", "receipt.js", "receipt.css"}
    assert b"fetch(" not in ASSETS["verify.js"][0]  # the offline verify.html reuses it as it is
    assert b"export function renderReceipt(container, doc, checks)" in ASSETS["receipt.js"][0]
