"""/cooks: a fine-tune's pre/post evals on one Flight Sheet, and its cook receipt (issue 3).

Thin, as routes.py: validate, record, publish a command (RequestCook, DecideCook), answer
202; the read model (cook_store.py) catches up from the cook events. Intake admits a cook
only when every run it names is a checked run of this org; the referee decides whether
the lift is real; a human approves an eligible cook, and only then does the ledger mint.

Bounds: an eval set and each side at most MAX_ITEMS (10,000, the referee's lift.MAX_ITEMS)
entries (400 beyond), ids and names bounded, digests `sha256:<64 hex>`, the body at most
MAX_COOK_BODY_BYTES (8 MiB, 413 beyond), and the command it becomes at most
MAX_COOK_COMMAND_BYTES (413 beyond): one JetStream message, less room for headers and for the
score intake adds to each pair, so the CookRequested it becomes fits one message too. The field
bounds already keep a 10,000-item command under ~6.1 MB; the byte check is the backstop.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import Parameter
from msgspec import Meta

from defendable_canonical.cook import CookDataset, EvalItem, EvalSet, eval_set_problems
from defendable_canonical.events import CookPair, DecideCook, RequestCook, encode
from defendable_runtime.messaging import MAX_MESSAGE_BYTES

from . import cook_store, store
from .auth import Principal
from .routes import command_base, holder, long_poll, principal_of, problem, raw_or_none, receipt_doc, require_key
from .schemas import Name, Note
from .waiters import MAX_WAIT_S

MAX_ITEMS = 10_000
MAX_COOK_BODY_BYTES = 8 * 1024 * 1024  # of JSON; a compact 10,000-item body is at most ~6.1 MB
# intake's MAX_COOK_EVENT_BYTES (one stored message less room for headers) less 512 KiB: what
# intake adds, the score of each of ≤ 20,000 pairs (≤ 20 bytes each) and each side's sheet.
MAX_COOK_COMMAND_BYTES = MAX_MESSAGE_BYTES - 64 * 1024 - 512 * 1024
_MOST_LISTED = 5

Digest = Annotated[str, Meta(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<64 lowercase hex>")]
ItemId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")]
RunId = Annotated[str, Meta(pattern=r"^run_[0-9a-f]{32}$")]
Version = Annotated[str, Meta(min_length=1, max_length=100)]


class EvalItemIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: ItemId
    sha256: Digest  # of the item's content


class EvalSetIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    items: Annotated[list[EvalItemIn], Meta(min_length=1, max_length=MAX_ITEMS)]


class DatasetIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    version: Version
    sha256: Digest


class CookPairIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    item_id: ItemId
    run_id: RunId  # a checked run of this org that evaluated the item


Side = Annotated[list[CookPairIn], Meta(min_length=1, max_length=MAX_ITEMS)]


class CookRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project: Name
    base_model: Name  # the model of every pre run
    cooked_model: Name  # the model of every post run
    dataset: DatasetIn  # what the cooked model was trained on
    eval_set: EvalSetIn  # frozen and ordered: its hash is over the items in this order
    pre: Side
    post: Side


class CookAccepted(msgspec.Struct, frozen=True, kw_only=True):
    cook_id: str
    status: str


class CookDecisionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    note: Note = ""


_COOK_ID = re.compile(r"cook_[0-9a-f]{32}")


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:_MOST_LISTED])
    return shown if len(names) <= _MOST_LISTED else f"{shown} and {len(names) - _MOST_LISTED} more"


def request_problems(data: CookRequest) -> list[str]:
    """What makes a well-typed request not a cook; empty when it is one (the referee checks again)."""
    problems = eval_set_problems([EvalItem(id=item.id, sha256=item.sha256) for item in data.eval_set.items])
    wanted = [item.id for item in data.eval_set.items]
    known = set(wanted)
    for label, pairs in (("pre", data.pre), ("post", data.post)):
        items = Counter(pair.item_id for pair in pairs)
        if repeated := [item for item, count in items.items() if count > 1]:
            problems.append(f"{label} lists items more than once: {_listed(repeated)}")
        if missing := [item for item in wanted if item not in items]:
            problems.append(f"{label} has no run for eval-set items: {_listed(missing)}")
        if extra := [item for item in items if item not in known]:
            problems.append(f"{label} names items not in the eval set: {_listed(extra)}")
        if reused := [run for run, count in Counter(pair.run_id for pair in pairs).items() if count > 1]:
            problems.append(f"{label} uses runs for more than one item: {_listed(reused)}")
    if shared := sorted({p.run_id for p in data.pre} & {p.run_id for p in data.post}):
        problems.append(f"runs on both sides: {_listed(shared)}")
    if data.base_model == data.cooked_model:
        problems.append(f"base_model and cooked_model are both {data.base_model!r}: a cook compares two models")
    return problems


@post(
    "/cooks",
    status_code=202,
    request_max_body_size=MAX_COOK_BODY_BYTES,
    summary="Request a cook receipt: pre (base model) and post (cooked model) runs over one eval set",
    guards=[require_key],
    opt={"role": "submitter"},
)
async def request_cook(request: Request[Any, Any, Any], data: CookRequest) -> CookAccepted:
    principal = principal_of(request)
    if problems := request_problems(data):
        raise problem(422, "; ".join(problems))
    cook_id = cook_store.COOK_PREFIX + secrets.token_hex(16)
    dataset = CookDataset(name=data.dataset.name, version=data.dataset.version, sha256=data.dataset.sha256)
    command = RequestCook(
        **command_base(principal, cook_id),
        project=data.project,
        base_model=data.base_model,
        cooked_model=data.cooked_model,
        dataset=dataset,
        eval_set=EvalSet(
            name=data.eval_set.name, items=[EvalItem(id=i.id, sha256=i.sha256) for i in data.eval_set.items]
        ),
        pre=[CookPair(item_id=p.item_id, run_id=p.run_id) for p in data.pre],
        post=[CookPair(item_id=p.item_id, run_id=p.run_id) for p in data.post],
    )
    if (size := len(encode(command))) > MAX_COOK_COMMAND_BYTES:
        raise problem(
            413,
            f"this cook makes a {size}-byte command; the limit is {MAX_COOK_COMMAND_BYTES}:"
            " shorten its ids or split the eval set",
        )
    await cook_store.record_requested_cook(
        holder.res.pool, principal.org_id, cook_id, data.project, data.base_model, data.cooked_model,
        msgspec.json.encode(dataset), data.eval_set.name, len(data.eval_set.items),
    )  # fmt: skip
    await holder.res.bus.command(command)
    return CookAccepted(cook_id=cook_id, status="requested")


async def own_cook(principal: Principal, cook_id: str) -> dict[str, Any]:
    """The cook, if it belongs to the caller's org. Another org's cook is simply not found."""
    well_formed = _COOK_ID.fullmatch(cook_id) is not None
    cook = await cook_store.get_cook(holder.res.pool, principal.org_id, cook_id) if well_formed else None
    if cook is None:
        raise problem(404, f"no cook {cook_id[:80]} in this organisation")
    return cook


def refusal_reasons(cook: dict[str, Any]) -> list[str]:
    """Why a refused cook was refused: the referee's reasons, or intake's refusal of the request."""
    if cook["decision"] is not None:
        reasons: list[str] = msgspec.json.decode(cook["decision"])["reasons"]
        if reasons:
            return reasons
    refusals = [msgspec.json.decode(r) for r in cook["refusals"]]
    return [r["reason"] for r in refusals if r["command"] == "RequestCook"]


# `timeout` is the HTTP long-poll limit from the request, spent over several waits.
async def wait_for_stage(principal: Principal, cook: dict[str, Any], until: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Hold the request until the cook reaches `until` (or ends: refused, rejected), at most `timeout` s."""
    return await long_poll(principal, cook, until, timeout, stages=cook_store.STAGES, id_key="cook_id", reload=own_cook)


@get("/cooks/{cook_id:str}", summary="A cook: stage, the referee's decision and lift, receipt", guards=[require_key])
async def get_cook(
    request: Request[Any, Any, Any],
    cook_id: str,
    until: str | None = Parameter(default=None, description="long-poll: answer once the cook reaches this stage"),
    # `timeout` is the HTTP long-poll query parameter (part of the API), not an asyncio timeout.
    timeout: float = Parameter(default=10.0, gt=0, le=MAX_WAIT_S, description="long-poll limit in seconds"),  # noqa: ASYNC109
) -> dict[str, Any]:
    principal = principal_of(request)
    cook = await own_cook(principal, cook_id)
    if until is not None:
        cook = await wait_for_stage(principal, cook, until, timeout)
    receipt = None
    if cook["receipt_hash"]:
        row = await store.get_receipt(holder.res.pool, cook["receipt_hash"])  # beside the runs' receipts
        receipt = None if row is None else receipt_doc(row)
    return {
        "cook_id": cook_id,
        "project": cook["project"],
        "base_model": cook["base_model"],
        "cooked_model": cook["cooked_model"],
        "dataset": raw_or_none(cook["dataset"]),
        "eval_set": {"name": cook["eval_set_name"], "items": cook["eval_set_items"]},
        "stage": cook["stage"],
        "created_at": cook["created_at"].isoformat(),
        "decision": raw_or_none(cook["decision"]),
        "refusal_reasons": refusal_reasons(cook) if cook["stage"] == "refused" else [],
        "approval": raw_or_none(cook["approval"]),
        "receipt": receipt,
        "refusals": [msgspec.Raw(bytes(r)) for r in cook["refusals"]],
    }


async def decide(
    request: Request[Any, Any, Any], cook_id: str, data: CookDecisionRequest | None, decision: str
) -> CookAccepted:
    principal = principal_of(request)
    cook = await own_cook(principal, cook_id)
    stage = cook["stage"]
    if stage == "refused":
        raise problem(409, f"cook {cook_id} was refused, so it cannot be decided: {'; '.join(refusal_reasons(cook))}")
    if stage in ("approved", "rejected", "minted"):
        raise problem(409, f"cook {cook_id} was already decided ({stage})")
    if stage != "checked":
        raise problem(409, f"cook {cook_id} has not been checked yet (stage {stage}); decide once it is checked")
    await holder.res.bus.command(
        DecideCook(
            **command_base(principal, cook_id),
            decision=decision,  # type: ignore[arg-type]  # "approve" | "reject" from the two routes below
            approver=principal.label,
            note=data.note if data else "",
        )
    )
    return CookAccepted(cook_id=cook_id, status=f"{decision} requested")


@post(
    "/cooks/{cook_id:str}/approve",
    status_code=202,
    summary="Approve a checked, eligible cook: the ledger mints its cook receipt",
    guards=[require_key],
    opt={"role": "approver"},
)
async def approve_cook(
    request: Request[Any, Any, Any], cook_id: str, data: CookDecisionRequest | None = None
) -> CookAccepted:
    return await decide(request, cook_id, data, "approve")


@post(
    "/cooks/{cook_id:str}/reject",
    status_code=202,
    summary="Reject a checked, eligible cook: no receipt",
    guards=[require_key],
    opt={"role": "approver"},
)
async def reject_cook(
    request: Request[Any, Any, Any], cook_id: str, data: CookDecisionRequest | None = None
) -> CookAccepted:
    return await decide(request, cook_id, data, "reject")
