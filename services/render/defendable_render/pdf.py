"""Receipt → PDF, byte-for-byte deterministic. The only module that imports fpdf.

Determinism (same payload bytes, hash and signature → same PDF bytes, in any process):
- the creation date is the receipt's ``minted_at`` (none when it does not parse), never
  the clock; the attachment's dates are the same value;
- producer, creator and title are fixed strings; the ``/ID`` trailer is fpdf2's default,
  an MD5 of the document bytes and that date, so it is content-derived;
- fonts are bundled (``fonts/``), never looked up on the system; the font subset prefix
  is fpdf2's constant ``MPDFAA+`` and fontTools keeps the font's own timestamp;
- text the DejaVu faces cannot draw (CJK, Hangul) is drawn in the bundled fallback face,
  which joins a document only when its text needs it, so other documents do not change;
- the embedded font programs are cached per glyph set (``_font_program``); a cached
  program is a pure function of its key, so a warm and a cold process write the same bytes;
- nothing iterates a set or dict whose order could vary.
Byte identity holds for a given fpdf2 / fontTools / zlib; a library upgrade may change bytes.
"""

from __future__ import annotations

import atexit
import io
import itertools
import lzma
import shutil
import string
import tempfile
import threading
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from fontTools import subset as ftsubset  # type: ignore[import-untyped]  # fontTools ships no type information
from fontTools import ttLib
from fpdf import FPDF
from fpdf.drawing_primitives import DeviceCMYK, DeviceGray, DeviceRGB, convert_to_device_color
from fpdf.enums import TextMode
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import (
    CIDSystemInfo,
    OutputProducer,
    PDFFont,
    PDFFontStream,
    _build_cmap_blocks,
    _tt_font_widths,
)
from fpdf.syntax import Name, PDFArray, PDFContentStream

from defendable_canonical.cook import CookReceiptPayload
from defendable_canonical.incident import IncidentReceiptPayload, UnlockReceiptPayload
from defendable_canonical.model import ReceiptPayload, Signature
from defendable_canonical.receipt import AnyReceiptPayload, decode_any_payload
from defendable_render.cook_layout import CookLayout
from defendable_render.fontsource import FontSource
from defendable_render.incident_layout import IncidentLayout, UnlockLayout
from defendable_render.layout import ReceiptLayout, Writer

FONT_DIR = Path(__file__).parent / "fonts"
# (family, style, file) — family names used by the layout.
FACES: tuple[tuple[str, str, str], ...] = (
    ("sans", "", "DejaVuSans.ttf"),
    ("sans", "B", "DejaVuSans-Bold.ttf"),
    ("mono", "", "DejaVuSansMono.ttf"),
)

# Drawn where the face in use lacks a character: WenQuanYi Micro Hei covers CJK ideographs,
# kana and Hangul, which DejaVu does not. It has one weight, so bold CJK is drawn regular.
# Stored xz-compressed (1.5 MB, not 4.5 MB, in every clone) and unpacked on first need.
FALLBACK_FACE = ("cjk", "", "WenQuanYiMicroHei.ttf.xz")

# fpdf2 shares font objects' caches (functools.cache on SubsetMap methods) across
# documents, and our templates are shared too: one render at a time per process.
_LOCK = threading.Lock()


_SOFT_BREAKS = "_-./"  # where an over-long word may wrap before any other character


class _Face:
    """A face parsed once: fpdf2's metrics object plus the decompiled font for cutting."""

    def __init__(self, family: str, style: str, path: Path, *, expand_all: bool = True) -> None:
        scratch = FPDF()
        scratch.add_font(family, style, str(path))
        self.fontkey = f"{family}{style}"
        template = scratch.fonts[self.fontkey]
        assert isinstance(template, TTFFont)
        self.template = template
        self.template.ttfont.close()
        self.source = FontSource(path, expand_all=expand_all)

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


@cache
def _fallback_face() -> _Face:
    """Parsed on the first document that needs it (measured: that document takes ~0.6 s, and
    the process ~85 MB more), which most processes never spend; its glyphs are decompiled as
    documents use them."""
    family, style, name = FALLBACK_FACE
    return _Face(family, style, font_file(name), expand_all=False)


@cache
def font_file(name: str) -> Path:
    """A bundled face as a TrueType file on disk (fpdf2 opens faces by path). A ``.xz`` face
    is unpacked into a directory private to this process, removed at exit."""
    packed = FONT_DIR / name
    if packed.suffix != ".xz":
        return packed
    private = Path(tempfile.mkdtemp(prefix="defendable-fonts-"))  # mode 0700: nobody can swap it
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    unpacked = private / packed.stem
    unpacked.write_bytes(lzma.decompress(packed.read_bytes()))
    return unpacked


class _CuttingProducer(OutputProducer):
    """Embeds the reused faces through ``_embed_face`` (same objects, same bytes as fpdf2)."""

    def _add_fonts(self, *args: Any, **kwargs: Any) -> Any:
        sources = self.fpdf.font_sources if isinstance(self.fpdf, ReceiptPDF) else {}
        fonts = sorted(self.fpdf.fonts.values(), key=lambda font: font.i)
        reusable = all(
            isinstance(font, TTFFont)
            and font.fontkey in sources
            and not (font.missing_glyphs or font.color_font or font.is_cff)
            for font in fonts
        )
        if not reusable:
            # Anything unusual (a missing glyph to warn about, a foreign font) takes
            # fpdf2's own path over a per-document cut of the face.
            for font in fonts:
                if isinstance(font, TTFFont) and font.fontkey in sources:
                    font.ttfont = sources[font.fontkey].cut(font.subset.get_all_glyph_names())
            return super()._add_fonts(*args, **kwargs)
        objs: dict[int, PDFFont] = {}
        for font in fonts:
            assert isinstance(font, TTFFont)
            objs[font.i] = self._embed_face(font, sources[font.fontkey])
        return objs

    def _embed_face(self, font: TTFFont, source: FontSource) -> PDFFont:
        """fpdf2 2.8.9 ``OutputProducer._add_fonts`` for one TrueType face, object for object.

        The same seven objects in the same order with the same contents (the reused-vs-fresh
        test compares whole files), but the font program comes from ``_font_program``: cut,
        subset, saved and compressed once per distinct glyph set.
        """
        fontname = f"MPDFAA+{font.name}"
        program = _font_program(source, frozenset(font.subset.get_all_glyph_names()))
        code_to_glyph = {
            char_id: program.gid[glyph.glyph_name] for glyph, char_id in font.subset.items() if glyph is not None
        }
        composite = PDFFont(subtype="Type0", base_font=fontname, encoding="Identity-H")
        self._add_pdf_obj(composite, "fonts")
        cid_font = PDFFont(
            subtype="CIDFontType2", base_font=fontname, d_w=font.desc.missing_width, w=_tt_font_widths(font)
        )
        self._add_pdf_obj(cid_font, "fonts")
        composite.descendant_fonts = PDFArray([cid_font])

        # ToUnicode: what copy-paste in a viewer (and pypdf, in the tests) reads back; BMP code points only.
        bf_char = [
            f"<{char_id:04X}> <{''.join(_utf16_hex(code) for code in glyph.unicode)}>\n"
            for glyph, char_id in font.subset.items()
            if glyph is not None and isinstance(glyph.unicode, tuple) and glyph.unicode
        ]
        to_unicode = PDFContentStream(
            (
                "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo\n"
                "<</Registry (Adobe)\n/Ordering (UCS)\n/Supplement 0\n>> def\n"
                "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
                "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
                f"{_build_cmap_blocks(bf_char, 'bfchar')}"
                "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
            ).encode("latin-1")
        )
        self._add_pdf_obj(to_unicode, "fonts")
        composite.to_unicode = to_unicode

        system_info = CIDSystemInfo()
        self._add_pdf_obj(system_info, "fonts")
        cid_font.c_i_d_system_info = system_info

        descriptor = font.desc
        descriptor.font_name = Name(fontname)
        self._add_pdf_obj(descriptor, "fonts")
        cid_font.font_descriptor = descriptor

        cid_to_gid_obj = _DeflatedStream(_cid_to_gid_map(tuple(sorted(code_to_glyph.items()))))
        self._add_pdf_obj(cid_to_gid_obj, "fonts")
        cid_font.c_i_d_to_g_i_d_map = cid_to_gid_obj

        stream = _CompressedFontStream(program.compressed, program.length)
        self._add_pdf_obj(stream, "fonts")
        descriptor.font_file2 = stream  # type: ignore[attr-defined]  # fpdf2 sets it the same way
        return composite


@cache
def _text_color(rgb: tuple[int, int, int]) -> DeviceRGB | DeviceGray | DeviceCMYK:
    """What ``set_text_color(*rgb)`` stores (a grey when r == g == b), built once."""
    return convert_to_device_color(*rgb)


def _utf16_hex(code: int) -> str:
    """A code point as UTF-16BE hex, surrogate pair above the BMP (fpdf2's ``format_code``)."""
    if code > 0xFFFF:
        return f"{0xD800 | (code - 0x10000) >> 10:04X}{0xDC00 | (code & 0x3FF):04X}"
    return f"{code:04X}"


class _DeflatedStream(PDFContentStream):
    """``PDFContentStream(contents, compress=True)`` over contents deflated beforehand."""

    def __init__(self, compressed: bytes) -> None:
        PDFContentStream.__init__(self, b"")
        self._contents = compressed
        self.filter = Name("FlateDecode")
        self.length = len(compressed)


@lru_cache(maxsize=256)
def _cid_to_gid_map(code_to_glyph: tuple[tuple[int, int], ...]) -> bytes:
    """The deflated CIDToGIDMap: 2 bytes per code, 128 KiB before deflating, so deflating it
    was ~0.7 ms per face per document. Receipts draw their text in the same order, so the
    same few code assignments recur; the value is a pure function of the key."""
    cid_to_gid = bytearray(2 * 65536)
    for code, gid in code_to_glyph:
        cid_to_gid[2 * code : 2 * code + 2] = gid.to_bytes(2, "big")
    return zlib.compress(cid_to_gid, level=PDFContentStream._COMPRESSION_LEVEL)


class _CompressedFontStream(PDFFontStream):
    """``PDFFontStream`` over an already deflated program (deflating is deterministic, so cacheable)."""

    def __init__(self, compressed: bytes, length: int) -> None:
        PDFContentStream.__init__(self, b"")
        self._contents = compressed
        self.filter = Name("FlateDecode")
        self.length = len(compressed)
        self.length1 = length


class _Program(NamedTuple):
    compressed: bytes  # the subset font file, zlib-deflated as fpdf2 does
    length: int  # its uncompressed size (/Length1)
    gid: dict[str, int]  # glyph name -> glyph id in the subset


# Font programs by (face, glyph set). Receipts share most glyphs, so a handful of sets
# cover most documents; the value is a pure function of the key, so hits and misses
# give the same bytes. Bounded (least recently used goes) to cap memory at a few MB.
_PROGRAMS: OrderedDict[tuple[Path, frozenset[str]], _Program] = OrderedDict()
_PROGRAMS_MAX = 192


def _font_program(source: FontSource, glyph_names: frozenset[str]) -> _Program:
    key = (source.path, glyph_names)
    program = _PROGRAMS.get(key)
    if program is not None:
        _PROGRAMS.move_to_end(key)
        return program
    # fpdf2's subsetting (fpdf/output.py, _add_fonts step 2) over the small cut font;
    # sorted() only makes the call independent of set order (populate takes a set anyway).
    ttfont = source.cut(sorted(glyph_names))
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
    options.drop_tables += _FPDF_DROPPED_TABLES
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(glyphs=sorted(glyph_names))
    subsetter.subset(ttfont)
    buffer = io.BytesIO()
    ttfont.save(buffer)
    data = buffer.getvalue()
    gid = {name: i for i, name in enumerate(ttfont.getGlyphOrder())}
    ttfont.close()
    program = _Program(zlib.compress(data, level=PDFContentStream._COMPRESSION_LEVEL), len(data), gid)
    _PROGRAMS[key] = program
    if len(_PROGRAMS) > _PROGRAMS_MAX:
        _PROGRAMS.popitem(last=False)
    return program


# fpdf2 2.8.9's drop list (fpdf/output.py, _add_fonts); fontTools' defaults come on top.
_FPDF_DROPPED_TABLES = [
    "FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix",
    "CBDT", "CBLC", "EBDT", "EBLC", "EBSC", "SVG ", "CPAL", "COLR",
]  # fmt: skip


# Letters, digits and the punctuation of ids, hashes (hex), signatures (base64url) and dates.
BASE_ALPHABET = string.ascii_letters + string.digits + " -_:.,+/=%()"


class ReceiptPDF(FPDF):
    """FPDF with the receipt footer and either reused (default) or freshly parsed fonts."""

    def __init__(self, footer_text: str, *, reuse_fonts: bool = True) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.font_sources: dict[str, FontSource] = {}
        self.reuse_fonts = reuse_fonts
        if reuse_fonts:
            for face in _faces():
                self.fonts[face.fontkey] = face.instance(len(self.fonts) + 1)
                self.font_sources[face.fontkey] = face.source
        else:
            for family, style, name in FACES:
                self.add_font(family, style, str(FONT_DIR / name))

    def fallback_font(self) -> TTFFont:
        """The fallback face, added to this document on first use (after the regular faces,
        so that their object numbers do not move)."""
        family, style, name = FALLBACK_FACE
        fontkey = family + style
        if fontkey not in self.fonts:
            if self.reuse_fonts:
                face = _fallback_face()
                self.fonts[fontkey] = face.instance(len(self.fonts) + 1)
                self.font_sources[fontkey] = face.source
            else:
                self.add_font(family, style, str(font_file(name)))
            self.set_fallback_fonts([family], exact_match=False)  # for fpdf2's own cell()
        font = self.fonts[fontkey]
        assert isinstance(font, TTFFont)
        return font

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
        # Every used face embeds the same base alphabet whether or not this document drew
        # each letter: ids, hashes, signatures and timestamps vary per receipt, so the
        # exact glyph set used to vary with them, and each new set meant a fresh subset
        # of the font (the cache in `_font_program` missed on nearly every receipt).
        # Both font paths pick the same glyphs here, so their bytes stay identical.
        for font in self.fonts.values():
            if isinstance(font, TTFFont) and font.subset.items():
                for char in BASE_ALPHABET:
                    font.subset.pick(ord(char))
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
    """One receipt of any kind as a PDF, with ``payload_bytes`` attached verbatim.

    The payload is read as the kind its ``schema`` names (raises CanonicalError for a
    schema that names none). ``reuse_fonts=False`` parses the bundled fonts afresh
    (fpdf2's plain path); it exists as the reference for tests and benchmarks and yields
    the same bytes.
    """
    payload = decode_any_payload(payload_bytes)
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
            draw(_Writer(pdf), payload, receipt_hash, signature, name)
            return pdf.render()
        finally:
            # fpdf2 memoises SubsetMap lookups in process-wide caches keyed by the map,
            # which would keep every document's fonts alive forever.
            _clear_subset_caches()


def draw(out: Writer, payload: AnyReceiptPayload, receipt_hash: str, signature: Signature | None, name: str) -> None:
    """The layout of the payload's kind."""
    match payload:
        case ReceiptPayload():
            ReceiptLayout(out).draw(payload, receipt_hash, signature, name)
        case CookReceiptPayload():
            CookLayout(out).draw(payload, receipt_hash, signature, name)
        case IncidentReceiptPayload():
            IncidentLayout(out).draw(payload, receipt_hash, signature, name)
        case UnlockReceiptPayload():
            UnlockLayout(out).draw(payload, receipt_hash, signature, name)


def _clear_subset_caches() -> None:
    for method in (SubsetMap.pick, SubsetMap.get_glyph):
        clear: Callable[[], None] | None = getattr(method, "cache_clear", None)
        if clear is not None:
            clear()


_COVERAGE: dict[str, frozenset[str]] = {}


def _coverage(font: TTFFont) -> frozenset[str]:
    """The characters a bundled face draws (its cmap), per face: the same in every document."""
    found = _COVERAGE.get(font.fontkey)
    if found is None:
        found = _COVERAGE[font.fontkey] = frozenset(map(chr, font.cmap))
    return found


@cache
def _fallback_coverage() -> frozenset[str]:
    """The fallback face's characters, from its cmap alone: text whose unusual characters are
    in no bundled face (Devanagari, say) never loads the rest of the face."""
    face: Any = ttLib.TTFont(font_file(FALLBACK_FACE[2]), lazy=True)
    try:
        return frozenset(map(chr, face.getBestCmap()))
    finally:
        face.close()


class _Writer:
    """The few drawing primitives the layout needs, so only this module touches fpdf."""

    def __init__(self, pdf: ReceiptPDF) -> None:
        self.pdf = pdf
        # Per face: code point -> the character fpdf2's subset maps it to ("" when the face
        # lacks it), as a ``str.translate`` table; ``seen`` holds the same keys as text.
        # A face's first selection maps BASE_ALPHABET before any text: codes go in order
        # of first use, so hashes and ids no longer reorder them from receipt to receipt,
        # and the code table (the key of the cached CIDToGIDMap) repeats.
        self._codes: dict[str, tuple[dict[int, str], set[str]]] = {}

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
        pdf = self.pdf
        # The layout sets font and colour before nearly every cell; most calls change
        # nothing, and fpdf2's setters normalise their arguments each time regardless.
        if not (pdf.font_family == family and pdf.font_style == style and pdf.font_size_pt == size):
            font = pdf.fonts.get(family + style)
            if style in ("", "B") and isinstance(font, TTFFont):
                # fpdf2 2.8.9's ``set_font`` for a loaded face, bold or regular, once its
                # argument normalisation is done (the layout passes normalised names).
                pdf.font_family, pdf.font_style, pdf.font_size_pt = family, style, size
                pdf.underline = pdf.strikethrough = False
                pdf.current_font, pdf.current_font_is_set_on_page = font, False
            else:
                pdf.set_font(family, style, size)
        if family + style not in self._codes and isinstance(pdf.current_font, TTFFont):
            self._subset_codes(pdf.current_font, BASE_ALPHABET)
        pdf.text_color = _text_color(rgb)  # what set_text_color(*rgb) stores

    def lines(self, width: float, text: str) -> Sequence[str]:
        """Greedy word wrap of ``text`` in the current font; over-long words break between characters.

        fpdf2's ``multi_cell`` re-measures the growing line for every character (quadratic);
        this measures each word once and was the difference between ~10 and ~50 PDFs/s.
        """
        font = self.pdf.current_font
        assert isinstance(font, TTFFont), "receipts use the bundled TrueType fonts only"
        cw: dict[int, float] = font.cw
        scale = self.pdf.font_size_pt / 1000 / self.pdf.k
        runs = self._runs(text)
        if runs is not None:  # some of it in the fallback face: each character's width from its face
            cw = {ord(" "): cw[ord(" ")]} | {ord(c): face.cw[ord(c)] for face, run in runs for c in run}

        def measure(text: str) -> float:
            # The same sum fpdf2's get_string_width does for a TTF font without shaping.
            return sum(map(cw.__getitem__, map(ord, text))) * scale

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
                    # Prefer to break just after a separator (dataset_schema_validation,
                    # DGX-H100_H100-SXM-80GBx1_TRT.json) than between two letters of a word.
                    soft = max(line.rfind(c, 0, cut) for c in _SOFT_BREAKS) + 1
                    if 0 < soft < cut and cut < len(line):
                        cut = soft
                    out.append(line[:cut])
                    line = line[cut:]
                    line_width = measure(line)
            out.append(line)
        return out

    def text_width(self, text: str) -> float:
        runs = self._runs(text)
        if runs is None:
            return float(self.pdf.get_string_width(text))
        return sum(self._run_width(font, run) for font, run in runs)

    def _run_width(self, font: TTFFont, text: str) -> float:
        return sum(map(font.cw.__getitem__, map(ord, text))) * self.pdf.font_size_pt / 1000 / self.pdf.k

    def _runs(self, text: str) -> list[tuple[TTFFont, str]] | None:
        """``text`` cut into runs, each with the face that draws it: None (nearly always) when
        the current face draws all of it, or the fallback face none of what it lacks. A
        character neither face has stays with the current face, which drops it as fpdf2 does."""
        font = self.pdf.current_font
        if text.isascii() or not isinstance(font, TTFFont):
            return None
        own = _coverage(font)
        if own.issuperset(text):
            return None
        other = _fallback_coverage()
        if not any(c not in own and c in other for c in text):
            return None
        fallback = self.pdf.fallback_font()
        return [
            (fallback if in_fallback else font, "".join(run))
            for in_fallback, run in itertools.groupby(text, key=lambda c: c not in own and c in other)
        ]

    def cell(self, width: float, height: float, text: str, *, align: str = "L", fill: bool = False) -> None:
        """One line of text in a ``width`` × ``height`` box at the cursor, which then moves right.

        Placed exactly where fpdf2's ``cell`` puts it (cell margin, vertically centred
        baseline), but through ``text``: ``cell`` runs fpdf2's line layout machinery for
        every call and was a third of the render time. No clipping, as with ``cell``.
        """
        pdf = self.pdf
        if fill or align not in ("L", "R"):
            self._runs(text)  # adds the fallback face if the text needs it: fpdf2's cell then uses it
            pdf.cell(width, height, text, align=align, fill=fill)
            return
        x, y = float(pdf.x), float(pdf.y)
        tx = x + pdf.c_margin if align == "L" else x + width - pdf.c_margin - self.text_width(text)
        self._text(tx, y, height, text)
        pdf.set_x(x + width)

    def block(self, x: float, y: float, width: float, line_height: float, lines: Sequence[str]) -> None:
        """Pre-wrapped lines (from ``lines``) at (x, y); does not break pages (rows are measured first)."""
        tx = x + float(self.pdf.c_margin)
        for i, line in enumerate(lines):
            self._text(tx, y + i * line_height, line_height, line)
        self.pdf.set_xy(x + width, y + max(len(lines) - 1, 0) * line_height)

    def _text(self, x: float, top: float, height: float, text: str) -> None:
        # fpdf2's cell baseline: box middle + 0.3 font size (fpdf.py, _render_styled_text_line).
        if not text:
            return
        pdf = self.pdf
        y = top + 0.5 * height + 0.3 * float(pdf.font_size)
        runs = self._runs(text)
        if runs is None:
            self._draw(x, y, text)
            return
        own = pdf.current_font
        for font, run in runs:  # each run in its face, one after the other on the baseline
            if pdf.current_font is not font:
                pdf.current_font, pdf.current_font_is_set_on_page = font, False
            self._draw(x, y, run)
            x += self._run_width(font, run)
        if pdf.current_font is not own:
            pdf.current_font, pdf.current_font_is_set_on_page = own, False

    def _draw(self, x: float, y: float, text: str) -> None:
        """``text`` in the current face with its baseline at ``y``."""
        pdf = self.pdf
        font = pdf.current_font
        plain = (
            isinstance(font, TTFFont)
            and not (font.is_symbol or font.color_font)
            and pdf.text_mode == TextMode.FILL
            and not (pdf.underline or pdf.strikethrough or pdf._record_text_quad_points)
            and pdf.page
        )
        if not plain:
            pdf.text(x, y, text)
            return
        assert isinstance(font, TTFFont)
        # fpdf2 2.8.9's ``text`` for exactly this case, the same operators byte for byte:
        # it was half the render time, mostly argument checks and a string built by +=.
        if not pdf.current_font_is_set_on_page:
            pdf._out(pdf._set_font_for_page(font, pdf.font_size_pt))
        mapped = self._subset_codes(font, text)
        ops = f"BT {x * pdf.k:.2f} {(pdf.h - y) * pdf.k:.2f} Td ({font.escape_text(mapped)}) Tj ET"
        if pdf.fill_color != pdf.text_color:
            assert pdf.text_color is not None
            ops = f"q {pdf.text_color.serialize().lower()} {ops} Q"
        pdf._out(ops)

    def _subset_codes(self, font: TTFFont, text: str) -> str:
        """``text`` in the subset's codes, picking unseen characters in reading order as
        fpdf2's ``encode_text`` does (the order decides each glyph's code)."""
        table, seen = self._codes.setdefault(font.fontkey, ({}, set()))
        if not seen.issuperset(text):
            for char in text:
                if char not in seen:
                    code = font.subset.pick(ord(char))
                    table[ord(char)] = "" if code is None else chr(code)
                    seen.add(char)
        return text.translate(table)

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
