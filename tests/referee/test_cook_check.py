"""A cook's check: the sheet declares its noise floor, the referee's library vouches for the sheet."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from defendable_canonical.cook import CheckedRun, CheckedSide, EvalItem, EvalSet, cook_seed, eval_set_sha256
from defendable_canonical.events import CookRequested, derive_id
from defendable_canonical.model import FlightSheetRef
from defendable_referee.cook_check import check_cook
from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.sheet import CookPolicy, Library, LoadedSheet, load_library, load_sheet

CRE = "cre_memo_dscr_ltv_v1@1.0.0"
NOI = "cre_memo_noi_cap_rate_v1@1.0.0"
ITEMS = [f"q{i}" for i in range(1, 7)]
EVAL_SET = EvalSet(
    name="holdout", items=[EvalItem(id=i, sha256="sha256:" + f"{n:02x}" * 32) for n, i in enumerate(ITEMS)]
)
NOW = "2026-12-01T00:00:00.000Z"


@pytest.fixture(scope="module")
def library() -> Library:
    return load_library()


def sheet_with_cook(library: Library, cook: dict[str, Any]) -> LoadedSheet:
    value = json.loads(library.get(CRE).raw)
    return load_sheet(json.dumps(value | {"cook": cook}).encode(), source="cre+cook.json")


def runs(model: str, scores: list[str], side: str, sheet: FlightSheetRef) -> CheckedSide:
    return CheckedSide(
        model=model,
        flight_sheet=sheet,
        runs=[
            CheckedRun(item_id=item, run_id=f"run_{side}{n:031x}", score=score)
            for n, (item, score) in enumerate(zip(ITEMS, scores, strict=True))
        ],
    )


def request(pre: CheckedSide, post: CheckedSide) -> CookRequested:
    return CookRequested(
        event_id="ev_" + "1" * 32, org_id="org_a", run_id="cook_" + "2" * 32, occurred_at=NOW, producer="intake",
        causation_id="cmd_x", project="p",
        dataset={"name": "d", "version": "1", "sha256": "sha256:" + "d" * 64},  # type: ignore[arg-type]
        eval_set=EVAL_SET, pre=pre, post=post,
    )  # fmt: skip


PRE_SCORES = ["86.67", "86.67", "86.67", "86.67", "100.00", "100.00"]
POST_SCORES = ["100.00"] * 6


def test_packaged_sheets_declare_no_cook_policy_and_keep_their_published_hashes(library: Library) -> None:
    # load_library checks each hash against published.txt; the defaults change none of them.
    for loaded in library.sheets():
        assert loaded.sheet.cook == CookPolicy(noise_floor="0", min_items=2)
        assert b'"cook"' not in loaded.raw


def test_a_real_lift_on_one_known_sheet_is_eligible_with_the_receipts_numbers(library: Library) -> None:
    ref = library.get(CRE).ref()
    event = request(runs("base", PRE_SCORES, "a", ref), runs("cooked", POST_SCORES, "b", ref))
    checked = check_cook(event, library, NOW)
    assert checked.eligible and checked.reasons == []
    assert checked.event_id == derive_id("ev", event.event_id, "CookChecked")
    assert checked.causation_id == event.event_id and checked.run_id == event.run_id
    assert checked.flight_sheet == ref and checked.noise_floor == "0"
    assert (checked.mean_pre, checked.mean_post) == ("91.1133", "100.0000")
    assert checked.lift is not None and checked.lift.mean_difference == "8.8867"
    assert 0 < float(checked.lift.lower) <= 8.8867 <= float(checked.lift.upper)
    assert checked.lift.seed == cook_seed(
        eval_set_sha256(EVAL_SET.items),
        ref.sha256,
        [r.run_id for r in event.pre.runs],
        [r.run_id for r in event.post.runs],
    )
    assert [s.score for s in checked.pre] == PRE_SCORES
    assert check_cook(event, library, NOW) == checked  # reproducible


def test_a_lift_under_the_sheets_declared_noise_floor_is_refused_with_the_numbers(library: Library) -> None:
    strict = sheet_with_cook(library, {"noise_floor": "20"})
    assert strict.sha256 != library.get(CRE).sha256  # a declared policy is part of the sheet's hash
    ref = strict.ref()
    event = request(runs("base", PRE_SCORES, "a", ref), runs("cooked", POST_SCORES, "b", ref))
    checked = check_cook(event, Library([strict]), NOW)
    assert not checked.eligible
    assert checked.lift is not None
    assert checked.reasons == [f"did not beat the baseline: lower bound {checked.lift.lower} ≤ noise floor 20"]
    assert checked.noise_floor == checked.lift.noise_floor == "20"


def test_a_cook_on_fewer_items_than_the_sheet_asks_for_is_refused(library: Library) -> None:
    wide = sheet_with_cook(library, {"min_items": 7})
    ref = wide.ref()
    checked = check_cook(
        request(runs("base", PRE_SCORES, "a", ref), runs("cooked", POST_SCORES, "b", ref)), Library([wide]), NOW
    )
    assert checked.reasons == ["eval set has 6 items; the flight sheet asks a cook for at least 7"]


def test_pre_and_post_on_different_sheets_are_refused(library: Library) -> None:
    cre, noi = library.get(CRE).ref(), library.get(NOI).ref()
    checked = check_cook(
        request(runs("base", PRE_SCORES, "a", noi), runs("cooked", POST_SCORES, "b", cre)), library, NOW
    )
    assert not checked.eligible and checked.lift is None
    assert checked.reasons == [
        f"pre and post used different flight sheets: pre {noi.id}@{noi.version} ({noi.sha256}), "
        f"post {cre.id}@{cre.version} ({cre.sha256})"
    ]


def test_a_sheet_the_library_lacks_or_holds_under_another_hash_is_refused(library: Library) -> None:
    ghost = FlightSheetRef(id="ghost_v1", version="1.0.0", sha256="sha256:" + "9" * 64)
    checked = check_cook(
        request(runs("base", PRE_SCORES, "a", ghost), runs("cooked", POST_SCORES, "b", ghost)), library, NOW
    )
    assert not checked.eligible
    assert checked.reasons == ["flight sheets this referee does not have: ghost_v1@1.0.0"]
    moved = msgspec.structs.replace(library.get(CRE).ref(), sha256="sha256:" + "8" * 64)
    checked = check_cook(
        request(runs("base", PRE_SCORES, "a", moved), runs("cooked", POST_SCORES, "b", moved)), library, NOW
    )
    assert not checked.eligible
    assert checked.reasons[-1].startswith(
        "flight sheets whose hash differs from the library's: cre_memo_dscr_ltv_v1@1.0.0"
    )


@pytest.mark.parametrize(
    ("cook", "problem"),
    [
        ({"noise_floor": "-1"}, "noise floor '-1'"),
        ({"noise_floor": "0.00001"}, "noise floor '0.00001'"),
        ({"noise_floor": "101"}, "noise floor '101'"),
        ({"noise_floor": 1}, "Expected `str`"),
        ({"min_items": 1}, "Expected `int` >= 2"),
        ({"min_items": 10_001}, "Expected `int` <= 10000"),
        ({"floor": "1"}, "unknown field `floor`"),
    ],
)
def test_a_malformed_cook_policy_fails_at_load(library: Library, cook: dict[str, Any], problem: str) -> None:
    with pytest.raises(FlightSheetInvalid, match=r"cre\+cook\.json") as refused:
        sheet_with_cook(library, cook)
    assert problem in str(refused.value)
