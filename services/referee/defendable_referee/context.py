"""What every rule sees: the sheet, the decoded submission, the attached evidence.

The submission is read defensively: the schema rule may already have failed,
and the other rules still check what they can, so nothing here assumes a
shape — every accessor tolerates a wrong type and says so.

The sheet's re-derivation is computed once per check (`rederivation`) and
shared by the math rule (compares the memo's figures) and the policy rule
(applies gates to the sheet's figures, never the agent's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from defendable_canonical.model import EvidenceRef
from defendable_canonical.trail import StepRecord
from defendable_referee.errors import EvaluationError
from defendable_referee.evaluator import parse_expression
from defendable_referee.numeric import fixed, to_decimal
from defendable_referee.quote import SourceTexts
from defendable_referee.sheet import FlightSheet


@dataclass(frozen=True)
class Rederivation:
    """The sheet's own figures. A quantity is in exactly one of values / missing / errors."""

    values: dict[str, Decimal] = field(default_factory=dict)
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # quantity -> absent base inputs
    errors: dict[str, str] = field(default_factory=dict)  # quantity -> why it could not be computed
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # base input -> "value (where)" seen


@dataclass(frozen=True)
class CheckContext:
    sheet: FlightSheet
    document: dict[str, Any]
    evidence: Sequence[EvidenceRef]
    # Evidence id -> the item's decoded UTF-8 text, for the rules that read it
    # (text_rules.py); absent for binary or oversized items.
    evidence_text: Mapping[str, str] = field(default_factory=dict)
    # The run's execution trail, normalised from its OTLP evidence (trail_rules.py);
    # None when the run attached none, or when it could not be read (`trail_error`).
    trail: Sequence[StepRecord] | None = None
    trail_error: str = ""
    # Evidence id -> a local file holding the item's bytes, re-hashed against its sha256 as it
    # was fetched: the Dataset and Compute lanes compute their figures from these files (the
    # referee fetches them only for sheets whose rules read files; evidence_files.py).
    files: Mapping[str, Path] = field(default_factory=dict)
    files_skipped: Mapping[str, str] = field(default_factory=dict)  # evidence id -> why it has no local copy

    # -- evidence ----------------------------------------------------------

    @cached_property
    def evidence_keys(self) -> frozenset[str]:
        """A reference resolves by evidence id, name or sha256 digest."""
        return frozenset(key for ref in self.evidence for key in (ref.id, ref.name, ref.sha256))

    def resolves(self, reference: object) -> bool:
        return isinstance(reference, str) and reference.strip() in self.evidence_keys

    @cached_property
    def _evidence_by_key(self) -> dict[str, EvidenceRef]:
        # Where keys collide, an id beats a name beats a digest, then attachment order.
        by_key: dict[str, EvidenceRef] = {}
        for key, ref in [(r.id, r) for r in self.evidence] + [(r.name, r) for r in self.evidence]:
            by_key.setdefault(key, ref)
        for ref in self.evidence:
            by_key.setdefault(ref.sha256, ref)
        return by_key

    def cited(self, reference: object) -> tuple[EvidenceRef, str | None] | None:
        """The attached item `reference` names (by id, name or sha256) and its text — None
        where the referee has no text it will search — or None if nothing attached is named."""
        ref = self._evidence_by_key.get(reference.strip()) if isinstance(reference, str) else None
        return None if ref is None else (ref, self.texts.text(ref.id))

    @cached_property
    def texts(self) -> SourceTexts:
        """The evidence texts, each normalised at most once per check (quote.py)."""
        return SourceTexts(self.evidence_text)

    # -- submission views --------------------------------------------------

    def items(self, key: str) -> list[Any] | None:
        """`document[key]` if it is a list, else None."""
        value = self.document.get(key)
        return value if isinstance(value, list) else None

    def calculation_objects(self) -> list[tuple[int, dict[str, Any]]]:
        return [(i, c) for i, c in enumerate(self.items("calculations") or []) if isinstance(c, dict)]

    @cached_property
    def calculation_results(self) -> frozenset[str]:
        """Names the agent computed itself (so they are not raw inputs)."""
        return frozenset(c["name"] for _, c in self.calculation_objects() if isinstance(c.get("name"), str))

    def input_values(self) -> list[tuple[str, str, Decimal]]:
        """(name, where, value) for every numeric input the submission states, in document order."""
        found: list[tuple[str, str, Decimal]] = []
        for i, entry in enumerate(self.items("inputs_used") or []):
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                value = to_decimal(entry.get("value"))
                if value is not None:
                    found.append((entry["name"], f"inputs_used[{i}]", value))
        for i, calc in self.calculation_objects():
            inputs = calc.get("inputs")
            if isinstance(inputs, dict):
                for name, raw in inputs.items():
                    value = to_decimal(raw)
                    if value is not None:
                        found.append((name, f"calculations[{i}].inputs", value))
        return found

    # -- the sheet's own figures --------------------------------------------

    @cached_property
    def rederivation(self) -> Rederivation:
        """Plan: 1. gather base inputs, first statement wins, disagreements noted;
        2. evaluate the sheet's derivations in order, each seeing the earlier ones."""
        derived_names = {d.name for d in self.sheet.derivations}
        # 1.
        by_name: dict[str, list[tuple[str, Decimal]]] = {}
        for name, where, value in self.input_values():
            if name not in derived_names:
                by_name.setdefault(name, []).append((where, value))
        base = {name: stated[0][1] for name, stated in by_name.items()}
        conflicts = {
            name: [f"{fixed(value)} ({where})" for where, value in stated]
            for name, stated in by_name.items()
            if len({value for _, value in stated}) > 1  # 1.0 == 1: only numeric disagreement counts
        }
        # 2.
        result = Rederivation(conflicts=conflicts)
        env = dict(base)
        for derivation in self.sheet.derivations:
            expression = parse_expression(derivation.formula)  # validated at load
            absent: set[str] = set()
            for name in expression.names:
                if name in result.missing:
                    absent.update(result.missing[name])
                elif name in result.errors or name not in env:
                    absent.add(name)
            if absent:
                result.missing[derivation.name] = tuple(sorted(absent))
                continue
            try:
                env[derivation.name] = result.values[derivation.name] = expression.evaluate(env)
            except EvaluationError as exc:
                result.errors[derivation.name] = str(exc)
        return result
