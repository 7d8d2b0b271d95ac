"""Promises of the receipt PDF: deterministic bytes, the canonical JSON inside, readable Unicode, any size."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fpdf.fonts import TTFFont
from pypdf import PdfReader

from defendable_render.pdf import _PROGRAMS, attachment_name, render_receipt_pdf
from defendable_render.perf import SAMPLE_SIGNATURE, bench_render, sample_receipt

APPROVER = "Zoë Ångström-Łukasiewicz"
PROJECT = "Ünïcödé проект αξιολόγηση"  # Latin, Cyrillic, Greek: all covered by DejaVu Sans


def pdf_text(pdf: bytes) -> str:
    """The text a reader's copy-paste gets, through the ToUnicode maps (pypdf, not our code)."""
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _streams(pdf: bytes) -> list[tuple[bytes, bytes]]:
    """(dictionary, decoded data) of every stream, inflating FlateDecode ones."""
    out = []
    for match in re.finditer(rb"\d+ 0 obj\s*(<<.*?)stream\r?\n", pdf, re.S):
        start = match.end()
        length = re.search(rb"/Length (\d+)", match.group(1))
        assert length is not None
        data = pdf[start : start + int(length.group(1))]
        if b"/FlateDecode" in match.group(1):
            data = zlib.decompress(data)
        out.append((match.group(1), data))
    return out


def _embedded_files(pdf: bytes) -> list[bytes]:
    return [data for head, data in _streams(pdf) if b"/Type /EmbeddedFile" in head]


def test_same_receipt_renders_to_identical_bytes_twice() -> None:
    data, digest = sample_receipt()
    assert render_receipt_pdf(data, digest, SAMPLE_SIGNATURE) == render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)


def test_same_receipt_renders_to_identical_bytes_in_a_fresh_process(tmp_path: Path) -> None:
    data, digest = sample_receipt()
    here = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    script = (
        "import sys\n"
        "from defendable_render.pdf import render_receipt_pdf\n"
        "from defendable_render.perf import SAMPLE_SIGNATURE, sample_receipt\n"
        "data, digest = sample_receipt()\n"
        "sys.stdout.buffer.write(render_receipt_pdf(data, digest, SAMPLE_SIGNATURE))\n"
    )
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, cwd=tmp_path).stdout
    assert there == here


def test_reused_fonts_give_the_same_bytes_as_freshly_parsed_fonts() -> None:
    # Several different receipts in a row: state leaking between documents would show here.
    for seq, evidence, flags in ((1, 0, 0), (2, 7, 4), (3, 1, 9), (1, 0, 0)):
        data, digest = sample_receipt(seq=seq, evidence=evidence, flags=flags, approver=f"Ωmega Яна {seq}")
        reused = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
        fresh = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE, reuse_fonts=False)
        assert reused == fresh, f"seq {seq}"


def test_cached_font_programs_give_the_same_bytes_as_a_cold_cache() -> None:
    data, digest = sample_receipt(seq=5, approver="Ξένια Щукина")
    warm = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    warm_again = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    _PROGRAMS.clear()
    cold = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    assert warm == warm_again == cold


def test_text_no_bundled_face_has_still_renders_like_fpdf2_does() -> None:
    # Devanagari is in neither DejaVu nor the CJK fallback: fpdf2 warns and drops the glyph;
    # the reused-font path must match it.
    data, digest = sample_receipt(approver="नमस्ते Ωmega")
    assert render_receipt_pdf(data, digest) == render_receipt_pdf(data, digest, reuse_fonts=False)
    # ...and the next document, with every glyph present, is back on the cached path.
    data, digest = sample_receipt(seq=7)
    assert render_receipt_pdf(data, digest) == render_receipt_pdf(data, digest, reuse_fonts=False)


def test_different_receipts_render_to_different_bytes() -> None:
    one, two = sample_receipt(seq=1), sample_receipt(seq=2)
    assert render_receipt_pdf(*one) != render_receipt_pdf(*two)


def test_a_signature_changes_the_pdf_but_not_the_attached_payload() -> None:
    data, digest = sample_receipt()
    signed, unsigned = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE), render_receipt_pdf(data, digest)
    assert signed != unsigned
    assert _embedded_files(signed) == _embedded_files(unsigned) == [data]


def test_attached_json_is_exactly_the_payload_bytes_under_the_receipt_name() -> None:
    data, digest = sample_receipt()
    pdf = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    assert _embedded_files(pdf) == [data]
    name = attachment_name(digest)
    assert name == f"receipt-{digest.removeprefix('sha256:')[:16]}.json"
    assert f"({name})".encode() in pdf


def test_pdf_dates_come_from_minted_at_not_the_clock() -> None:
    data, digest = sample_receipt()
    pdf = render_receipt_pdf(data, digest)
    dates = set(re.findall(rb"/(?:CreationDate|ModDate) \(D:(\d{14})", pdf))
    assert dates == {b"20250314092704"}


def test_unicode_font_is_embedded_as_a_subset() -> None:
    data, digest = sample_receipt(approver=APPROVER, project=PROJECT)
    pdf = render_receipt_pdf(data, digest)
    assert pdf.count(b"/FontFile2") == 3
    assert b"/BaseFont /MPDFAA+DejaVuSans" in pdf
    # Subsets, not whole fonts: the three bundled files weigh ~1.8 MB.
    assert len(pdf) < 120_000


def test_unicode_names_survive_into_the_pdf_text() -> None:
    data, digest = sample_receipt(approver=APPROVER, project=PROJECT)
    decoded = pdf_text(render_receipt_pdf(data, digest, SAMPLE_SIGNATURE))
    for expected in (APPROVER, PROJECT, "PROPOLIS", digest, "Page 1 of 2", "ledger-2025-01"):
        assert expected in decoded, expected


CJK_APPROVER = "山田 太郎 (やまだ) · 김민수 · 王小明"  # kanji, kana, Hangul, hanzi: none in DejaVu


def test_cjk_and_hangul_are_drawn_in_the_fallback_face(caplog: pytest.LogCaptureFixture) -> None:
    data, digest = sample_receipt(approver=CJK_APPROVER, project="东京 项目 — Q3 評価 Ünïcödé")
    with caplog.at_level("WARNING"):
        pdf = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    assert "missing the following glyphs" not in caplog.text  # fpdf2's warning when a face lacks one
    assert pdf.count(b"/FontFile2") == 4
    assert b"/BaseFont /MPDFAA+WenQuanYiMicroHei" in pdf
    decoded = pdf_text(pdf)
    for expected in (CJK_APPROVER, "东京 项目 — Q3 評価 Ünïcödé", "PROPOLIS", digest):
        assert expected in decoded, expected
    assert pdf == render_receipt_pdf(data, digest, SAMPLE_SIGNATURE, reuse_fonts=False)


def test_documents_without_cjk_leave_the_fallback_face_out() -> None:
    # Rendered after a CJK document: the face stays loaded, but joins only documents that use it.
    data, digest = sample_receipt(approver=CJK_APPROVER)
    render_receipt_pdf(data, digest)
    data, digest = sample_receipt(approver=APPROVER, project=PROJECT)
    pdf = render_receipt_pdf(data, digest)
    assert pdf.count(b"/FontFile2") == 3
    assert b"WenQuanYi" not in pdf


def test_long_cjk_text_without_spaces_wraps() -> None:
    project = "东京都港区の不動産評価プロジェクト" * 30  # no spaces: breaks between characters
    data, digest = sample_receipt(project=project, approver=CJK_APPROVER)
    pdf = render_receipt_pdf(data, digest)
    assert project in re.sub(r"\s+", "", pdf_text(pdf))
    assert pdf == render_receipt_pdf(data, digest, reuse_fonts=False)


def test_large_receipts_paginate_without_error() -> None:
    data, digest = sample_receipt(evidence=200, flags=100, project="Very long project name " * 40)
    pdf = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    pages = int(re.findall(rb"/Count (\d+)", pdf)[0])
    assert pages >= 10
    assert _embedded_files(pdf) == [data]


def test_long_values_wrap_instead_of_being_cut() -> None:
    word = "unbrokenvalue" * 40  # no spaces at all
    data, digest = sample_receipt(project=word, approver="A" * 300)
    assert word in re.sub(r"\s+", "", pdf_text(render_receipt_pdf(data, digest)))


def test_bench_render_reports_a_positive_rate() -> None:
    assert bench_render(2) > 0


@pytest.mark.parametrize("reuse_fonts", [True, False])
def test_lean_text_path_writes_what_fpdf2_text_writes(reuse_fonts: bool) -> None:
    """The layout's copy of fpdf2's ``text``/``set_font`` emits the operators fpdf2 does,
    for text that repeats, escapes, changes font and colour, and lacks glyphs (given that
    the writer maps the base alphabet when it first selects a face)."""
    from defendable_render.pdf import BASE_ALPHABET, ReceiptPDF, _Writer

    texts = [
        ("sans", "", 9.0, (30, 30, 30), "Receipt (seq 7) \\ backslash"),
        ("sans", "B", 11.0, (200, 40, 40), f"{APPROVER} approved"),
        ("mono", "", 8.0, (30, 30, 30), "sha256:0f3a… ⟨a⟩"),
        ("sans", "", 9.0, (0, 0, 0), f"{PROJECT} Receipt again क"),  # Devanagari: in no bundled face
        ("sans", "", 9.0, (0, 0, 0), ""),
    ]

    def draw(lean: bool) -> bytes:
        pdf = ReceiptPDF("footer", reuse_fonts=reuse_fonts)
        pdf.set_creation_date(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))  # not the clock: bytes must match
        pdf.add_page()
        writer = _Writer(pdf)
        for i, (family, style, size, rgb, text) in enumerate(texts):
            if lean:
                writer.font(family, style, size, rgb)
                writer._text(20, 20 + 10 * i, 6, text)
            else:
                pdf.set_font(family, style, size)
                pdf.set_text_color(*rgb)
                font = pdf.current_font
                assert isinstance(font, TTFFont)
                if (family, style) not in [(f, s) for f, s, *_ in texts[:i]]:
                    for char in BASE_ALPHABET:
                        font.subset.pick(ord(char))
                if text:
                    pdf.text(20, 20 + 10 * i + 3 + 0.3 * pdf.font_size, text)
        return pdf.render()

    assert draw(lean=True) == draw(lean=False)
