"""Cook lift: a reproducible paired bootstrap, and a cook mints only when it really beat its base."""

from __future__ import annotations

import hashlib
import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defendable_canonical.cook import (
    COOK_RECEIPT_SCHEMA,
    LIFT_METHOD,
    CheckedRun,
    CheckedSide,
    CookDataset,
    EvalItem,
    EvalSet,
    cook_seed,
    eval_set_sha256,
)
from defendable_canonical.model import Approval, FlightSheetRef
from defendable_referee.lift import (
    MAX_ITEMS,
    CookDecision,
    LiftError,
    bootstrap_indices,
    cook_receipt_body,
    decide_cook,
    default_resamples,
    paired_bootstrap,
)

GOLDEN_SEED = "defendable/golden/v1"
C95 = Decimal("0.95")


def dec(*values: str) -> list[Decimal]:
    return [Decimal(v) for v in values]


# ---------------------------------------------------------------- an outsider's re-implementation


def reference_indices(seed: str, n: int, count: int) -> list[int]:
    """Step 2 of the docstring, written out naively: one block at a time, one word at a time."""
    limit = (2**32 // n) * n
    out: list[int] = []
    k = 0
    while len(out) < count:
        block = hashlib.sha256(seed.encode() + b"\x00" + k.to_bytes(8, "big")).digest()
        k += 1
        for j in range(8):
            word = int.from_bytes(block[4 * j : 4 * j + 4], "big")
            if word < limit and len(out) < count:
                out.append(word % n)
    return out


def reference_round(x: Fraction) -> str:
    units = math.floor(x * 10_000 + Fraction(1, 2))
    return ("-" if units < 0 else "") + f"{abs(units) // 10_000}.{abs(units) % 10_000:04d}"


def reference_bounds(pre: list[Decimal], post: list[Decimal], seed: str, b: int, c: Decimal) -> tuple[str, str]:
    """Steps 1-5 with exact rational means sorted directly."""
    n = len(pre)
    diffs = [Fraction(q) - Fraction(p) for p, q in zip(pre, post, strict=True)]
    idx = reference_indices(seed, n, n * b)
    means = sorted(sum((diffs[i] for i in idx[r * n : (r + 1) * n]), Fraction(0)) / n for r in range(b))
    low = int((1 - Fraction(c)) * b / 2)
    return reference_round(means[low]), reference_round(means[b - 1 - low])


# ---------------------------------------------------------------- the golden vector


def test_golden_vector_indices_follow_the_documented_sha256_counter_construction() -> None:
    # block_0 = SHA-256("defendable/golden/v1" ‖ 00 ‖ 00×8) = 1cc3781d 7dfdb1f9 …; 0x1cc3781d mod 5 = 2.
    block0 = hashlib.sha256(GOLDEN_SEED.encode() + b"\x00" + bytes(8)).hexdigest()
    assert block0 == "1cc3781d7dfdb1f902579f18b040e27557a2791637f99fe24f16808e04bfeac0"
    assert bootstrap_indices(GOLDEN_SEED, 5, 40) == [
        *[2, 4, 2, 3, 2, 4, 1, 1, 4, 3, 3, 4, 4, 4, 3, 3, 3, 4, 2, 1],
        *[2, 0, 4, 2, 0, 0, 0, 1, 2, 0, 4, 1, 0, 4, 1, 2, 3, 3, 4, 0],
    ]


def test_golden_vector_bounds_are_exact() -> None:
    # d = [500, -150, 1000, 0, 999] hundredths; resample sums sorted:
    # [1698, 1849, 2198, 2350, 2499, 2997, 3999, 3999]; c = 0.5, B = 8: L = 2, U = 5; ÷ 500.
    estimate = paired_bootstrap(
        dec("50.00", "60.00", "70.00", "80.00", "90.00"),
        dec("55.00", "58.50", "80.00", "80.00", "99.99"),
        seed=GOLDEN_SEED,
        resamples=8,
        confidence=Decimal("0.5"),
    )
    assert msgspec.structs.asdict(estimate) == {
        "mean_pre": "70.0000",
        "mean_post": "74.6980",
        "mean_difference": "4.6980",
        "lower": "4.3960",
        "upper": "5.9940",
        "resamples": 8,
        "confidence": "0.5",
        "seed": GOLDEN_SEED,
        "n": 5,
    }


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 200, 10_000, 2**31 + 1, 2**32])
def test_index_stream_equals_a_naive_reimplementation_including_rejections(n: int) -> None:
    # n = 2^31 + 1 rejects almost half of all words, so the skip path is exercised for real.
    assert bootstrap_indices("seed-α", n, 3_001) == reference_indices("seed-α", n, 3_001)


def test_rejected_words_are_skipped_not_reduced() -> None:
    n = 2**31 + 1
    words = [int.from_bytes(hashlib.sha256(b"x\x00" + bytes(8)).digest()[4 * j : 4 * j + 4], "big") for j in range(8)]
    accepted = [w % n for w in words if w < n]
    assert len(accepted) < 8  # this seed's first block has a rejected word
    assert bootstrap_indices("x", n, len(accepted)) == accepted


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=12),
    st.text(min_size=1, max_size=8),
    st.integers(1, 60),
    st.sampled_from([Decimal("0.5"), Decimal("0.8"), Decimal("0.9"), C95, Decimal("0.99")]),
)
def test_bootstrap_equals_the_rational_reference(
    pairs: list[tuple[int, int]], seed: str, resamples: int, confidence: Decimal
) -> None:
    pre = [Decimal(a).scaleb(-2) for a, _ in pairs]
    post = [Decimal(b).scaleb(-2) for _, b in pairs]
    estimate = paired_bootstrap(pre, post, seed=seed, resamples=resamples, confidence=confidence)
    assert (estimate.lower, estimate.upper) == reference_bounds(pre, post, seed, resamples, confidence)


# ---------------------------------------------------------------- reproducibility and exactness


NOISY_PRE = dec("40.00", "55.50", "61.25", "70.00", "33.33", "90.00", "12.50", "66.67", "50.00", "81.82")
NOISY_POST = dec("52.00", "54.00", "75.00", "71.43", "50.00", "88.89", "30.00", "83.33", "57.14", "90.91")


def test_same_inputs_give_the_same_bounds() -> None:
    first = paired_bootstrap(NOISY_PRE, NOISY_POST, seed="s", resamples=2_000, confidence=C95)
    again = paired_bootstrap(list(NOISY_PRE), list(NOISY_POST), seed="s", resamples=2_000, confidence=C95)
    assert first == again


def test_a_different_seed_gives_different_bounds() -> None:
    one = paired_bootstrap(NOISY_PRE, NOISY_POST, seed="s", resamples=2_000, confidence=C95)
    other = paired_bootstrap(NOISY_PRE, NOISY_POST, seed="t", resamples=2_000, confidence=C95)
    assert (one.lower, one.upper) != (other.lower, other.upper)
    assert one.mean_difference == other.mean_difference  # the seed moves only the resampling


def test_rounding_is_half_up_toward_plus_infinity() -> None:
    # mean difference = −0.01 / 8 = −0.00125: ties toward +∞ give −0.0012 (Decimal's
    # ROUND_HALF_UP, ties away from zero, would give −0.0013).
    pre = dec("0.01", *["0"] * 7)
    estimate = paired_bootstrap(pre, dec(*["0"] * 8), seed="s", resamples=10, confidence=C95)
    assert estimate.mean_difference == "-0.0012"
    assert Decimal("-0.00125").quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) == Decimal("-0.0013")
    assert paired_bootstrap(dec("0", "0"), dec("0", "0"), seed="s", resamples=3, confidence=C95).lower == "0.0000"


SCORES = st.integers(0, 10_000).map(lambda h: Decimal(h).scaleb(-2))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(SCORES, SCORES), min_size=1, max_size=30), st.text(min_size=1, max_size=12))
def test_lower_le_mean_difference_le_upper(pairs: list[tuple[Decimal, Decimal]], seed: str) -> None:
    # Not an algebraic identity (B = 1 can miss), so B = 200: a violation needs odds < 1e-20 (lift.py).
    estimate = paired_bootstrap([a for a, _ in pairs], [b for _, b in pairs], seed=seed, resamples=200, confidence=C95)
    assert Decimal(estimate.lower) <= Decimal(estimate.mean_difference) <= Decimal(estimate.upper)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(SCORES, SCORES), min_size=1, max_size=30),
    st.integers(-20_000, 20_000).map(lambda h: Decimal(h).scaleb(-2)),
)
def test_shifting_every_post_score_by_d_shifts_the_bounds_by_exactly_d(
    pairs: list[tuple[Decimal, Decimal]], d: Decimal
) -> None:
    pre, post = [a for a, _ in pairs], [b for _, b in pairs]
    base = paired_bootstrap(pre, post, seed="shift", resamples=100, confidence=C95)
    shifted = paired_bootstrap(pre, [b + d for b in post], seed="shift", resamples=100, confidence=C95)
    for field in ("mean_post", "mean_difference", "lower", "upper"):
        assert Decimal(getattr(shifted, field)) == Decimal(getattr(base, field)) + d, field
    assert shifted.mean_pre == base.mean_pre


# ---------------------------------------------------------------- limits and bad inputs


def test_work_beyond_the_limits_is_refused_naming_the_limit() -> None:
    many = [Decimal(0)] * (MAX_ITEMS + 1)
    with pytest.raises(LiftError, match=r"10001 items exceed MAX_ITEMS = 10000"):
        paired_bootstrap(many, many, seed="s", resamples=1, confidence=C95)
    with pytest.raises(LiftError, match=r"20001 resamples exceed MAX_RESAMPLES = 20000"):
        paired_bootstrap(dec("1"), dec("2"), seed="s", resamples=20_001, confidence=C95)
    two_thousand = [Decimal(0)] * 2_000
    with pytest.raises(LiftError, match=r"2000 items × 10001 resamples = 20002000 exceed MAX_WORK = 20000000"):
        paired_bootstrap(two_thousand, two_thousand, seed="s", resamples=10_001, confidence=C95)


@pytest.mark.parametrize(
    ("pre", "post", "seed", "resamples", "confidence", "message"),
    [
        (dec("1"), dec("1", "2"), "s", 10, C95, "pre has 1 scores, post has 2"),
        ([], [], "s", 10, C95, "at least one pair"),
        (dec("1.001"), dec("1"), "s", 10, C95, r"pre\[0\] = 1.001 has more than two decimals"),
        (dec("1"), [Decimal("NaN")], "s", 10, C95, r"post\[0\]"),
        (dec("1"), dec("1E+10"), "s", 10, C95, r"within ±10\^9"),
        (dec("1"), dec("1"), "", 10, C95, "seed is empty"),
        (dec("1"), dec("1"), "s", 0, C95, "resamples = 0"),
        (dec("1"), dec("1"), "s", 10, Decimal(1), "strictly between 0 and 1"),
        (dec("1"), dec("1"), "s", 10, Decimal(0), "strictly between 0 and 1"),
    ],
)
def test_malformed_bootstrap_inputs_are_refused(
    pre: list[Decimal], post: list[Decimal], seed: str, resamples: int, confidence: Decimal, message: str
) -> None:
    with pytest.raises(LiftError, match=message):
        paired_bootstrap(pre, post, seed=seed, resamples=resamples, confidence=confidence)


def test_default_resamples_keep_every_admitted_eval_set_within_the_work_bound() -> None:
    assert default_resamples(200) == 10_000
    assert default_resamples(2_000) == 10_000
    assert default_resamples(4_000) == 5_000
    assert default_resamples(MAX_ITEMS) == 2_000


# ---------------------------------------------------------------- the cook decision

SHEET = FlightSheetRef(id="fin_wacc_calculation_v1", version="1.0.0", sha256="sha256:" + "a" * 64)
OTHER_HASH = FlightSheetRef(id=SHEET.id, version=SHEET.version, sha256="sha256:" + "b" * 64)
ITEM_IDS = [f"q{i:02d}" for i in range(1, 13)]
EVAL_SET = EvalSet(
    name="wacc-holdout", items=[EvalItem(id=i, sha256="sha256:" + f"{n:02x}" * 32) for n, i in enumerate(ITEM_IDS)]
)
BASE_SCORES = [
    "40.00",
    "55.56",
    "61.11",
    "70.00",
    "33.33",
    "90.00",
    "12.50",
    "66.67",
    "50.00",
    "81.82",
    "75.00",
    "60.00",
]


def runs(
    model: str, scores: list[str], *, side: str, items: list[str] | None = None, sheet: FlightSheetRef = SHEET
) -> CheckedSide:
    return CheckedSide(
        model=model,
        flight_sheet=sheet,
        runs=[
            CheckedRun(item_id=item, run_id=f"run_{side}_{item}", score=score)
            for item, score in zip(ITEM_IDS if items is None else items, scores, strict=True)
        ],
    )


def with_runs(side: CheckedSide, runs: list[CheckedRun]) -> CheckedSide:
    return msgspec.structs.replace(side, runs=runs)


def shifted(scores: list[str], delta: str) -> list[str]:
    return [f"{min(Decimal(100), Decimal(s) + Decimal(delta)):.2f}" for s in scores]


PRE = runs("llama-3.1-8b", BASE_SCORES, side="pre")


def post(scores: list[str], *, items: list[str] | None = None, sheet: FlightSheetRef = SHEET) -> CheckedSide:
    return runs("llama-3.1-8b-cook-7", scores, side="post", items=items, sheet=sheet)


def test_a_clear_positive_lift_is_eligible_with_a_recomputable_seed() -> None:
    lifted = [
        "52.00",
        "60.00",
        "75.00",
        "71.43",
        "50.00",
        "88.89",
        "30.00",
        "83.33",
        "57.14",
        "90.91",
        "80.00",
        "70.00",
    ]
    decision = decide_cook(PRE, post(lifted), EVAL_SET)
    assert decision.eligible, decision.reasons
    assert decision.reasons == []
    estimate = decision.estimate
    assert estimate is not None
    assert Decimal(estimate.lower) > 0
    assert estimate.resamples == 10_000
    assert estimate.confidence == "0.95"
    assert estimate.seed == cook_seed(
        eval_set_sha256(EVAL_SET.items), SHEET.sha256, [r.run_id for r in PRE.runs], [f"run_post_{i}" for i in ITEM_IDS]
    )
    assert decision.base_model == "llama-3.1-8b"
    assert decision.cooked_model == "llama-3.1-8b-cook-7"
    assert [s.score for s in decision.post] == lifted
    assert decide_cook(PRE, post(lifted), EVAL_SET) == decision  # reproducible end to end


def test_runs_are_paired_by_item_id_not_by_position() -> None:
    lifted = shifted(BASE_SCORES, "5")
    in_order = decide_cook(PRE, post(lifted), EVAL_SET)
    lifted_post = post(lifted)
    reversed_runs = decide_cook(
        with_runs(PRE, PRE.runs[::-1]), with_runs(lifted_post, lifted_post.runs[::-1]), EVAL_SET
    )
    assert in_order == reversed_runs
    assert in_order.eligible


def test_zero_lift_is_refused_with_the_exact_message() -> None:
    decision = decide_cook(PRE, post(BASE_SCORES), EVAL_SET)
    assert not decision.eligible
    assert decision.reasons == ["did not beat the baseline: lower bound 0.0000 ≤ noise floor 0"]
    assert decision.estimate is not None  # the refusal shows its numbers


def test_negative_lift_is_refused_with_the_exact_message() -> None:
    worse = [f"{Decimal(s) - Decimal('2.5'):.2f}" for s in BASE_SCORES]
    decision = decide_cook(PRE, post(worse), EVAL_SET)
    assert decision.reasons == ["did not beat the baseline: lower bound -2.5000 ≤ noise floor 0"]


@pytest.mark.parametrize(
    ("delta", "floor", "reasons"),
    [
        ("0.8", "1.0", ["did not beat the baseline: lower bound 0.8000 ≤ noise floor 1.0"]),
        ("1.00", "1.0", ["did not beat the baseline: lower bound 1.0000 ≤ noise floor 1.0"]),  # strictly above
        ("1.01", "1.0", []),
        ("0.01", "0", []),
    ],
)
def test_a_lift_must_be_strictly_above_the_noise_floor(delta: str, floor: str, reasons: list[str]) -> None:
    # Every item moves by the same delta, so the bootstrap has no spread: lower = upper = delta.
    decision = decide_cook(PRE, post(shifted(BASE_SCORES, delta)), EVAL_SET, floor)
    assert decision.reasons == reasons
    assert decision.eligible is (not reasons)


def test_pre_and_post_on_different_sheet_hashes_are_refused() -> None:
    decision = decide_cook(PRE, post(shifted(BASE_SCORES, "10"), sheet=OTHER_HASH), EVAL_SET)
    assert not decision.eligible
    assert decision.reasons == [
        "pre and post used different flight sheets: "
        f"pre fin_wacc_calculation_v1@1.0.0 (sha256:{'a' * 64}), "
        f"post fin_wacc_calculation_v1@1.0.0 (sha256:{'b' * 64})"
    ]
    assert decision.estimate is None and decision.flight_sheet is None


def test_pre_and_post_on_different_sheet_versions_are_refused() -> None:
    bumped = FlightSheetRef(id=SHEET.id, version="1.0.1", sha256=SHEET.sha256)
    decision = decide_cook(PRE, post(shifted(BASE_SCORES, "10"), sheet=bumped), EVAL_SET)
    assert [r.split(":")[0] for r in decision.reasons] == ["pre and post used different flight sheets"]


def test_item_sets_that_differ_from_the_eval_set_are_refused_naming_the_items() -> None:
    items = [*ITEM_IDS[:10], "q99", "q98"]  # q11, q12 missing; q99, q98 extra
    decision = decide_cook(PRE, post(shifted(BASE_SCORES, "10"), items=items), EVAL_SET)
    assert decision.reasons == [
        "post: no run for eval-set items: 'q11', 'q12'",
        "post: runs for items not in the eval set: 'q99', 'q98'",
    ]


def test_duplicate_item_ids_are_refused() -> None:
    doubled = [*ITEM_IDS[:11], "q03"]
    decision = decide_cook(PRE, post(shifted(BASE_SCORES, "10"), items=doubled), EVAL_SET)
    assert decision.reasons == [
        "post: more than one run for items: 'q03'",
        "post: no run for eval-set items: 'q12'",
        "post: run ids used for more than one item: 'run_post_q03'",  # this helper derives run ids from items
    ]
    twice = EvalSet(name="dup", items=[*EVAL_SET.items, EVAL_SET.items[0]])
    decision = decide_cook(PRE, post(shifted(BASE_SCORES, "10")), twice)
    assert "eval set lists item ids more than once: 'q01'" in decision.reasons
    assert decision.eval_set is None


def test_the_same_model_on_both_sides_or_shared_runs_are_refused() -> None:
    same = runs("llama-3.1-8b", shifted(BASE_SCORES, "10"), side="post")
    assert decide_cook(PRE, same, EVAL_SET).reasons == [
        "pre and post ran the same model 'llama-3.1-8b': a cook compares a base with its cooked model"
    ]
    plain = post(BASE_SCORES)
    reused = [msgspec.structs.replace(r, run_id=PRE.runs[0].run_id) if r.item_id == "q01" else r for r in plain.runs]
    assert decide_cook(PRE, with_runs(plain, reused), EVAL_SET).reasons == ["run ids on both sides: 'run_pre_q01'"]
    one_run = [msgspec.structs.replace(r, run_id="run_x") for r in plain.runs[:2]] + plain.runs[2:]
    assert decide_cook(PRE, with_runs(plain, one_run), EVAL_SET).reasons == [
        "post: run ids used for more than one item: 'run_x'"
    ]


def test_fewer_than_two_items_are_refused() -> None:
    tiny = EvalSet(name="tiny", items=EVAL_SET.items[:1])
    decision = decide_cook(with_runs(PRE, PRE.runs[:1]), post(["99.00"], items=["q01"]), tiny)
    assert decision.reasons == ["eval set has 1 item; a cook needs at least 2"]


def test_an_eval_set_beyond_the_item_limit_is_refused_without_bootstrapping() -> None:
    huge = EvalSet(name="huge", items=[EvalItem(id=f"i{n}", sha256="sha256:" + "c" * 64) for n in range(MAX_ITEMS + 1)])
    decision = decide_cook(with_runs(PRE, []), post([], items=[]), huge)
    assert decision.reasons[0] == "eval set has 10001 items; a cook allows at most 10000"
    assert decision.estimate is None


def test_malformed_scores_are_refused_naming_the_items() -> None:
    scores = ["83.333", *shifted(BASE_SCORES, "10")[1:11], "101.00"]
    decision = decide_cook(PRE, post(scores), EVAL_SET)
    assert decision.reasons == [
        "post: scores that are not percentages with at most two decimals on items: 'q01', 'q12'"
    ]


def test_bad_settings_are_a_caller_error_even_for_a_cook_that_would_be_refused() -> None:
    with pytest.raises(LiftError, match="strictly between 0 and 1"):
        decide_cook(with_runs(PRE, []), post([], items=[]), EVAL_SET, confidence=Decimal("1.5"))
    with pytest.raises(LiftError, match="resamples = 0"):
        decide_cook(with_runs(PRE, []), post([], items=[]), EVAL_SET, resamples=0)


@pytest.mark.parametrize("floor", ["-1", "abc", "1.00001", "101", ""])
def test_a_malformed_noise_floor_is_a_caller_error(floor: str) -> None:
    with pytest.raises(LiftError, match="noise floor"):
        decide_cook(PRE, post(BASE_SCORES), EVAL_SET, floor)


# ---------------------------------------------------------------- the receipt body

APPROVAL = Approval(approver="ana@example.com", decided_at="2026-05-01T12:00:00Z")
DATASET = CookDataset(name="wacc-sft", version="3", sha256="sha256:" + "d" * 64)


def test_an_eligible_cook_builds_its_receipt_body() -> None:
    decision = decide_cook(PRE, post(shifted(BASE_SCORES, "4")), EVAL_SET, "1.5")
    body = cook_receipt_body(
        decision, org_id="org_1", run_id="cook_1", project="wacc", dataset=DATASET, approval=APPROVAL
    )
    assert body.schema == COOK_RECEIPT_SCHEMA
    assert body.eval_set.sha256 == eval_set_sha256(EVAL_SET.items)
    assert body.eval_set.items == 12
    assert body.lift.method == LIFT_METHOD
    assert (body.lift.lower, body.lift.upper, body.lift.noise_floor) == ("4.0000", "4.0000", "1.5")
    assert decision.estimate is not None
    assert (body.pre.mean_score, body.post.mean_score) == (decision.estimate.mean_pre, decision.estimate.mean_post)
    assert [i.item_id for i in body.post.items] == ITEM_IDS
    assert body.flight_sheet == SHEET


def test_a_refused_cook_gets_no_receipt() -> None:
    decision = decide_cook(PRE, post(BASE_SCORES), EVAL_SET)
    with pytest.raises(LiftError, match="a refused cook gets no receipt: did not beat the baseline"):
        cook_receipt_body(decision, org_id="o", run_id="c", project="p", dataset=DATASET, approval=APPROVAL)
    forged = CookDecision(eligible=True, reasons=[], noise_floor="0")
    with pytest.raises(LiftError, match="lacks"):
        cook_receipt_body(forged, org_id="o", run_id="c", project="p", dataset=DATASET, approval=APPROVAL)
