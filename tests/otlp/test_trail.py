"""The execution trail's hashes: a step hashes alone, the bundle hashes the ordered step hashes,
and one step verifies against the bundle without any other step — all recomputable by an
outsider with nothing but SHA-256 and RFC 8785."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import msgspec
import pytest
import rfc8785

from defendable_canonical.jcs import CanonicalError, canonicalize
from defendable_canonical.trail import (
    TRAIL_SCHEMA,
    KindCounts,
    StepRecord,
    bundle_hash,
    decode_step,
    step_bytes,
    step_hash,
    step_problem,
    summarise,
    verify_step,
)

FIXED = StepRecord(
    seq=3,
    trace_id="5b8efff798038103d269b633813fc60c",
    span_id="eee19b7ec3c1b174",
    parent_span_id="eee19b7ec3c1b173",
    kind="tool",
    operation="execute_tool",
    name="execute_tool get_weather",
    service="support-agent",
    tool_name="get_weather",
    tool_call_id="call_VSPygqKTWdrhaFErNvMV18Yl",
    arguments_sha256="sha256:2e7d8c497295e4f8ffbf85c5a040daebf2f6336299cb06e6aba164e74c7707d8",  # {"city": "Paris"}
    result_sha256="sha256:98c6186d0fc6cd65e76d4d8a17e71e6a2fc0b7f7c2cd0011e2219d3cd10ba4c5",  # {"temp_c": 21.5}
    start_ns="1718000000402000000",
    end_ns="1718000000432000000",
    status="ok",
)
# Golden values: if either changes, every stored trail stops verifying. Change the schema instead.
FIXED_BYTES = (
    b'{"arguments_sha256":"sha256:2e7d8c497295e4f8ffbf85c5a040daebf2f6336299cb06e6aba164e74c7707d8",'
    b'"end_ns":"1718000000432000000","kind":"tool","name":"execute_tool get_weather",'
    b'"operation":"execute_tool","parent_span_id":"eee19b7ec3c1b173",'
    b'"result_sha256":"sha256:98c6186d0fc6cd65e76d4d8a17e71e6a2fc0b7f7c2cd0011e2219d3cd10ba4c5","seq":3,'
    b'"service":"support-agent","span_id":"eee19b7ec3c1b174","start_ns":"1718000000402000000",'
    b'"status":"ok","tool_call_id":"call_VSPygqKTWdrhaFErNvMV18Yl","tool_name":"get_weather",'
    b'"trace_id":"5b8efff798038103d269b633813fc60c"}'
)
FIXED_HASH = "sha256:3475d183c45e0dbb2fc07db2b4616e900d147b33c248319914e10ad2f7532edb"
EMPTY_BUNDLE = "sha256:2b975ac66691dcdb59e2f4adc59db884394f3fafafbd47f62da47eeb15553e74"


def steps(n: int) -> list[StepRecord]:
    return [
        msgspec.structs.replace(
            FIXED,
            seq=i + 1,
            span_id=f"{i + 1:016x}",
            start_ns=str(1_718_000_000_000_000_000 + i),
            input_tokens=10 * i,
            output_tokens=i,
            cost="0.001" if i % 2 else None,
        )
        for i in range(n)
    ]


def outsider_bundle(hashes: Sequence[str]) -> str:
    """The bundle construction as documented, with the standard library only."""
    text = '{"schema":"defendablecloud.trail/v1","steps":[' + ",".join(f'"{h}"' for h in hashes) + "]}"
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_a_fixed_step_hashes_to_its_golden_value() -> None:
    assert FIXED.arguments_sha256 == "sha256:" + hashlib.sha256(b'{"city": "Paris"}').hexdigest()
    assert FIXED.result_sha256 == "sha256:" + hashlib.sha256(b'{"temp_c": 21.5}').hexdigest()
    assert step_bytes(FIXED) == FIXED_BYTES
    assert step_hash(FIXED) == FIXED_HASH
    assert step_hash(FIXED) == "sha256:" + hashlib.sha256(FIXED_BYTES).hexdigest()


def test_step_bytes_are_rfc8785_by_an_independent_implementation() -> None:
    for step in [FIXED, *steps(5)]:
        assert step_bytes(step) == rfc8785.dumps(msgspec.to_builtins(step))


def test_fields_at_their_default_are_left_out_so_new_optional_fields_keep_old_hashes() -> None:
    encoded = json.loads(step_bytes(FIXED))
    assert "model" not in encoded and "flags" not in encoded and "cost" not in encoded
    assert decode_step(step_bytes(FIXED)) == FIXED


def test_unix_nanos_are_strings_because_they_exceed_the_i_json_range() -> None:
    with pytest.raises(CanonicalError, match="I-JSON"):
        canonicalize({"start_ns": FIXED.start_unix_nano})
    assert FIXED.start_unix_nano == 1_718_000_000_402_000_000


def test_the_bundle_is_a_flat_hash_an_outsider_can_recompute() -> None:
    hashes = [step_hash(s) for s in steps(4)]
    assert bundle_hash(hashes) == outsider_bundle(hashes)
    assert bundle_hash([]) == outsider_bundle([]) == EMPTY_BUNDLE
    assert TRAIL_SCHEMA == "defendablecloud.trail/v1"


def test_the_bundle_depends_on_step_order() -> None:
    hashes = [step_hash(s) for s in steps(3)]
    assert bundle_hash(hashes) != bundle_hash(hashes[::-1])


def test_a_malformed_step_hash_cannot_enter_a_bundle() -> None:
    with pytest.raises(ValueError, match="step hash 2 is not a sha256 digest"):
        bundle_hash([step_hash(FIXED), "sha256:XYZ"])


def test_one_step_verifies_against_the_bundle_on_its_own() -> None:
    trail = steps(6)
    hashes = [step_hash(s) for s in trail]
    bundle = bundle_hash(hashes)
    shown = decode_step(step_bytes(trail[3]))  # only this step's bytes travel, plus the hash list
    assert verify_step(shown, hashes, bundle)
    assert step_problem(shown, hashes, bundle) is None


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s: msgspec.structs.replace(s, output_tokens=999), "hashes to sha256:"),
        (lambda s: msgspec.structs.replace(s, seq=2), "step 2 hashes to"),
        (lambda s: msgspec.structs.replace(s, seq=99), "seq 99 is outside the trail's 6 steps"),
        (lambda s: msgspec.structs.replace(s, flags=[]), "hashes to sha256:"),
    ],
)
def test_a_tampered_step_does_not_verify_and_the_reason_says_why(tamper: object, reason: str) -> None:
    trail = steps(6)
    trail[3] = msgspec.structs.replace(trail[3], flags=["missing_parent"])
    hashes = [step_hash(s) for s in trail]
    bundle = bundle_hash(hashes)
    changed = tamper(trail[3])  # type: ignore[operator]  # the table's lambdas
    assert not verify_step(changed, hashes, bundle)
    problem = step_problem(changed, hashes, bundle)
    assert problem is not None and reason in problem


def test_a_step_list_that_is_not_the_bundles_does_not_verify() -> None:
    trail = steps(4)
    hashes = [step_hash(s) for s in trail]
    bundle = bundle_hash(hashes)
    swapped = [hashes[1], hashes[0], *hashes[2:]]
    problem = step_problem(trail[0], swapped, bundle)
    assert problem is not None and "not to the bundle" in problem
    assert not verify_step(trail[0], hashes[:3], bundle)
    assert not verify_step(trail[0], [*hashes[:3], "sha256:nope"], bundle)


def test_the_summary_carries_the_bundle_and_the_trails_figures() -> None:
    trail = steps(4)
    trail[2] = msgspec.structs.replace(trail[2], kind="llm", status="error", flags=["missing_parent"])
    summary = summarise(trail)
    assert summary.bundle_sha256 == bundle_hash([step_hash(s) for s in trail])
    assert summary.steps == 4
    assert summary.kinds == KindCounts(tool=3, llm=1)
    assert (summary.input_tokens, summary.output_tokens) == (60, 6)
    assert summary.cost == "0.002"
    assert summary.errors == 1
    assert summary.problems == ["missing_parent"]
    assert summary.start_ns == "1718000000000000000" and summary.end_ns == "1718000000432000000"
    assert summary.trace_ids == ["5b8efff798038103d269b633813fc60c"]
    assert rfc8785.dumps(msgspec.to_builtins(summary)) == canonicalize(msgspec.to_builtins(summary))


def test_an_empty_trail_has_a_summary_too() -> None:
    summary = summarise([])
    assert summary.steps == 0 and summary.bundle_sha256 == EMPTY_BUNDLE
    assert summary.start_ns is None and summary.cost is None
