"""Cook lift: is the cooked model really better than its base on the same eval set? Pure, no I/O.

`paired_bootstrap` is a percentile bootstrap on per-item score differences whose random
stream is SHA-256 in counter mode, so anyone — another Python, a browser with WebCrypto —
re-derives the same bounds bit for bit. `decide_cook` checks that the two sides of a cook
are comparable (same sheet, same items, one model each) and mints only when the lift's
lower bound is strictly above the sheet's noise floor. `cook_receipt_body` turns an eligible
decision into the hashed body (libs/canonical cook.py).

A cook that is not comparable, or not better, is *data*: a CookDecision with
eligible=False and the reasons. `LiftError` is for a caller's broken invariant: scores that
are not two-place decimals, work beyond the limits, a malformed noise floor.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Final

import msgspec

from defendable_canonical.cook import (
    COOK_RECEIPT_SCHEMA,
    LIFT_METHOD,
    CheckedRun,
    CheckedSide,
    CookDataset,
    CookItemScore,
    CookLift,
    CookReceiptBody,
    CookSide,
    EvalSet,
    EvalSetRef,
    cook_seed,
    eval_set_problems,
    eval_set_sha256,
)
from defendable_canonical.model import Approval, FlightSheetRef
from defendable_referee.errors import RefereeError
from defendable_referee.numeric import CONTEXT, to_decimal

MAX_ITEMS: Final = 10_000
MAX_RESAMPLES: Final = 20_000
MAX_WORK: Final = 20_000_000  # n × resamples: one index per item per resample
DEFAULT_RESAMPLES: Final = 10_000
DEFAULT_CONFIDENCE: Final = Decimal("0.95")
MIN_ITEMS: Final = 2  # below this a "distribution" of differences is one number
_PLACES: Final = 4
_BATCH_BLOCKS: Final = 1024  # SHA-256 blocks hashed per batch: 8,192 indices
_MAX_ABS_SCORE: Final = Decimal(10) ** 9  # keeps every resample sum below 2^53: plain JS Numbers suffice


class LiftError(RefereeError, ValueError):
    """The lift computation refused its inputs (a caller's bug, not a refused cook)."""


class LiftEstimate(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Means and bounds in score points, fixed-point strings with four decimals."""

    mean_pre: str
    mean_post: str
    mean_difference: str
    lower: str
    upper: str
    resamples: int
    confidence: str
    seed: str
    n: int


# ---------------------------------------------------------------- the bootstrap


def check_limits(n: int, resamples: int) -> str | None:
    """Why (n, resamples) is more work than a bootstrap may do, or None."""
    if n > MAX_ITEMS:
        return f"{n} items exceed MAX_ITEMS = {MAX_ITEMS}"
    if resamples > MAX_RESAMPLES:
        return f"{resamples} resamples exceed MAX_RESAMPLES = {MAX_RESAMPLES}"
    if n * resamples > MAX_WORK:
        return f"{n} items × {resamples} resamples = {n * resamples} exceed MAX_WORK = {MAX_WORK}"
    return None


def _check_settings(resamples: int, confidence: Decimal) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise LiftError(f"resamples = {resamples!r}; at least 1")
    if not isinstance(confidence, Decimal) or not confidence.is_finite() or not 0 < confidence < 1:
        raise LiftError(f"confidence = {confidence!r}; a Decimal strictly between 0 and 1")


def _index_chunks(seed: bytes, n: int, count: int) -> Iterator[list[int]]:
    """Step 2 of `paired_bootstrap`: the first `count` accepted indices, in batches."""
    limit = (1 << 32) - (1 << 32) % n  # the largest multiple of n that is ≤ 2^32
    base = hashlib.sha256(seed + b"\x00")
    k = 0
    while count > 0:
        blocks = min(_BATCH_BLOCKS, -(-count // 8))
        digests = []
        for counter in range(k, k + blocks):
            block = base.copy()
            block.update(counter.to_bytes(8, "big"))
            digests.append(block.digest())
        k += blocks
        words: Sequence[int] = struct.unpack(f">{8 * blocks}I", b"".join(digests))
        if max(words) >= limit:  # rare (p ≤ n / 2^32 per word): drop the biased tail
            words = [w for w in words if w < limit]
        chunk = list(map(n.__rmod__, words[:count]))
        count -= len(chunk)
        yield chunk


def bootstrap_indices(seed: str, n: int, count: int) -> list[int]:
    """The first `count` resample indices in [0, n) for `seed` (step 2 of `paired_bootstrap`)."""
    if not 1 <= n <= 1 << 32:
        raise LiftError(f"n = {n} is outside 1..2^32")
    if not 0 <= count <= MAX_WORK:
        raise LiftError(f"count = {count} is outside 0..MAX_WORK = {MAX_WORK}")
    return [index for chunk in _index_chunks(_seed_bytes(seed), n, count) for index in chunk]


def _seed_bytes(seed: str) -> bytes:
    if not seed:
        raise LiftError("the bootstrap seed is empty")
    try:
        return seed.encode("utf-8")
    except UnicodeEncodeError:
        raise LiftError("the bootstrap seed holds a lone surrogate; it must be encodable as UTF-8") from None


def _hundredths(value: Decimal, side: str, index: int) -> int:
    """A score as an exact integer number of hundredths of a point."""
    if not isinstance(value, Decimal) or not value.is_finite() or abs(value) > _MAX_ABS_SCORE:
        raise LiftError(f"{side}[{index}] = {value!r} is not a finite Decimal within ±10^9")
    scaled = Fraction(value) * 100  # exact: Fraction(Decimal) does not round
    if scaled.denominator != 1:
        raise LiftError(f"{side}[{index}] = {value} has more than two decimals")
    return scaled.numerator


def _rounded(numerator: int, denominator: int) -> str:
    """numerator / denominator (denominator > 0) to four decimals, ties toward +∞, fixed-point."""
    units = (2 * numerator * 10**_PLACES + denominator) // (2 * denominator)  # ⌊10^4·x + 1/2⌋
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10**_PLACES)
    return f"{sign}{whole}.{fraction:0{_PLACES}d}"


def paired_bootstrap(
    pre: Sequence[Decimal], post: Sequence[Decimal], *, seed: str, resamples: int, confidence: Decimal
) -> LiftEstimate:
    """Percentile bootstrap of mean(post − pre), paired by position; exact and reproducible.

    The construction (method "paired-percentile-bootstrap/sha256-ctr"), for n pairs, B
    resamples and confidence c, 0 < c < 1:

    1. Differences: d_i = 100 × (post_i − pre_i), an exact integer (scores have at most two
       decimals, |score| ≤ 10^9).
    2. Index stream: for k = 0, 1, 2, … let block_k = SHA-256(UTF-8(seed) ‖ 0x00 ‖
       uint64_be(k)), 32 bytes, read as eight big-endian uint32 words; the word stream is
       block_0's eight words, then block_1's, and so on. With limit = 2^32 − (2^32 mod n), a
       word w ≥ limit is skipped (rejection sampling: no modulo bias) and every other word
       gives the index w mod n. (32-bit words keep a browser verifier in exact Number
       arithmetic; at n ≤ 10,000 fewer than 1 word in 400,000 is skipped.)
    3. Resamples: resample b (0 ≤ b < B) takes accepted indices b·n … b·n + n − 1, one
       continuous stream across resamples; S_b = Σ d_index. Its mean is S_b / (100·n) points;
       all means share that denominator, so sorting the integers S_b sorts them exactly.
    4. Percentiles: sort the S_b ascending; L = ⌊(1 − c) · B / 2⌋ in exact rational
       arithmetic and U = B − 1 − L; lower = S_(L) / (100·n) and upper = S_(U) / (100·n),
       0-based (c = 0.95, B = 10,000: the 251st smallest and the 251st largest).
    5. Output: mean_pre, mean_post, mean_difference (= Σ d_i / (100·n)), lower and upper
       are exact rationals rounded to four decimals by ⌊10^4·x + 1/2⌋ — half-up with ties
       toward +∞, as JavaScript's Math.round, not Decimal's ROUND_HALF_UP (ties away from
       zero): rounding that commutes with shifts, so adding d to every post score moves every
       output by exactly d. mean_difference may differ from mean_post − mean_pre as printed
       by 0.0001. The confidence is echoed normalised ("0.95").

    Not an identity: lower ≤ mean_difference ≤ upper holds unless B is tiny (at B = 1 the one
    resample may miss the mean). Each resample mean lies at or below (or at or above) the
    sample mean with probability ≥ 0.45 in every case enumerated for n ≤ 7, so at B = 200,
    c = 0.95 (L = 5) a violation needs odds below 10^-20.
    Raises LiftError for unequal or empty sides, bad scores, seed or confidence, and work
    beyond MAX_ITEMS, MAX_RESAMPLES or MAX_WORK (checked before any hashing).
    """
    n = len(pre)
    if n != len(post):
        raise LiftError(f"pre has {n} scores, post has {len(post)}: a paired bootstrap needs equal sides")
    if n == 0:
        raise LiftError("no scores: a bootstrap needs at least one pair")
    _check_settings(resamples, confidence)
    if problem := check_limits(n, resamples):
        raise LiftError(problem)
    seed_bytes = _seed_bytes(seed)
    # 1. Exact integer differences, in hundredths of a point.
    pre_h = [_hundredths(value, "pre", i) for i, value in enumerate(pre)]
    post_h = [_hundredths(value, "post", i) for i, value in enumerate(post)]
    diffs = [b - a for a, b in zip(pre_h, post_h, strict=True)]

    # 2./3. One running sum per resample over the index stream.
    sums: list[int] = []
    pending: list[int] = []
    for chunk in _index_chunks(seed_bytes, n, n * resamples):
        pending.extend(map(diffs.__getitem__, chunk))
        full = len(pending) // n
        sums.extend(sum(pending[i * n : (i + 1) * n]) for i in range(full))
        del pending[: full * n]

    # 4. Percentiles by index into the sorted sums.
    sums.sort()
    low = int((1 - Fraction(confidence)) * resamples / 2)  # ⌊·⌋: the value is ≥ 0
    high = resamples - 1 - low

    # 5. Four decimals, ties toward +∞.
    scale = 100 * n
    return LiftEstimate(
        mean_pre=_rounded(sum(pre_h), scale),
        mean_post=_rounded(sum(post_h), scale),
        mean_difference=_rounded(sum(diffs), scale),
        lower=_rounded(sums[low], scale),
        upper=_rounded(sums[high], scale),
        resamples=resamples,
        confidence=format(confidence.normalize(CONTEXT), "f"),
        seed=seed,
        n=n,
    )


# ---------------------------------------------------------------- the cook decision


class CookDecision(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """eligible is True exactly when reasons is empty. Fields that could not be established
    (sides on different sheets, a malformed eval set) are None; pre/post list every item's score
    in eval-set order whenever the sides pair up, and estimate is set whenever it was computed."""

    eligible: bool
    reasons: list[str]
    noise_floor: str
    eval_set: EvalSetRef | None = None
    flight_sheet: FlightSheetRef | None = None
    base_model: str | None = None
    cooked_model: str | None = None
    pre: list[CookItemScore] = []
    post: list[CookItemScore] = []
    estimate: LiftEstimate | None = None


def default_resamples(n: int) -> int:
    """DEFAULT_RESAMPLES, cut so that n × resamples stays within MAX_WORK (2,000 at n = 10,000)."""
    return min(DEFAULT_RESAMPLES, MAX_WORK // max(n, 1))


def _listed(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(repr(name) for name in names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def _sheet(ref: FlightSheetRef) -> str:
    return f"{ref.id}@{ref.version} ({ref.sha256})"


def _score(text: str) -> Decimal | None:
    """A verdict score: a decimal string in [0, 100] with at most two decimals."""
    value = to_decimal(text)
    if value is None or not 0 <= value <= 100 or value != value.quantize(Decimal("0.01"), context=CONTEXT):
        return None
    return value


def _noise_floor(text: str) -> Decimal:
    value = to_decimal(text) if isinstance(text, str) else None
    if value is None or not 0 <= value <= 100 or value != value.quantize(Decimal("0.0001"), context=CONTEXT):
        raise LiftError(f"noise floor {text!r} is not a decimal string of score points in [0, 100], ≤ 4 decimals")
    return value


def check_noise_floor(text: str) -> Decimal:
    """The noise floor `decide_cook` accepts, as a Decimal; LiftError otherwise (sheets validate with it at load)."""
    return _noise_floor(text)


def _side(label: str, side: CheckedSide, order: Sequence[str], reasons: list[str]) -> dict[str, CheckedRun]:
    """Check one side against the eval set's item ids; the runs by item id when it pairs up."""
    first = len(reasons)
    runs = side.runs
    wanted = set(order)
    per_item = Counter(run.item_id for run in runs)
    if repeated := [item for item, count in per_item.items() if count > 1]:
        reasons.append(f"{label}: more than one run for items: {_listed(repeated)}")
    if missing := [item for item in order if item not in per_item]:
        reasons.append(f"{label}: no run for eval-set items: {_listed(missing)}")
    if extra := [item for item in per_item if item not in wanted]:
        reasons.append(f"{label}: runs for items not in the eval set: {_listed(extra)}")
    if reused := [run_id for run_id, count in Counter(run.run_id for run in runs).items() if count > 1]:
        reasons.append(f"{label}: run ids used for more than one item: {_listed(reused)}")
    if bad := [run.item_id for run in runs if _score(run.score) is None]:
        reasons.append(f"{label}: scores that are not percentages with at most two decimals on items: {_listed(bad)}")
    return {run.item_id: run for run in runs} if len(reasons) == first else {}


def decide_cook(
    pre_side: CheckedSide,
    post_side: CheckedSide,
    eval_set: EvalSet,
    noise_floor: str = "0",
    *,
    resamples: int | None = None,
    confidence: Decimal = DEFAULT_CONFIDENCE,
) -> CookDecision:
    """May this cook be minted? Every reason it may not, or a decision with eligible=True.

    Each side names the one model and flight sheet its runs share (intake refuses a side that
    mixes either: it is intake that knows the runs), and each run's score.

    Plan: 1. the eval set is well formed, has at least MIN_ITEMS and at most MAX_ITEMS items;
    2. each side has exactly one run per eval-set item (none missing, extra or duplicated),
    distinct run ids and well-formed scores; 3. across sides: the same flight sheet (id,
    version and sha256), different models, no run on both sides; 4. the paired bootstrap,
    seeded by `cook_seed` over the eval-set hash, the sheet hash and both sides' run ids in
    eval-set order; 5. eligible only when the rounded lower bound is strictly above the noise
    floor (≥ 0 by construction, so also strictly above zero).

    resamples defaults to `default_resamples(n)`, so every admitted eval set fits the work
    bound. Raises LiftError for a malformed noise floor or an explicit
    resamples/confidence paired_bootstrap refuses.
    """
    floor = _noise_floor(noise_floor)
    _check_settings(DEFAULT_RESAMPLES if resamples is None else resamples, confidence)  # fail early, not only on a fit
    reasons: list[str] = []
    # 1. The eval set.
    order = [item.id for item in eval_set.items]
    set_problems = eval_set_problems(eval_set.items)
    reasons.extend(set_problems)
    n = len(order)
    if n < MIN_ITEMS:
        reasons.append(f"eval set has {n} item{'' if n == 1 else 's'}; a cook needs at least {MIN_ITEMS}")
    elif n > MAX_ITEMS:
        reasons.append(f"eval set has {n} items; a cook allows at most {MAX_ITEMS}")
    ref = None if set_problems else EvalSetRef(name=eval_set.name, sha256=eval_set_sha256(eval_set.items), items=n)

    # 2. Each side on its own.
    pre = _side("pre", pre_side, order, reasons)
    post = _side("post", post_side, order, reasons)

    # 3. Across sides.
    sheet = None
    if pre_side.flight_sheet != post_side.flight_sheet:
        reasons.append(
            "pre and post used different flight sheets: "
            f"pre {_sheet(pre_side.flight_sheet)}, post {_sheet(post_side.flight_sheet)}"
        )
    else:
        sheet = pre_side.flight_sheet
    base, cooked = pre_side.model, post_side.model
    if base == cooked:
        reasons.append(f"pre and post ran the same model {base!r}: a cook compares a base with its cooked model")
    if shared := sorted({run.run_id for run in pre_side.runs} & {run.run_id for run in post_side.runs}):
        reasons.append(f"run ids on both sides: {_listed(shared)}")

    decision = CookDecision(
        eligible=False,
        reasons=reasons,
        noise_floor=noise_floor,
        eval_set=ref,
        flight_sheet=sheet,
        base_model=base,
        cooked_model=cooked,
    )
    if reasons or ref is None or sheet is None:
        return decision

    # 4. The bootstrap over the pairs, in eval-set order.
    pre_scores = [CookItemScore(item_id=item, run_id=pre[item].run_id, score=pre[item].score) for item in order]
    post_scores = [CookItemScore(item_id=item, run_id=post[item].run_id, score=post[item].score) for item in order]
    seed = cook_seed(ref.sha256, sheet.sha256, [s.run_id for s in pre_scores], [s.run_id for s in post_scores])
    estimate = paired_bootstrap(
        [Decimal(s.score) for s in pre_scores],
        [Decimal(s.score) for s in post_scores],
        seed=seed,
        resamples=default_resamples(n) if resamples is None else resamples,
        confidence=confidence,
    )

    # 5. Strictly above the floor, compared as printed in the receipt.
    if not Decimal(estimate.lower) > floor:
        reasons.append(f"did not beat the baseline: lower bound {estimate.lower} ≤ noise floor {noise_floor}")
    return msgspec.structs.replace(
        decision,
        eligible=not reasons,
        pre=pre_scores,
        post=post_scores,
        estimate=estimate,
    )


def cook_receipt_body(
    decision: CookDecision, *, org_id: str, run_id: str, project: str, dataset: CookDataset, approval: Approval
) -> CookReceiptBody:
    """The hashed body of a cook receipt; raises LiftError for a decision that is not eligible."""
    if not decision.eligible:
        raise LiftError("a refused cook gets no receipt: " + "; ".join(decision.reasons))
    estimate, ref, sheet = decision.estimate, decision.eval_set, decision.flight_sheet
    if estimate is None or ref is None or sheet is None or decision.base_model is None or decision.cooked_model is None:
        raise LiftError("an eligible decision lacks its estimate, eval set, sheet or models")
    return CookReceiptBody(
        schema=COOK_RECEIPT_SCHEMA,
        org_id=org_id,
        run_id=run_id,
        project=project,
        flight_sheet=sheet,
        base_model=decision.base_model,
        cooked_model=decision.cooked_model,
        dataset=dataset,
        eval_set=ref,
        pre=CookSide(mean_score=estimate.mean_pre, items=decision.pre),
        post=CookSide(mean_score=estimate.mean_post, items=decision.post),
        lift=CookLift(
            method=LIFT_METHOD,
            mean_difference=estimate.mean_difference,
            lower=estimate.lower,
            upper=estimate.upper,
            confidence=estimate.confidence,
            resamples=estimate.resamples,
            seed=estimate.seed,
            noise_floor=decision.noise_floor,
        ),
        approval=approval,
    )
