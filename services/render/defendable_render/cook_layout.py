"""The cook receipt's PDF (`defendablecloud.cook-receipt/v1`): base → cooked model, and the lift.

The per-item table is bounded (`MAX_ITEM_ROWS`); the rest of the items are counted under it
and are all in the attached JSON. Differences per item are shown for reading only: the
receipt's own figures (means, bounds) are printed as recorded, never recomputed here.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from defendable_canonical.cook import CookItemScore, CookReceiptPayload
from defendable_canonical.model import Signature

from .layout import INK, MUTED, Cell, Layout, thousands

MAX_ITEM_ROWS = 60  # about two pages of items
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
                ("Flight sheet", f"{p.flight_sheet.id}@{p.flight_sheet.version}", False),
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
        note = f"{len(pairs)} items, base → cooked"
        if len(pairs) > MAX_ITEM_ROWS:
            note += f"; the first {MAX_ITEM_ROWS} shown"
        self._section("Per-item scores", note)
        w = self.out.width
        rows = [self._item_row(pre, post) for pre, post in pairs[:MAX_ITEM_ROWS]]
        self._table(
            ["Item", "Base run", "Base", "Cooked run", "Cooked", "Δ"],
            [24, (w - 72) / 2, 16, (w - 72) / 2, 16, 16],
            rows,
        )
        hidden = len(pairs) - MAX_ITEM_ROWS
        if hidden > 0:
            self._pairs([("", f"… {hidden} more items in the attached JSON", False)])
        if len(p.pre.items) != len(p.post.items):
            self._pairs(
                [("", f"The base side lists {len(p.pre.items)} items, the cooked side {len(p.post.items)}.", False)]
            )

    @staticmethod
    def _item_row(pre: CookItemScore, post: CookItemScore) -> list[Cell]:
        before, after = _decimal(pre.score), _decimal(post.score)
        delta, colour = "—", MUTED
        if before is not None and after is not None:
            difference = after - before
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
