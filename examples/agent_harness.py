"""An agent harness on Defendable: evidence in, OTLP spans streamed, memo submitted, verdict and receipt back.

Run it after `make demo` (it uses the demo org's keys in .stack/), or point it elsewhere with
DEFENDABLE_URL, DEFENDABLE_SUBMITTER_KEY and DEFENDABLE_APPROVER_KEY.
"""

import json
import os
from pathlib import Path
from textwrap import shorten

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from defendable.client import AgentProfile, Client, Usage
from defendable.otel import DefendableSpanExporter

HERE, STACK = Path(__file__).parent, Path(".stack")
URL = os.environ.get("DEFENDABLE_URL") or json.loads((STACK / "state.json").read_text())["gateway_url"]
if os.environ.get("DEFENDABLE_SUBMITTER_KEY"):
    KEYS = {role: os.environ[f"DEFENDABLE_{role.upper()}_KEY"] for role in ("submitter", "approver")}
else:
    KEYS = {k["role"]: k["key"] for k in json.loads((STACK / "demo-org.json").read_text())["keys"]}
T12 = b"T-12: Gross Potential Rent 1,300,000; Vacancy & Credit Loss (65,000); Other Income 15,000"
EVIDENCE = {"t12_operating_statement.pdf": T12, "appraisal.pdf": b"As-is market value: $10,000,000"}

with Client(URL, KEYS["submitter"]) as dfd, Client(URL, KEYS["approver"]) as approver:
    profile = AgentProfile(model="memo-model-1", harness="examples/agent_harness.py", tools=["read_rent_roll"])
    run_id = dfd.create_run("Example memos", "cre_memo_noi_cap_rate_v1@1.1.0", profile, assignment="NOI, cap rate")
    print("run      ", run_id)
    for name, data in EVIDENCE.items():
        print("evidence ", f"{name:<28}", dfd.add_file(run_id, name, data).sha256)

    # The agent's own OpenTelemetry tracing, exported to the run as it works (OTLP/HTTP protobuf).
    provider = TracerProvider()
    exporter = DefendableSpanExporter(dfd, run_id)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("example-harness")
    with tracer.start_as_current_span("invoke_agent memo-agent", attributes={"gen_ai.operation.name": "invoke_agent"}):
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_rent_roll"}
        with tracer.start_as_current_span("execute_tool read_rent_roll", attributes=tool):
            memo = json.loads((HERE / "noi_memo.json").read_text())  # the rent roll's figures, in the memo
        chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "memo-model-1"}
        with tracer.start_as_current_span("chat memo-model-1", attributes=chat) as span:
            span.set_attributes({"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300})
    provider.shutdown()  # flushes the last batch before the submission names the evidence
    print("trail    ", sum(e.steps for e in exporter.exports), "steps in", len(exporter.exports), "OTLP export(s)")

    dfd.submit(run_id, memo, usage=Usage(input_tokens=1200, output_tokens=300, cost="0.0123"))
    run = dfd.wait_for(run_id, ("checked",))
    verdict = run["verdict"]
    print("verdict  ", verdict["severity"], f"{verdict['score']}%", "recommended:", verdict["recommended_action"])
    for finding in run["findings"]:
        print(f"    {finding['status']:<4} {finding['rule_id']:<18}", shorten(finding["message"], 80, placeholder="…"))
    print("bundle   ", run["execution_trail"]["bundle_sha256"])

    approver.approve(run_id, note="NOI traced to the rent-roll tool call.")
    receipt = approver.wait_for(run_id, ("minted",))["receipt"]
    print("receipt  ", receipt["receipt_hash"])
    print("share    ", receipt["links"]["share"])
