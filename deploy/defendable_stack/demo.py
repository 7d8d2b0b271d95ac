"""`python -m defendable_stack demo` — push one real Agent Work run through the running stack.

Plan: 1. make sure the stack is up and ready; 2. reuse (or create) the demo
organisation, whose keys live in .stack/demo-org.json; 3. create a run, upload
three evidence files and a note, submit a CRE loan memo; 4. wait for the
referee's verdict, approve as the named approver; 5. wait for the signed,
chained receipt and its PDF; 6. print `receipt:`, `page:`, `share:`, `pdf:` and `package:` lines and
verify the share link the way a stranger would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

from defendable.client import ApiError, AsyncClient
from defendable_canonical.model import EvidenceRef
from defendable_canonical.verification import all_passed, verify_document
from defendable_canonical.verify_transparency import Trust, parse_key_set
from defendable_gateway.admin import CreatedOrg, create_org

SHEET = "cre_memo_dscr_ltv_v1@1.0.0"
EVIDENCE = {
    "term_sheet.pdf": b"Loan Amount: $7,500,000; Interest Rate: 6.50% fixed; Amortization: 30 years\n",
    "t12.csv": b"month,noi\n2025-12,75000\n...\ntotal,900000\n",
    "appraisal.pdf": b"As-is market value: $10,000,000 (appraisal dated 2026-09-30)\n",
}
# The receipt's references to those files (ids ev_0..), as a run that attached them records them.
EVIDENCE_REFS = [
    EvidenceRef(
        id=f"ev_{i}",
        name=name,
        media_type="application/pdf",
        size=len(data),
        sha256="sha256:" + hashlib.sha256(data).hexdigest(),
    )
    for i, (name, data) in enumerate(EVIDENCE.items())
]


def memo(
    *,
    dscr: str = "1.5821",
    monthly: str = "47405.10",
    ads: str = "568861.22",
    noi: int = 900_000,
    formula: str | None = None,
) -> dict[str, Any]:
    """A CRE loan memo for cre_memo_dscr_ltv_v1 (the hand-checked figures of tests/referee)."""
    return {
        "assignment_id": "asg_cre_0001",
        "agent_summary": "Senior loan of $7,500,000 on a multifamily asset valued at $10,000,000.",
        "inputs_used": [
            {"name": "loan_amount", "value": 7500000, "units": "USD", "evidence_reference": "term_sheet.pdf"},
            {"name": "annual_rate", "value": "0.065", "units": "fraction", "evidence_reference": "term_sheet.pdf"},
            {"name": "amortization_years", "value": 30, "units": "years", "evidence_reference": "term_sheet.pdf"},
            {"name": "noi", "value": str(noi), "units": "USD/year", "evidence_reference": "t12.csv"},
            {"name": "property_value", "value": 10000000, "units": "USD", "evidence_reference": "appraisal.pdf"},
        ],
        "missing_inputs": [],
        "claims": [
            {"text": "Loan of $7,500,000 at 6.50% over 30 years.", "evidence_reference": "term_sheet.pdf"},
            {"text": f"Trailing-twelve-month NOI is ${noi:,}.", "evidence_reference": "t12.csv"},
            {"text": "Appraised value is $10,000,000.", "evidence_reference": "appraisal.pdf"},
        ],
        "calculations": [
            {
                "name": "monthly_payment",
                "formula": "pmt(annual_rate / 12, amortization_years * 12, loan_amount)",
                "inputs": {"loan_amount": 7500000, "annual_rate": "0.065", "amortization_years": 30},
                "result": monthly,
                "units": "USD/month",
                "rounding": 2,
            },
            {
                "name": "annual_debt_service",
                "formula": "12 * pmt(annual_rate / 12, amortization_years * 12, loan_amount)",
                "inputs": {"loan_amount": 7500000, "annual_rate": "0.065", "amortization_years": 30},
                "result": ads,
                "units": "USD/year",
                "rounding": 2,
            },
            {
                "name": "dscr",
                "formula": formula or "noi / annual_debt_service",
                "inputs": {"noi": noi, "annual_debt_service": ads},
                "result": dscr,
                "units": "x",
                "rounding": 4,
            },
            {
                "name": "ltv",
                "formula": "loan_amount / property_value",
                "inputs": {"loan_amount": 7500000, "property_value": 10000000},
                "result": "0.75",
                "units": "ratio",
            },
        ],
        "risks": ["Single-asset concentration."],
        "assumptions": ["NOI before debt service, depreciation and capex."],
        "open_questions": [],
        "final_output": f"Recommend approval: DSCR {dscr}, LTV 0.75.",
        "self_check": "Recomputed every calculation from its inputs.",
    }


async def demo_org(base: Path, database_url: str, gateway: str) -> CreatedOrg:
    """The demo org of earlier demos (its chain grows), or a new one if its keys no longer work."""
    path = base / "demo-org.json"
    if path.exists():
        org = msgspec.json.decode(path.read_bytes(), type=CreatedOrg)
        probe = AsyncClient(gateway, org.keys[0].key)
        try:
            if (await probe.get("/runs?limit=1")).status_code == 200:
                return org
        finally:
            await probe.aclose()
    org = await create_org(database_url, "Harbour Point Capital", approver="Zoë Ångström-Łukasiewicz")
    path.write_bytes(msgspec.json.encode(org))
    path.chmod(0o600)  # API keys
    return org


def say(step: str, detail: str) -> None:
    print(f"  {step:<10}{detail}", flush=True)


REFEREE_START_S = 120.0  # a first start imports the lanes' engines (DuckDB, NumPy) before it answers


async def create_run(submitter: AsyncClient) -> str:
    """The demo's run, once the referee answers: /readyz covers the servers, not the referee,
    which the gateway asks about the sheet (a 503 until it has loaded its library)."""
    deadline = asyncio.get_running_loop().time() + REFEREE_START_S
    waited = False
    while True:
        try:
            return await submitter.create_run(
                "Harbour Point refinancing",
                SHEET,
                {"model": "demo-agent-1", "harness": "defendable demo", "tools": ["calculator"], "runtime": "python"},
                assignment="Assess DSCR and LTV for the Harbour Point refinancing against credit policy.",
            )
        except ApiError as exc:
            if exc.status != 503 or asyncio.get_running_loop().time() >= deadline:
                raise
            if not waited:
                say("referee", "starting: waiting for it to load the Flight Sheet library")
                waited = True
            await asyncio.sleep(0.5)


async def push_run(base: Path, state: dict[str, Any]) -> int:
    gateway = state["gateway_url"]
    org = await demo_org(base, state["env"]["DATABASE_URL"], gateway)
    keys = {k.role: k.key for k in org.keys}
    submitter, approver = AsyncClient(gateway, keys["submitter"]), AsyncClient(gateway, keys["approver"])
    try:
        run_id = await create_run(submitter)
        say("run", f"{run_id}  (org {org.org_id})")
        for name, data in EVIDENCE.items():
            sent = await submitter.add_file(run_id, name, data)
            say("evidence", f"{name:<15} {sent.sha256}")
        await submitter.add_note(run_id, "analyst-note", "Rent roll reviewed on site; occupancy 96%.")
        await submitter.submit(run_id, memo())
        run = await submitter.wait_for(run_id, ("checked",))
        verdict = run["verdict"]
        say(
            "verdict", f"{verdict['severity']}, score {verdict['score']}%, recommended: {verdict['recommended_action']}"
        )
        await approver.approve(run_id, note="Coverage and leverage inside policy.")
        await approver.wait_for(run_id, ("rendered",), timeout=120)
        _, receipt = await approver.receipt(run_id)
        pdf = await approver.get(f"/receipts/{receipt['receipt_hash']}.pdf")
        pdf.raise_for_status()
        out = base / "receipts" / f"receipt-{receipt['receipt_hash'][7:23]}.pdf"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(pdf.content)
        shared = (await submitter.get(receipt["links"]["share"].removeprefix(gateway))).json()
        key_set = (await submitter.get("/.well-known/defendable-keys.json")).content
        checks = verify_document(shared, Trust(keys=parse_key_set(key_set), source="this stack's key set"))
        say("verified", ", ".join(f"{c.name} {c.outcome}" for c in checks))
        package = await approver.get(f"/receipts/{receipt['receipt_hash']}/package")
        package.raise_for_status()
        zipped = out.with_suffix(".zip")
        zipped.write_bytes(package.content)
        print(f"receipt: {receipt['receipt_hash']}")
        print(f"page: {receipt['links']['share'].replace('/share/', '/r/')}")
        print(f"share: {receipt['links']['share']}")
        print(f"pdf: {out}")
        print(f"package: {zipped}  (.venv/bin/defendable verify it, or open verify.html inside it)")
        return 0 if all_passed(checks) else 1
    finally:
        await submitter.aclose()
        await approver.aclose()


def run_demo(base: Path, state_path: Path) -> int:
    state = json.loads(state_path.read_text())
    print("Pushing one Agent Work run through the stack:")
    return asyncio.run(push_run(base, state))
