"""A TrueType font parsed once per process, cut down per document before fpdf2 subsets it.

fpdf2 parses the whole font file in ``add_font`` and, when writing the PDF, runs the
fontTools subsetter over the *whole* parsed font — and that subsetter mutates the font
in place, so a parsed font can serve one document only. With three DejaVu faces that is
~100 ms per receipt. Here the font is parsed once, each glyph decompiled on first use;
for each document we build a small ``TTFont`` holding only the glyphs the document used
(plus what the subsetter would keep anyway), sharing the decompiled outlines read-only. fpdf2's
own subsetter then runs over that small font and writes the same bytes it would have
written from the full file (``tests/render`` checks this byte for byte).

Plan of ``FontSource.cut``:
1. glyph set = requested glyphs + the first four glyphs (the subsetter's
   ``recommended_glyphs``) + composite components, in the font's glyph order;
2. fresh, shallow copies of the tables the subsetter rewrites (glyf, hmtx, cmap),
   restricted to that glyph set; shallow copies of the small tables;
3. tables the subsetter drops anyway (layout, kern, FFTM, MATH) are left out.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fontTools import ttLib  # type: ignore[import-untyped]  # fontTools ships no type information

# Dropped by fpdf2's subsetter options (fpdf/output.py, _add_fonts) or by fontTools'
# defaults ('kern' goes when GPOS is present), so never worth copying.
_DROPPED = frozenset({"GlyphOrder", "FFTM", "GDEF", "GPOS", "GSUB", "MATH", "kern"})
_REWRITTEN = frozenset({"glyf", "hmtx", "cmap", "loca"})


_Glyph: Any = ttLib.getTableModule("glyf").Glyph


class _SimpleGlyph(_Glyph):  # type: ignore[misc]  # fontTools is untyped
    """A simple (non-composite) outline: its compiled bytes depend on nothing but itself.

    Compiling the same expanded outline for every document was a third of the render
    time; the first compile is kept and returned from then on.
    """

    def compile(self, glyfTable: Any, recalcBBoxes: bool = True, **kwargs: Any) -> bytes:
        cached: bytes | None = self.__dict__.get("_compiled")
        if cached is None:
            cached = super().compile(glyfTable, recalcBBoxes, **kwargs)
            self.__dict__["_compiled"] = cached
        return cached


class FontSource:
    """One font file, decompiled once; ``cut`` is safe to call for any number of documents."""

    def __init__(self, path: Path, *, expand_all: bool = True) -> None:
        """``expand_all=False`` decompiles each glyph on the first cut that keeps it: for the
        CJK fallback face, expanding all ~49,000 glyphs up front took 1.2 s and 75 MB. The
        regular faces expand everything at once, so no document pays for it later."""
        self.path = path
        data = path.read_bytes()
        font: Any = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False)
        if "glyf" not in font:
            raise ValueError(f"{path.name}: only TrueType-outline fonts are supported")
        self._font = font
        self._order: list[str] = list(font.getGlyphOrder())
        self._gid: dict[str, int] = {name: gid for gid, name in enumerate(self._order)}
        self._components: dict[str, tuple[str, ...]] = {}  # of each glyph expanded so far
        # Per cmap subtable, glyph name -> code points, to rebuild small subtables fast.
        self._cmap_by_glyph: list[dict[str, list[int]]] = []
        for subtable in font["cmap"].tables:
            by_glyph: dict[str, list[int]] = {}
            for code, name in getattr(subtable, "cmap", {}).items():
                by_glyph.setdefault(name, []).append(code)
            self._cmap_by_glyph.append(by_glyph)
        self._small_tables = [
            tag for tag in list(font.keys()) if tag not in _DROPPED and tag not in _REWRITTEN and tag != "glyf"
        ]
        if expand_all:
            for name in self._order:
                self._expanded(name)

    def _expanded(self, name: str) -> tuple[str, ...]:
        """Expand glyph ``name`` (once) and return its components' names.

        Expanded glyphs carry no raw bytes, so the subsetter's in-place component remapping
        (glyf.subset_glyphs -> remapComponentsFast) never touches them, and compiling them
        is a pure function of their fields.
        """
        components = self._components.get(name)
        if components is None:
            glyf = self._font["glyf"]
            glyph = glyf.glyphs[name]
            glyph.expand(glyf)
            if glyph.numberOfContours > 0:
                glyph.__class__ = _SimpleGlyph
            components = tuple(c.glyphName for c in glyph.components) if glyph.isComposite() else ()
            self._components[name] = components
        return components

    def cut(self, glyph_names: Iterable[str]) -> Any:
        """A fresh ``TTFont`` with just these glyphs, ready for fpdf2's subsetter."""
        src = self._font
        # 1. glyph closure, in the font's order
        keep: set[str] = set()
        stack = [*self._order[:4], *(name for name in glyph_names if name in self._gid)]
        while stack:
            name = stack.pop()
            if name not in keep:
                keep.add(name)
                stack.extend(self._expanded(name))
        order = sorted(keep, key=self._gid.__getitem__)

        # 2. rewritten tables: shallow copies over shared, read-only glyph data
        out: Any = ttLib.TTFont(recalcTimestamp=False)
        out.sfntVersion = src.sfntVersion
        out.setGlyphOrder(order)
        glyf = copy.copy(src["glyf"])
        glyf.glyphs = {name: src["glyf"].glyphs[name] for name in order}
        glyf.glyphOrder = list(order)
        out["glyf"] = glyf
        out["loca"] = copy.copy(src["loca"])
        hmtx = copy.copy(src["hmtx"])
        hmtx.metrics = {name: src["hmtx"].metrics[name] for name in order}
        out["hmtx"] = hmtx
        cmap = copy.copy(src["cmap"])
        subtables = []
        for subtable, by_glyph in zip(src["cmap"].tables, self._cmap_by_glyph, strict=True):
            small = copy.copy(subtable)
            if hasattr(subtable, "cmap"):
                small.cmap = {code: name for name in order for code in by_glyph.get(name, ())}
            subtables.append(small)
        cmap.tables = subtables
        out["cmap"] = cmap
        # The subsetter only rebinds attributes of these tables (never mutates their
        # contents in place), so a shallow copy keeps the template intact; the
        # reused-vs-fresh byte-identity test in tests/render guards this.
        for tag in self._small_tables:
            out[tag] = copy.copy(src[tag])
        return out
