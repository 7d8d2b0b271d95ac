"""The cook receipt's PDF (`defendablecloud.cook-receipt/v1`): base → cooked model, and the lift.

The per-item part is bounded whatever the eval set's size (up to 10,000 items a side): every
item when there are at most `MAX_ITEM_ROWS`, else a summary (how many items the cooked model
scored higher, the same, lower on) and two short tables — the `LOWEST_ROWS` items with the
lowest cooked − base difference, and the first `FIRST_ROWS` in eval-set order — with a line
saying that the full per-item list is in the attached receipt JSON, the hashed record. A
10,000-item cook is three pages. Differences per item are shown for reading only: the
receipt's own figures (means, bounds) are printed as recorded, never recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from defendable_canonical.cook import CookItemScore, CookReceiptPayload
from defendable_canonical.model import Signature

from .layout import INK, MUTED, Cell, Layout, thousands

MAX_ITEM_ROWS = 60  # up to this many items, every one is drawn (about two pages)
LOWEST_ROWS = 20  # beyond it: the items the cooked model lost most on …
FIRST_ROWS = 20  # … and the first in eval-set order
LIFT_COLOURS = ((36, 118, 66), (225, 243, 230))
UP: tuple[int, int, int] = (36, 118, 66)
DOWN: tuple[int, int, int] = (164, 32, 32)


def signed(value: str) -> str:
    """A decimal string with its sign: "+3.9967", "-0.5000", "0"."""
    return value if value.startswith(("-", "+")) or _decimal(value) in (None, 0) else f"+{value}"


def _decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _difference(pre: CookItemScore, post: CookItemScore) -> Decimal | None:
    before, after = _decimal(pre.score), _decimal(post.score)
    return None if before is None or after is None else after - before


def _share(count: int, total: int) -> str:
    return f"{Decimal(100 * count) / total:.1f} %" if total else "—"


FULL_LIST = (
    "Every item's scores, {n} a side, are in the receipt JSON attached to this PDF (the hashed record);"
    " the rows below are a reading aid."
)


def floor_note(lower: str, noise_floor: str) -> str:
    """Whether the lower bound clears the noise floor, as the receipt's own numbers say."""
    low, floor = _decimal(lower), _decimal(noise_floor)
    if low is None or floor is None:
        return f"lower bound {lower}, noise floor {noise_floor}"
    return f"lower bound {signed(lower)} {'clears' if low > floor else 'does not clear'} the noise floor {noise_floor}"


def percent(confidence: str) -> str:
    """ "0.95" → "95 %"; anything else as recorded."""
    value = _decimal(confidence)
    return confidence if value is None or not 0 < value < 1 else f"{(value * 100).normalize():f} %"


class CookLayout(Layout):
    # -- plan: 1 header, 2 lift banner, 3 chain facts, 4 the cook (models, data, eval set),
    #    5 the lift, 6 approval, 7 per-item scores, 8 signature. The footer is the writer's.
    def draw(self, p: CookReceiptPayload, receipt_hash: str, signature: Signature | None, attachment: str) -> None:
        lift = p.lift
        self._start()
        self._header("Defendable cook receipt", p.schema)
        self._banner_box(
            LIFT_COLOURS,
            f"LIFT {signed(lift.mean_difference)}",
            "score points, cooked − base, per item",
            [
                ("Base mean score", p.pre.mean_score),
                ("Cooked mean score", p.post.mean_score),
                (f"{percent(lift.confidence)} interval", f"[{signed(lift.lower)}, {signed(lift.upper)}]"),
                ("Eval items", thousands(p.eval_set.items)),
            ],
        )
        self._chain(receipt_hash, p, attachment, [("Project", p.project, False), ("Cook id", p.run_id, True)])
        self._section("Cook", "the same Flight Sheet and eval set, before and after")
        self._pairs(
            [
                ("Base model", p.base_model, False),
                ("Cooked model", p.cooked_model, False),
                ("Dataset", f"{p.dataset.name}@{p.dataset.version}", False),
                ("Dataset hash", p.dataset.sha256, True),
                ("Flight sheet", p.flight_sheet.key, False),
                ("Flight sheet hash", p.flight_sheet.sha256, True),
                ("Eval set", f"{p.eval_set.name} · {thousands(p.eval_set.items)} items, frozen order", False),
                ("Eval set hash", p.eval_set.sha256, True),
            ]
        )
        self._section("Lift", "cooked − base, paired by item")
        self._pairs(
            [
                ("Mean difference", f"{signed(lift.mean_difference)} points", False),
                ("Interval", f"{signed(lift.lower)} to {signed(lift.upper)} ({percent(lift.confidence)})", False),
                ("Noise floor", f"{lift.noise_floor}: the {floor_note(lift.lower, lift.noise_floor)}", False),
                ("Resamples", thousands(lift.resamples), False),
                ("Method", lift.method, True),
                ("Seed", lift.seed, True),
                ("Means", f"base {p.pre.mean_score} → cooked {p.post.mean_score}", False),
            ]
        )
        self._approval("Approval", p.approval)
        self._items(p)
        self._signature(signature)

    # 7
    def _items(self, p: CookReceiptPayload) -> None:
        pairs = list(zip(p.pre.items, p.post.items, strict=False))
        n = len(pairs)
        if n <= MAX_ITEM_ROWS:
            self._section("Per-item scores", f"{thousands(n)} items, base → cooked")
            self._item_table(pairs)
        else:
            deltas = [_difference(pre, post) for pre, post in pairs]
            better = sum(1 for d in deltas if d is not None and d > 0)
            worse = sum(1 for d in deltas if d is not None and d < 0)
            same = sum(1 for d in deltas if d == 0)
            self._section(
                "Per-item scores",
                f"{thousands(n)} items, base → cooked; a summary and {LOWEST_ROWS + FIRST_ROWS} of them",
            )
            self._pairs(
                [
                    ("Cooked higher", f"on {thousands(better)} items ({_share(better, n)})", False),
                    ("Unchanged", f"on {thousands(same)} items ({_share(same, n)})", False),
                    ("Cooked lower", f"on {thousands(worse)} items ({_share(worse, n)})", False),
                    ("All items", FULL_LIST.format(n=thousands(n)), False),
                ]
            )
            # Lowest difference first; ties (and unreadable scores, last) in eval-set order.
            ranked = sorted(range(n), key=lambda i: (deltas[i] is None, deltas[i] or 0, i))[:LOWEST_ROWS]
            self._section(
                "Lowest differences", f"the {LOWEST_ROWS} items with the lowest cooked − base difference", keep=20
            )
            self._item_table([pairs[i] for i in ranked])
            self._section("First items", f"the first {FIRST_ROWS} in eval-set order", keep=20)
            self._item_table(pairs[:FIRST_ROWS])
        if len(p.pre.items) != len(p.post.items):
            self._pairs(
                [("", f"The base side lists {len(p.pre.items)} items, the cooked side {len(p.post.items)}.", False)]
            )

    def _item_table(self, pairs: Sequence[tuple[CookItemScore, CookItemScore]]) -> None:
        w = self.out.width
        self._table(
            ["Item", "Base run", "Base", "Cooked run", "Cooked", "Δ"],
            [24, (w - 72) / 2, 16, (w - 72) / 2, 16, 16],
            [self._item_row(pre, post) for pre, post in pairs],
        )

    @staticmethod
    def _item_row(pre: CookItemScore, post: CookItemScore) -> list[Cell]:
        difference = _difference(pre, post)
        delta, colour = "—", MUTED
        if difference is not None:
            delta = signed(f"{difference:f}")
            colour = UP if difference > 0 else DOWN if difference < 0 else MUTED
        item = pre.item_id if pre.item_id == post.item_id else f"{pre.item_id} / {post.item_id}"
        return [
            (item, "mono", "", 7.5, INK),
            (pre.run_id, "mono", "", 6.5, MUTED),
            (pre.score, "sans", "", 8.0, INK),
            (post.run_id, "mono", "", 6.5, MUTED),
            (post.score, "sans", "B", 8.0, INK),
            (delta, "sans", "B", 8.0, colour),
        ]
