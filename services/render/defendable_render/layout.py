"""What a receipt PDF shows, and where — drawn through a small writer port (see ``pdf._Writer``).

`Layout` holds the house style every kind of receipt shares (header, banner, sections,
label/value pairs, tables, the signature); `ReceiptLayout` draws eval and lane receipts,
`cook_layout` and `incident_layout` the other kinds on the chain.

Every table row is measured before it is drawn, so a row never splits across pages and
a long value wraps inside its column instead of overflowing it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

import msgspec

from defendable_canonical.incident import rfc3339_ms
from defendable_canonical.model import Approval, Finding, ReceiptPayload, Signature
from defendable_canonical.redaction import PREFIX, evidence_name_path
from defendable_canonical.trail import TrailSummary

RGB = tuple[int, int, int]

# Verdict colours: (accent, tint) per severity (DESIGN.md §1).
SEVERITY_COLOURS: dict[str, tuple[RGB, RGB]] = {
    "honey": ((176, 124, 0), (255, 246, 214)),
    "jelly": ((196, 96, 20), (253, 235, 216)),
    "propolis": ((164, 32, 32), (251, 226, 224)),
}
SEVERITY_MEANING = {
    "honey": "no flags",
    "jelly": "low or mid flags only",
    "propolis": "at least one high flag",
}
TIER_COLOURS: dict[str, RGB] = {"high": (164, 32, 32), "mid": (196, 96, 20), "low": (90, 90, 90)}
TIER_RANK = {"high": 0, "mid": 1, "low": 2}
INK: RGB = (30, 30, 30)
MUTED: RGB = (105, 105, 105)
LINE = 4.2  # mm per line of 8.5 pt text
LABEL_WIDTH = 38.0
MAX_CELL_LINES = 50  # ~210 mm: a row always fits on one page
MAX_LISTED = 20  # ids listed in one cell (trace ids, run ids); the rest are counted, and in the JSON


class ChainFields(Protocol):
    """What every receipt payload carries about its place on the chain."""

    @property
    def parent_hash(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def org_id(self) -> str: ...
    @property
    def minted_at(self) -> str: ...


class Writer(Protocol):
    @property
    def width(self) -> float: ...
    @property
    def left(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def bottom(self) -> float: ...
    def add_page(self) -> None: ...
    def set_y(self, y: float) -> None: ...
    def set_xy(self, x: float, y: float) -> None: ...
    def font(self, family: str, style: str, size: float, rgb: RGB = INK) -> None: ...
    def lines(self, width: float, text: str) -> Sequence[str]: ...
    def text_width(self, text: str) -> float: ...
    def cell(self, width: float, height: float, text: str, *, align: str = "L", fill: bool = False) -> None: ...
    def block(self, x: float, y: float, width: float, line_height: float, lines: Sequence[str]) -> None: ...
    def rect(
        self, x: float, y: float, w: float, h: float, fill: RGB | None = None, border: RGB | None = None
    ) -> None: ...
    def hline(self, y: float, rgb: RGB = (215, 215, 215)) -> None: ...
    def auto_break(self, on: bool) -> None: ...


# A table cell: (text, font family, style, size, colour).
Cell = tuple[str, str, str, float, RGB]


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def listed(items: Sequence[str], most: int = MAX_LISTED) -> str:
    """One item a line, at most `most` of them, then how many more the attached JSON holds."""
    shown = "\n".join(items[:most])
    return shown if len(items) <= most else f"{shown}\n+ {len(items) - most} more in the attached JSON"


def thousands(value: int) -> str:
    return f"{value:,}"


class Layout:
    """The house style: what every receipt PDF draws the same way, whatever its kind."""

    def __init__(self, out: Writer) -> None:
        self.out = out

    def _start(self) -> None:
        self.out.auto_break(False)  # rows are measured and broken by hand
        self.out.add_page()

    def _header(self, title: str, schema: str) -> None:
        out = self.out
        out.font("sans", "B", 18)
        out.cell(out.width * 0.55, 9, title)
        out.font("mono", "", 7.5, MUTED)
        out.cell(out.width * 0.45, 9, schema, align="R")
        out.set_y(out.y + 10)
        out.hline(out.y, (60, 60, 60))
        out.set_y(out.y + 3)

    def _banner_box(
        self, colours: tuple[RGB, RGB], headline: str, meaning: str, facts: Sequence[tuple[str, str]]
    ) -> None:
        """A tinted box: the headline and what it means on the left, four facts in two columns."""
        out = self.out
        accent, tint = colours
        top, height = out.y, 24.0
        out.rect(out.left, top, out.width, height, fill=tint, border=accent)
        out.rect(out.left, top, 3, height, fill=accent)
        out.set_xy(out.left + 7, top + 3)
        out.font("sans", "B", 20, accent)
        out.cell(60, 10, headline)
        out.set_xy(out.left + 7, top + 14)
        out.font("sans", "", 8, MUTED)
        out.cell(60, 5, meaning)
        x, col = out.left + 70, (out.width - 72) / 2
        for i, (label, value) in enumerate(facts):
            cx, cy = x + (i % 2) * col, top + 3 + (i // 2) * 10
            out.set_xy(cx, cy)
            out.font("sans", "", 7, MUTED)
            out.cell(col, 3.5, label.upper())
            out.set_xy(cx, cy + 3.8)
            size = 10.5  # smaller, down to 7 pt, for a value that would run into the next column
            out.font("sans", "B", size, INK)
            while size > 7 and out.text_width(value) > col - 3:
                size -= 0.5
                out.font("sans", "B", size, INK)
            out.cell(col, 5, value)
        out.set_y(top + height + 2)

    def _approval(self, title: str, approval: Approval, who: str = "Approver", redacted: Collection[str] = ()) -> None:
        self._section(title, keep=3 * (LINE + 1.4))  # the three rows stay with their heading
        self._pairs(
            [
                (who, shown(approval.approver, "approval.approver" in redacted), False),
                ("Decided at", approval.decided_at, False),
                ("Note", shown(approval.note, "approval.note" in redacted) or "—", False),
            ]
        )

    def _signature(self, signature: Signature | None) -> None:
        if signature is None:
            return
        self._section("Signature", keep=6 * (LINE + 1.4))  # kept whole: five rows, the signature on two lines
        self._pairs(
            [
                ("Algorithm", signature.alg, False),
                ("Key id", signature.kid, True),
                ("Public key", signature.public_key, True),
                ("Signature", signature.sig, True),
                ("Signed bytes", "the 32 raw bytes of the receipt hash", False),
            ]
        )

    def _room(self, needed: float) -> bool:
        """Start a new page when ``needed`` mm do not fit; True when it did."""
        if self.out.y + needed > self.out.bottom:
            self.out.add_page()
            return True
        return False

    def _section(self, title: str, note: str = "", *, keep: float = 0.0) -> None:
        """A section heading, on a new page unless it and ``keep`` mm of what follows fit."""
        out = self.out
        self._room(16 + keep)
        out.set_y(out.y + 3)
        out.font("sans", "B", 10.5, INK)
        out.cell(out.text_width(title) + 2, 6, title)
        if note:
            out.font("sans", "", 8, MUTED)
            out.cell(out.width - out.text_width(title) - 2, 6, note)
        out.set_y(out.y + 6.5)
        out.hline(out.y)
        out.set_y(out.y + 1.2)

    # label / value pairs; hashes and ids in mono
    def _chain(
        self,
        receipt_hash: str,
        p: ChainFields,
        attachment: str,
        own: Sequence[tuple[str, str, bool]],
    ) -> None:
        """The "Receipt" section every kind opens with: the chain fields around the kind's `own` rows."""
        self._section("Receipt")
        self._pairs(
            [
                ("Receipt hash", receipt_hash, True),
                ("Parent hash", p.parent_hash, True),
                ("Sequence", str(p.seq), False),
                ("Organisation", p.org_id, False),
                *own,
                ("Minted at", p.minted_at, False),
                ("Canonical JSON", f"attached as {attachment}", False),
            ]
        )

    def _pairs(self, rows: Sequence[tuple[str, str, bool]]) -> None:
        value_width = self.out.width - LABEL_WIDTH
        for label, value, mono in rows:
            family, size = ("mono", 8.0) if mono and value.isascii() else ("sans", 8.5)
            self._row(
                [(label, "sans", "", 8.0, MUTED), (value, family, "", size, INK)],
                [LABEL_WIDTH, value_width],
            )

    def _row(
        self,
        cells: Sequence[Cell],
        widths: Sequence[float],
        *,
        shade: RGB | None = None,
        after_break: Callable[[], None] | None = None,
    ) -> None:
        """One row, every cell wrapped in its column; never split across pages."""
        out = self.out
        pad = 1.2
        heights = []
        fitted: list[tuple[Sequence[str], str, str, float, RGB]] = []
        for (text, family, style, size, rgb), width in zip(cells, widths, strict=True):
            out.font(family, style, size)
            lines = out.lines(width - 2 * pad, text)
            if len(lines) > MAX_CELL_LINES:
                # A cell taller than a page cannot be kept whole; the full value is in the JSON.
                more = len(lines) - MAX_CELL_LINES + 1
                text = "\n".join([*lines[: MAX_CELL_LINES - 1], f"… {more} more lines in the attached JSON"])
                lines = out.lines(width - 2 * pad, text)
            fitted.append((lines, family, style, size, rgb))
            heights.append(len(lines) * LINE)
        height = max(heights) + 1.4
        if self._room(height) and after_break is not None:
            after_break()
        top = out.y
        if shade is not None:
            out.rect(out.left, top, out.width, height, fill=shade)
        x = out.left
        for (lines, family, style, size, rgb), width in zip(fitted, widths, strict=True):
            out.font(family, style, size, rgb)
            out.block(x + pad, top + 0.7, width - 2 * pad, LINE, lines)
            x += width
        out.set_y(top + height)

    def _table(self, header: Sequence[str], widths: Sequence[float], rows: Sequence[Sequence[Cell]]) -> None:
        def draw_header() -> None:
            self._row([(h.upper(), "sans", "B", 7.0, MUTED) for h in header], widths, shade=(242, 242, 242))

        self._room(LINE * 4)
        draw_header()
        for i, row in enumerate(rows):
            # A row that moves to a new page gets the column header above it again.
            self._row(row, widths, shade=(250, 250, 250) if i % 2 else None, after_break=draw_header)


class ReceiptLayout(Layout):
    """Eval and lane receipts (`ReceiptPayload`)."""

    # -- plan: 1 header, 2 verdict banner, 3 chain facts, 4 inputs, 5 approval,
    #    6 flags, 7 findings, 8 execution trail (when the run has one), 9 evidence,
    #    10 signature. The footer is the writer's.
    def draw(self, p: ReceiptPayload, receipt_hash: str, signature: Signature | None, attachment: str) -> None:
        self._start()
        self._header("Defendable receipt", p.schema)
        self._banner(p)
        own = [("Project", p.project, False), ("Lane", p.lane.replace("_", " "), False), ("Run id", p.run_id, True)]
        self._chain(receipt_hash, p, attachment, own)
        self._section("Inputs")
        agent = p.agent_profile
        agent_text = f"{agent.model} · {agent.harness}" + (f" · {agent.runtime}" if agent.runtime else "")
        self._pairs(
            [
                ("Flight sheet", p.flight_sheet.key, False),
                ("Flight sheet hash", p.flight_sheet.sha256, True),
                ("Agent profile", agent_text, False),
                ("Agent tools", ", ".join(agent.tools) if agent.tools else "none declared", False),
                ("Assignment hash", p.assignment_sha256, True),
                ("Submission hash", p.submission_sha256, True),
            ]
        )
        self._approval("Approval", p.approval, redacted=redacted_of(p))
        self._flags(p)
        self._findings(p.findings)
        if p.execution_trail is not msgspec.UNSET:
            self._trail(p.execution_trail)
        self._evidence(p)
        self._signature(signature)

    # 2
    def _banner(self, p: ReceiptPayload) -> None:
        v = p.verdict
        facts = [
            ("Score", f"{v.score} %"),
            ("Recommended action", v.recommended_action),
            ("Client ready", yes_no(v.client_ready)),
            ("Risk high / mid / low", f"{v.risk.high} / {v.risk.mid} / {v.risk.low}"),
        ]
        colours = SEVERITY_COLOURS.get(v.severity, ((60, 60, 60), (240, 240, 240)))
        self._banner_box(colours, v.severity.upper(), SEVERITY_MEANING.get(v.severity, ""), facts)

    # 6
    def _flags(self, p: ReceiptPayload) -> None:
        flags = sorted(p.verdict.flags, key=lambda f: TIER_RANK.get(f.tier, 3))  # stable: keeps the verdict's order
        self._section("Flags", f"{len(flags)} ranked high → low")
        if not flags:
            self._pairs([("", "No flags were raised.", False)])
            return
        w = self.out.width
        self._table(
            ["Tier", "Rule", "Message"],
            [16, 46, w - 62],
            [
                [
                    (f.tier.upper(), "sans", "B", 8.0, TIER_COLOURS.get(f.tier, INK)),
                    (f.rule_id, "mono", "", 7.5, INK),
                    (f.message, "sans", "", 8.5, INK),
                ]
                for f in flags
            ],
        )

    # 7
    def _findings(self, findings: Sequence[Finding]) -> None:
        counts = {s: sum(1 for f in findings if f.status == s) for s in ("pass", "flag", "open")}
        summary = f"{len(findings)} rules checked: {counts['pass']} pass, {counts['flag']} flag, {counts['open']} open"
        self._section("Findings", summary)
        if not findings:
            return
        w = self.out.width
        rows = []
        for f in findings:
            detail = f.message
            if f.observed is not None or f.expected is not None:
                detail += f"{' · ' if detail else ''}observed {f.observed or '—'}, expected {f.expected or '—'}"
            status = f.status + (f" ({f.tier})" if f.tier and f.status != "pass" else "")
            colour = TIER_COLOURS.get(f.tier or "", INK) if f.status != "pass" else (40, 120, 60)
            rows.append(
                [
                    (status, "sans", "B", 7.5, colour),
                    (f.rule_id, "mono", "", 7.5, INK),
                    (f.kind, "sans", "", 8.0, MUTED),
                    (detail or "—", "sans", "", 8.0, INK),
                ]
            )
        self._table(["Status", "Rule", "Kind", "Detail"], [22, 46, 24, w - 92], rows)

    # 8
    def _trail(self, t: TrailSummary) -> None:
        self._section(
            "Execution trail",
            f"{t.steps} step{'' if t.steps == 1 else 's'}, each hashed; the bundle hash covers them all",
            keep=8 * (LINE + 1.4),  # the eight rows stay together
        )
        k = t.kinds
        kinds = f"agent {k.agent} · tool {k.tool} · llm {k.llm} · retrieval {k.retrieval} · other {k.other}"
        span = "—"
        if t.start_ns is not None and t.end_ns is not None:
            start, end = int(t.start_ns), int(t.end_ns)
            span = f"{rfc3339_ms(start)} → {rfc3339_ms(end)} ({(end - start) // 1_000_000 / 1000:.3f} s)"
        self._pairs(
            [
                ("Bundle hash", t.bundle_sha256, True),
                ("Steps", f"{t.steps}: {kinds}", False),
                ("Traces", listed(t.trace_ids) or "—", True),
                ("Time span", span, False),
                ("Tokens", f"{thousands(t.input_tokens)} in · {thousands(t.output_tokens)} out", False),
                ("Cost", t.cost if t.cost is not None else "not reported", False),
                ("Errors", f"{t.errors} step{'' if t.errors == 1 else 's'} ended in error", False),
                ("Problems", ", ".join(t.problems) if t.problems else "none found in the trace", False),
            ]
        )

    # 9
    def _evidence(self, p: ReceiptPayload) -> None:
        self._section("Evidence", f"{len(p.evidence)} item{'' if len(p.evidence) == 1 else 's'}, content-addressed")
        if not p.evidence:
            return
        w, redacted = self.out.width, redacted_of(p)
        rows = [
            [
                (f"{shown(e.name, evidence_name_path(i) in redacted)}\n{e.id}", "sans", "", 8.0, INK),
                (f"{e.media_type}\n{human_size(e.size)}", "sans", "", 7.5, MUTED),
                (e.sha256, "mono", "", 6.5, INK),
            ]
            for i, e in enumerate(p.evidence)
        ]
        self._table(["Name / id", "Type / size", "SHA-256"], [50, 26, w - 76], rows)


def redacted_of(p: ReceiptPayload) -> frozenset[str]:
    return frozenset(p.redacted) if isinstance(p.redacted, list) else frozenset()


def shown(value: str, redacted: bool) -> str:
    """A redacted field prints as such, with the head of its commitment (docs/redaction.md)."""
    return f"Redacted {value[len(PREFIX) : len(PREFIX) + 8]}…" if redacted else value
