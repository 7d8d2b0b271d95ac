"""Receipt → PDF, byte-for-byte deterministic. The only module that imports fpdf.

Determinism (same payload bytes, hash and signature → same PDF bytes, in any process):
- the creation date is the receipt's ``minted_at`` (none when it does not parse), never
  the clock; the attachment's dates are the same value;
- producer, creator and title are fixed strings; the ``/ID`` trailer is fpdf2's default,
  an MD5 of the document bytes and that date, so it is content-derived;
- fonts are bundled (``fonts/``), never looked up on the system; the font subset prefix
  is fpdf2's constant ``MPDFAA+`` and fontTools keeps the font's own timestamp;
- nothing iterates a set or dict whose order could vary.
Byte identity holds for a given fpdf2 / fontTools / zlib; a library upgrade may change bytes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer

from defendable_canonical.model import ReceiptPayload, Signature
from defendable_render.fontsource import FontSource
from defendable_render.layout import ReceiptLayout

FONT_DIR = Path(__file__).parent / "fonts"
# (family, style, file) — family names used by the layout.
FACES: tuple[tuple[str, str, str], ...] = (
    ("sans", "", "DejaVuSans.ttf"),
    ("sans", "B", "DejaVuSans-Bold.ttf"),
    ("mono", "", "DejaVuSansMono.ttf"),
)

# fpdf2 shares font objects' caches (functools.cache on SubsetMap methods) across
# documents, and our templates are shared too: one render at a time per process.
_LOCK = threading.Lock()


class _Face:
    """A face parsed once: fpdf2's metrics object plus the decompiled font for cutting."""

    def __init__(self, family: str, style: str, path: Path) -> None:
        scratch = FPDF()
        scratch.add_font(family, style, str(path))
        self.fontkey = f"{family}{style}"
        template = scratch.fonts[self.fontkey]
        assert isinstance(template, TTFFont)
        self.template = template
        self.template.ttfont.close()
        self.source = FontSource(path)

    def instance(self, index: int) -> TTFFont:
        """A per-document TTFFont sharing the parsed metrics, with its own glyph subset."""
        font: TTFFont = TTFFont.__new__(TTFFont)
        for slot in TTFFont.__slots__:
            if hasattr(self.template, slot):
                setattr(font, slot, getattr(self.template, slot))
        font.i = index
        widths = self.template.cw
        assert isinstance(widths, defaultdict)  # fpdf2 builds it with the missing-glyph width
        font.cw = defaultdict(widths.default_factory, widths)
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.subset = SubsetMap(font)
        font.ttfont = None  # set by _CuttingProducer once the document's glyphs are known
        return font


@cache
def _faces() -> tuple[_Face, ...]:
    return tuple(_Face(family, style, FONT_DIR / name) for family, style, name in FACES)


class _CuttingProducer(OutputProducer):
    """Gives each reused font a small per-document TTFont just before fpdf2 subsets it."""

    def _add_fonts(self, *args: Any, **kwargs: Any) -> Any:
        sources = self.fpdf.font_sources if isinstance(self.fpdf, ReceiptPDF) else {}
        for key, font in self.fpdf.fonts.items():
            if key in sources and isinstance(font, TTFFont):
                font.ttfont = sources[key].cut(font.subset.get_all_glyph_names())
        return super()._add_fonts(*args, **kwargs)


class ReceiptPDF(FPDF):
    """FPDF with the receipt footer and either reused (default) or freshly parsed fonts."""

    def __init__(self, footer_text: str, *, reuse_fonts: bool = True) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.font_sources: dict[str, FontSource] = {}
        if reuse_fonts:
            for face in _faces():
                self.fonts[face.fontkey] = face.instance(len(self.fonts) + 1)
                self.font_sources[face.fontkey] = face.source
        else:
            for family, style, name in FACES:
                self.add_font(family, style, str(FONT_DIR / name))

    def footer(self) -> None:
        self.set_y(-13)
        self.set_draw_color(200, 200, 200)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_y(-11)
        self.set_font("sans", "", 7)
        self.set_text_color(110, 110, 110)
        width = self.w - self.l_margin - self.r_margin
        self.cell(width - 25, 4, self.footer_text)
        self.cell(25, 4, f"Page {self.page_no()} of {{nb}}", align="R")

    def render(self) -> bytes:
        return bytes(self.output(output_producer_class=_CuttingProducer))


def attachment_name(receipt_hash: str) -> str:
    """``receipt-<first 16 hex of hash>.json``."""
    hex_digest = receipt_hash.removeprefix("sha256:")
    return f"receipt-{hex_digest[:16]}.json"


def _minted(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def render_receipt_pdf(
    payload_bytes: bytes,
    receipt_hash: str,
    signature: Signature | None = None,
    *,
    reuse_fonts: bool = True,
) -> bytes:
    """One receipt as a PDF, with ``payload_bytes`` attached verbatim.

    ``reuse_fonts=False`` parses the bundled fonts afresh (fpdf2's plain path); it
    exists as the reference for tests and benchmarks and yields the same bytes.
    """
    payload = msgspec.json.decode(payload_bytes, type=ReceiptPayload)
    name = attachment_name(receipt_hash)
    minted = _minted(payload.minted_at)
    with _LOCK:
        try:
            pdf = ReceiptPDF(
                f"Verify: recompute SHA-256 of the attached canonical JSON (RFC 8785), {name}",
                reuse_fonts=reuse_fonts,
            )
            pdf.set_creation_date(minted)
            pdf.set_producer("Defendable render")
            pdf.set_creator("Defendable")
            pdf.set_title(f"Defendable receipt {receipt_hash}")
            pdf.set_lang("en")
            pdf.set_auto_page_break(auto=True, margin=17)
            pdf.set_margins(15, 14, 15)
            pdf.alias_nb_pages()
            pdf.embed_file(
                bytes=payload_bytes,
                basename=name,
                mime_type="application/json",
                desc="Canonical receipt payload (RFC 8785); its SHA-256 is the receipt hash",
                creation_date=minted,
                modification_date=minted,
                compress=True,
                checksum=True,
            )
            ReceiptLayout(_Writer(pdf)).draw(payload, receipt_hash, signature, name)
            return pdf.render()
        finally:
            # fpdf2 memoises SubsetMap lookups in process-wide caches keyed by the map,
            # which would keep every document's fonts alive forever.
            _clear_subset_caches()


def _clear_subset_caches() -> None:
    for method in (SubsetMap.pick, SubsetMap.get_glyph):
        clear: Callable[[], None] | None = getattr(method, "cache_clear", None)
        if clear is not None:
            clear()


class _Writer:
    """The few drawing primitives the layout needs, so only this module touches fpdf."""

    def __init__(self, pdf: ReceiptPDF) -> None:
        self.pdf = pdf

    @property
    def width(self) -> float:
        return float(self.pdf.w - self.pdf.l_margin - self.pdf.r_margin)

    @property
    def left(self) -> float:
        return float(self.pdf.l_margin)

    @property
    def y(self) -> float:
        return float(self.pdf.get_y())

    @property
    def bottom(self) -> float:
        return float(self.pdf.h - self.pdf.b_margin)

    def add_page(self) -> None:
        self.pdf.add_page()

    def set_y(self, y: float) -> None:
        self.pdf.set_y(y)

    def set_xy(self, x: float, y: float) -> None:
        self.pdf.set_xy(x, y)

    def font(self, family: str, style: str, size: float, rgb: tuple[int, int, int] = (30, 30, 30)) -> None:
        self.pdf.set_font(family, style, size)
        self.pdf.set_text_color(*rgb)

    def lines(self, width: float, text: str) -> Sequence[str]:
        """Greedy word wrap of ``text`` in the current font; over-long words break between characters.

        fpdf2's ``multi_cell`` re-measures the growing line for every character (quadratic);
        this measures each word once and was the difference between ~10 and ~50 PDFs/s.
        """
        font = self.pdf.current_font
        assert isinstance(font, TTFFont), "receipts use the bundled TrueType fonts only"
        cw: dict[int, float] = font.cw
        scale = self.pdf.font_size_pt / 1000 / self.pdf.k

        def measure(text: str) -> float:
            # The same sum fpdf2's get_string_width does for a TTF font without shaping.
            return sum(cw[ord(ch)] for ch in text) * scale

        space = measure(" ")
        out: list[str] = []
        for paragraph in text.split("\n"):
            line, line_width = "", 0.0
            for word in paragraph.split(" "):
                word_width = measure(word)
                if line and line_width + space + word_width <= width:
                    line, line_width = f"{line} {word}", line_width + space + word_width
                    continue
                if line:
                    out.append(line)
                line, line_width = word, word_width
                while line_width > width and len(line) > 1:
                    cut, cut_width = 0, 0.0
                    while cut < len(line) - 1 and cut_width + measure(line[cut]) <= width:
                        cut_width += measure(line[cut])
                        cut += 1
                    cut = max(cut, 1)
                    out.append(line[:cut])
                    line = line[cut:]
                    line_width = measure(line)
            out.append(line)
        return out

    def text_width(self, text: str) -> float:
        return float(self.pdf.get_string_width(text))

    def cell(self, width: float, height: float, text: str, *, align: str = "L", fill: bool = False) -> None:
        self.pdf.cell(width, height, text, align=align, fill=fill)

    def block(self, x: float, y: float, width: float, line_height: float, lines: Sequence[str]) -> None:
        """Pre-wrapped lines (from ``lines``) at (x, y); does not break pages (rows are measured first)."""
        for i, line in enumerate(lines):
            self.pdf.set_xy(x, y + i * line_height)
            self.pdf.cell(width, line_height, line)

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        fill: tuple[int, int, int] | None = None,
        border: tuple[int, int, int] | None = None,
    ) -> None:
        style = ("F" if fill else "") + ("D" if border else "")
        if fill:
            self.pdf.set_fill_color(*fill)
        if border:
            self.pdf.set_draw_color(*border)
            self.pdf.set_line_width(0.3)
        if style:
            self.pdf.rect(x, y, w, h, style=style)

    def hline(self, y: float, rgb: tuple[int, int, int] = (215, 215, 215)) -> None:
        self.pdf.set_draw_color(*rgb)
        self.pdf.set_line_width(0.2)
        self.pdf.line(self.left, y, self.left + self.width, y)

    def auto_break(self, on: bool) -> None:
        self.pdf.set_auto_page_break(auto=on, margin=17)
