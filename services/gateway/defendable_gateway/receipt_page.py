"""The public receipt page: ``GET /r/{token}`` shows a shared receipt, verified in the browser.

The page is a shell: ``static/receipt.js`` fetches ``/share/{token}`` and
``/.well-known/defendable-keys.json`` from the same origin and verifies with
``static/verify.js`` (the JavaScript mirror of ``defendable_canonical.verification``), so
the reader's own browser, not this server, decides PASS or FAIL. No auth, as ``/share``:
whoever holds the link may read the receipt. Every response carries a strict
Content-Security-Policy: scripts and styles from this origin only, no inline code, no
other origin reachable.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

from litestar import Response, get

from . import routes, store

STATIC_DIR: Final = Path(__file__).parent / "static"
_MEDIA_TYPES: Final = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# Read once at import: three small files, served from memory.
ASSETS: Final[dict[str, tuple[bytes, str]]] = {
    path.name: (path.read_bytes(), _MEDIA_TYPES[path.suffix])
    for path in sorted(STATIC_DIR.iterdir())
    if path.suffix in _MEDIA_TYPES
}

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is the URL: never send it to another site
    "X-Frame-Options": "DENY",
}


def _document(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/static/receipt.css">
</head>
<body>
<header class="topbar">
<span class="brand"><span class="brand__mark" aria-hidden="true">D</span>Defendable</span>
<span class="topbar__note">Verifiable receipt</span>
</header>
<main class="page">
{body}
</main>
</body>
</html>
"""


def page_html(token: str) -> str:
    """The page of a shared receipt; receipt.js fills ``[data-share-token]`` once it has verified."""
    t = html.escape(token, quote=True)
    body = f"""<div class="receipt" id="receipt" data-share-token="{t}" data-state="loading" aria-live="polite">
<p class="loading">Verifying the receipt in your browser…</p>
<noscript><p class="loading">This page verifies the receipt with JavaScript.
The raw document is at <a href="/share/{t}">/share/{t}</a>.</p></noscript>
</div>
<footer class="footer">
<p>Checked in this browser with <a href="/static/verify.js">verify.js</a> against the ledger's
<a href="/.well-known/defendable-keys.json">published keys</a>. Nothing is sent anywhere.</p>
<p><a data-json-link href="/share/{t}">The receipt as JSON</a> ·
<code>defendable verify --share</code> checks the same from a terminal.</p>
</footer>
<script type="module" src="/static/receipt.js"></script>"""
    return _document("Receipt · Defendable", body)


def not_found_html() -> str:
    body = """<section class="card notfound">
<p class="eyebrow">404</p>
<h1>No receipt is shared under this link</h1>
<p class="muted">Check that the link is complete. A receipt stays shared once it is minted; a link that
never named one stays unknown.</p>
</section>"""
    return _document("Receipt not found · Defendable", body)


def _html(content: str, status: int) -> Response[str]:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return Response(content, status_code=status, media_type="text/html; charset=utf-8", headers=headers)


@get("/r/{token:str}", summary="The receipt page of a share link, verified in the reader's browser (no auth)")
async def receipt_page(token: str) -> Response[str]:
    shared = routes._TOKEN.fullmatch(token) is not None  # the rule /share applies
    row = await store.get_receipt_by_token(routes.holder.res.pool, token) if shared else None
    if row is None:
        return _html(not_found_html(), 404)
    return _html(page_html(token), 200)


@get("/static/{name:str}", summary="The receipt page's scripts and style sheet", include_in_schema=False)
async def static_asset(name: str) -> Response[bytes]:
    asset = ASSETS.get(name)
    if asset is None:
        return Response(b"not found\n", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
    data, media_type = asset
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}
    return Response(data, media_type=media_type, headers=headers)
