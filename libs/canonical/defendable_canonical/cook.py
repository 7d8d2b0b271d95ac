"""Cook receipts (`defendablecloud.cook-receipt/v1`): the hashed record of a fine-tune's lift.

A cook is a run pair: the base model and the cooked model, each evaluated once per item
of the same frozen eval set against the same Flight Sheet. The receipt records both
sides' per-item scores and the paired-bootstrap lift; it is minted only when the lift's
lower bound is strictly above the sheet's noise floor (the decision is the referee's,
`defendable_referee.lift.decide_cook`).

Two constructions a verifier recomputes from the receipt alone:

* **eval-set hash** (`eval_set_sha256`): ``"sha256:" + hex(SHA-256(JCS(items)))`` where
  ``items`` is the JSON array, in the eval set's frozen order, of one object per item with
  exactly two members: ``{"id": <item id>, "sha256": <"sha256:<64 lowercase hex>" of the
  item's content>}``. RFC 8785 orders the members, so the bytes are
  ``[{"id":"q1","sha256":"sha256:…"},…]``. The eval set's *name* is not hashed: it is a label
  (covered by the receipt hash, not by the eval-set hash). Order is part of the hash: a
  reordered set is a different set, because the bootstrap pairs items by position.
* **bootstrap seed** (`cook_seed`): ``"sha256:" + hex(SHA-256(JCS({"domain":
  "defendablecloud.cook-seed/v1", "eval_set": <eval-set hash>, "flight_sheet": <sheet
  sha256>, "pre": [<pre run ids in eval-set order>], "post": [<post run ids, same order>]})))``.

Every number is a decimal string or an int; no floats (see model.py). The chain fields
(seq, parent_hash, minted_at) are the ledger's, added exactly as for eval receipts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import msgspec

from .digest import Digest, is_digest, sha256_digest
from .jcs import canonicalize
from .model import COOK_RECEIPT_SCHEMA, Approval, FlightSheetRef

COOK_SEED_DOMAIN = "defendablecloud.cook-seed/v1"
LiftMethod = Literal["paired-percentile-bootstrap/sha256-ctr"]
LIFT_METHOD: LiftMethod = "paired-percentile-bootstrap/sha256-ctr"

__all__ = [
    "COOK_RECEIPT_SCHEMA",
    "COOK_SEED_DOMAIN",
    "LIFT_METHOD",
    "CheckedRun",
    "CheckedSide",
    "CookDataset",
    "CookItemScore",
    "CookLift",
    "CookReceiptBody",
    "CookReceiptPayload",
    "CookSide",
    "EvalItem",
    "EvalSet",
    "EvalSetRef",
    "LiftMethod",
    "build_cook_payload",
    "cook_seed",
    "eval_set_problems",
    "eval_set_sha256",
]


# ---------------------------------------------------------------- the frozen eval set


class EvalItem(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: str
    sha256: str  # "sha256:<hex>" of the item's content (prompt, reference, whatever the sheet checks)


class EvalSet(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str
    items: list[EvalItem]


def _listed(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(repr(name) for name in names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def eval_set_problems(items: Sequence[EvalItem]) -> list[str]:
    """What makes a list of items not an eval set; empty when it is one."""
    problems: list[str] = []
    if not items:
        problems.append("eval set has no items")
    repeated = [item_id for item_id, count in Counter(item.id for item in items).items() if count > 1]
    if repeated:
        problems.append(f"eval set lists item ids more than once: {_listed(repeated)}")
    malformed = [item.id for item in items if not is_digest(item.sha256)]
    if malformed:
        problems.append(f"eval set items without a sha256:<64 hex> content digest: {_listed(malformed)}")
    return problems


def eval_set_sha256(items: Sequence[EvalItem]) -> Digest:
    """The eval-set hash defined in the module docstring; raises ValueError for a malformed set."""
    if problems := eval_set_problems(items):
        raise ValueError("; ".join(problems))
    return sha256_digest(canonicalize([{"id": item.id, "sha256": item.sha256} for item in items]))


def cook_seed(
    eval_set_sha256: str, flight_sheet_sha256: str, pre_run_ids: Sequence[str], post_run_ids: Sequence[str]
) -> Digest:
    """The bootstrap seed defined in the module docstring: recomputable from the receipt alone.

    It depends on which runs were paired, never on their scores, so nobody picks a seed after
    seeing the scores short of re-running the evals; at 10,000 resamples the bounds move by
    Monte-Carlo noise only (hundredths of a point), so such fishing buys little.
    """
    return sha256_digest(
        canonicalize(
            {
                "domain": COOK_SEED_DOMAIN,
                "eval_set": eval_set_sha256,
                "flight_sheet": flight_sheet_sha256,
                "pre": list(pre_run_ids),
                "post": list(post_run_ids),
            }
        )
    )


# ---------------------------------------------------------------- the receipt


class CheckedRun(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One pair of a requested cook: the eval-set item, the checked run that evaluated it, and
    that run's `Verdict.score` — all a cook decides on and all its receipt keeps of the run (the
    verdict itself stays on the run: GET /runs/{id})."""

    item_id: str
    run_id: str
    score: str  # "83.33"


class CheckedSide(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One side of a requested cook, as intake vouches for it (what a CookRequested carries per side).

    Every run of the side is of `model` and was checked under `flight_sheet`: intake refuses a
    side that mixes either, so neither is repeated per run. `runs` lists one entry per pair the
    command named, in the command's order (the referee pairs them with the eval set by item id).
    """

    model: str
    flight_sheet: FlightSheetRef
    runs: list[CheckedRun]


class CookDataset(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fine-tuning data the cooked model was trained on."""

    name: str
    version: str
    sha256: str


class EvalSetRef(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str
    sha256: str  # eval_set_sha256 of the items
    items: int


class CookItemScore(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    item_id: str
    run_id: str  # the checked run that scored this item
    score: str  # that run's Verdict.score, "83.33"


class CookSide(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One side's verdicts: the mean score and every item's score, in eval-set order."""

    mean_score: str  # exact mean, rounded to four decimals (lift.py states the rounding)
    items: list[CookItemScore]


class CookLift(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Post − pre, in score points; bounds of the paired percentile bootstrap (lift.py)."""

    method: LiftMethod
    mean_difference: str
    lower: str
    upper: str
    confidence: str  # "0.95"
    resamples: int
    seed: str  # cook_seed(...)
    noise_floor: str  # as the sheet declares it; lower was strictly above it


class CookReceiptBody(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Everything in a cook receipt that is known at approval; the ledger adds the chain fields."""

    schema: str
    org_id: str
    run_id: str  # the cook's own id: the ledger keys one receipt per (org_id, run_id)
    project: str
    flight_sheet: FlightSheetRef
    base_model: str
    cooked_model: str
    dataset: CookDataset
    eval_set: EvalSetRef
    pre: CookSide
    post: CookSide
    lift: CookLift
    approval: Approval


class CookReceiptPayload(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The hashed cook receipt: the body's fields with seq and parent_hash after org_id and
    minted_at last, as in ReceiptPayload (DESIGN.md §4)."""

    schema: str
    org_id: str
    seq: int
    parent_hash: str
    run_id: str
    project: str
    flight_sheet: FlightSheetRef
    base_model: str
    cooked_model: str
    dataset: CookDataset
    eval_set: EvalSetRef
    pre: CookSide
    post: CookSide
    lift: CookLift
    approval: Approval
    minted_at: str


def build_cook_payload(body: CookReceiptBody, seq: int, parent_hash: str, minted_at: str) -> CookReceiptPayload:
    """Mirror of receipt.build_payload: every body field plus the chain fields the ledger decides."""
    return CookReceiptPayload(**msgspec.structs.asdict(body), seq=seq, parent_hash=parent_hash, minted_at=minted_at)
