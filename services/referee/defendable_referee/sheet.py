"""Flight Sheets: the data a run is checked against (DESIGN.md §1).

A sheet is data, not code. It is hashed as the RFC 8785 canonical form of the
JSON value *as read from its file* (not of the decoded Struct), so a default
this service fills in cannot move the hash a receipt names (a field it does not
know is refused at load). Everything a sheet refers to — rule kinds and params, formulas,
tolerance classes, gate quantities — is validated when the library loads, so a
typo fails the build and never a customer's run.

Names a sheet relies on must be defined in the sheet itself, or it is refused
at load (a rule reading a field nothing defines would otherwise be a silent
"open" or pass on every run): structure `required` / `non_empty` keys must be
properties of `required_output_schema`; a derivation's formula may read only
earlier derivations and names declared in `conventions` — the conventions are
the names an agent is told to state, so a base input the sheet reads but never
documents is an error, not an input no memo can supply; and a derivation's
`excludes` may name only conventions or other derivations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import msgspec

from defendable_canonical.digest import Digest, sha256_digest
from defendable_canonical.jcs import canonicalize
from defendable_canonical.model import FlightSheetRef, Lane, Tier
from defendable_referee.compute import params as compute_params
from defendable_referee.dataset import params as dataset_params
from defendable_referee.errors import EvaluationError, FlightSheetInvalid
from defendable_referee.errors import UnknownFlightSheet as UnknownFlightSheet  # re-exported for app.py
from defendable_referee.evaluator import parse_expression
from defendable_referee.lift import MAX_ITEMS, MIN_ITEMS, check_noise_floor
from defendable_referee.numeric import MAX_PLACES, to_decimal
from defendable_referee.output_schema import compile_problem
from defendable_referee.publication import LOCK_NAME, LockError, publication_problems, read_lock

RuleKind = Literal["structure", "schema", "math", "evidence", "policy", "citation", "extraction", "trail"]
CORE_RULE_KINDS: tuple[RuleKind, ...] = (
    "structure",
    "schema",
    "math",
    "evidence",
    "policy",
    "citation",
    "extraction",
    "trail",
)
GateOp = Literal[">=", "<=", ">", "<"]
Count = Annotated[int, msgspec.Meta(ge=1, le=10_000)]  # every bound a sheet sets on what a rule reports


class StructureParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    required: list[str]  # top-level keys that must be present
    non_empty: list[str] = []  # keys whose value may not be null, blank, [] or {}


class SchemaParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_errors_reported: Count = 5


class MathParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_calculations: Count = 200
    rederive: bool = True  # also re-derive the sheet's quantities from base inputs
    reconcile: bool = False  # also: a derived quantity stated beyond its own result is one figure (rules.py)


class EvidenceParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_claims: Count = 200
    undisclosed_input_tier: Tier = "mid"


class PolicyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    gates: list[str] = []  # gate ids, in order; empty means every gate of the sheet


# The citation and extraction kinds read the evidence's text (text_rules.py, quote.py).
QuoteMatch = Literal["exact", "normalised"]  # "normalised" also accepts an exact match


class CitationParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_claims: Count = 200
    require_quote: bool = True  # False: a claim may cite without quoting; a quote given is still checked
    match: QuoteMatch = "normalised"
    min_quote_chars: Count = 8  # counted after normalising
    max_quote_chars: Count = 2000

    def __post_init__(self) -> None:
        _check_quote_bounds(self.min_quote_chars, self.max_quote_chars)


class ExtractionParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_facts: Count = 200
    match: QuoteMatch = "normalised"
    min_quote_chars: Count = 8
    max_quote_chars: Count = 1000
    fraction_units: list[str] = []  # units in which "12.5%" reads 0.125 (in any other it reads 12.5)
    currency_units: dict[str, Literal["$", "€", "£"]] = {}  # unit -> the only symbol its numbers may carry

    def __post_init__(self) -> None:
        _check_quote_bounds(self.min_quote_chars, self.max_quote_chars)
        for unit in [*self.fraction_units, *self.currency_units]:
            if unit != unit.strip().lower():
                raise ValueError(f"unit {unit!r} must be lower-case and trimmed")


def _check_quote_bounds(least: int, most: int) -> None:
    if least > most:
        raise ValueError(f"min_quote_chars {least} exceeds max_quote_chars {most}")


class RequiredTool(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tool the agent must have called, successfully, for the work to stand."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # the step's tool name (gen_ai.tool.name)
    min_calls: Count = 1
    why: Annotated[str, msgspec.Meta(max_length=500)] = ""  # shown in the finding: what rests on it


class TrailParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Checks over the run's execution trail (OTLP evidence, trail_rules.py)."""

    tools: Annotated[list[RequiredTool], msgspec.Meta(max_length=50)] = []
    integrity_tier: Tier = "mid"  # cycles, duplicate span ids, end before start


Params = (
    StructureParams
    | SchemaParams
    | MathParams
    | EvidenceParams
    | PolicyParams
    | CitationParams
    | ExtractionParams
    | TrailParams
)
_PARAMS: dict[str, type[msgspec.Struct]] = {
    "structure": StructureParams,
    "schema": SchemaParams,
    "math": MathParams,
    "evidence": EvidenceParams,
    "policy": PolicyParams,
    "citation": CitationParams,
    "extraction": ExtractionParams,
    "trail": TrailParams,
    # The Dataset and Compute lanes' kinds live with their checks; a name may not be taken twice.
    **dataset_params.PARAMS,
    **compute_params.PARAMS,
}
assert len(_PARAMS) == len(CORE_RULE_KINDS) + len(dataset_params.PARAMS) + len(compute_params.PARAMS)
PARAMS_BY_KIND = _PARAMS  # public name for format_schema.py; one dict, so new kinds appear in both
RULE_KINDS: tuple[str, ...] = tuple(_PARAMS)
# The kinds whose rules compute from the evidence files themselves (the Dataset and Compute lanes).
FILE_RULE_KINDS = frozenset(dataset_params.PARAMS) | frozenset(compute_params.PARAMS)


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One check, in sheet order. `params` are decoded per kind by `rules.params_for`."""

    id: str
    kind: str  # validated against RULE_KINDS at load; kept `str` so the dispatcher can refuse unknowns
    tier: Tier
    params: dict[str, Any] = {}


class Tolerance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Compare a declared number with `expected` rounded half-up to `places`, within `absolute`."""

    absolute: str  # decimal string
    places: int
    note: str = ""

    @property
    def absolute_decimal(self) -> Decimal:
        value = to_decimal(self.absolute)
        assert value is not None, "validated at load"
        return value


class Tolerances(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    classes: dict[str, Tolerance]
    units: dict[str, str] = {}  # lower-cased unit text -> class name
    default_class: str

    def for_units(self, units: object) -> Tolerance:
        """The class for a calculation's `units`; unknown units get the (strict) default."""
        key = units.strip().lower() if isinstance(units, str) else ""
        return self.classes[self.units.get(key, self.default_class)]


class Derivation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A quantity the sheet re-derives itself, independent of the agent's formulas.

    Names in `formula` that are not earlier derivations are base inputs, read
    from the submission's `inputs_used` and calculation inputs.
    """

    name: str
    formula: str
    tolerance: str  # a class in Tolerances.classes
    description: str = ""
    # Items the quantity is defined without (NOI excludes debt service): the memo's
    # calculation of `name` may not read them, directly or through its own calculations.
    excludes: list[str] = []


class Gate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A policy bound on a re-derived quantity; `>=` / `<=` are inclusive."""

    id: str
    quantity: str
    op: GateOp
    threshold: str  # decimal string
    description: str = ""

    @property
    def threshold_decimal(self) -> Decimal:
        value = to_decimal(self.threshold)
        assert value is not None, "validated at load"
        return value


class CookPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a cook (a fine-tune's pre/post evals on this sheet) must beat its base (lift.decide_cook).

    A cook's receipt mints only when the lower bound of its paired-bootstrap lift is strictly
    above `noise_floor` (score points: how much two runs of one model may differ by chance on
    this sheet), on at least `min_items` eval-set items. The defaults (0, lift.MIN_ITEMS) are
    what a sheet without a `cook` member declares; the hash is of the file, so they move none.
    """

    noise_floor: str = "0"  # a decimal string of score points in [0, 100], at most four decimals
    min_items: Annotated[int, msgspec.Meta(ge=MIN_ITEMS, le=MAX_ITEMS)] = MIN_ITEMS

    def __post_init__(self) -> None:
        check_noise_floor(self.noise_floor)  # LiftError is a ValueError: the loader names the sheet


class FlightSheet(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_uri: str = msgspec.field(default="", name="$schema")  # optional: format_schema.FORMAT_ID, for editors
    id: str
    version: str
    lane: Lane
    title: str
    assignment_instructions: str
    required_output_schema: dict[str, Any]
    rules: list[Rule]
    tolerances: Tolerances
    derivations: list[Derivation] = []
    gates: list[Gate] = []
    conventions: dict[str, str] = {}  # documentation for agents: name -> meaning
    cook: CookPolicy = CookPolicy()  # what a cook evaluated on this sheet must beat

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def gates_for(self, params: PolicyParams) -> list[Gate]:
        by_id = {gate.id: gate for gate in self.gates}
        return [by_id[gate_id] for gate_id in params.gates] if params.gates else list(self.gates)


def params_for(rule: Rule) -> msgspec.Struct:
    """The rule's params decoded for its kind (the Struct PARAMS_BY_KIND names); raises
    msgspec.ValidationError, or KeyError for an unknown kind."""
    return msgspec.convert(rule.params, type=_PARAMS[rule.kind])


class LoadedSheet(msgspec.Struct, frozen=True, kw_only=True):
    """A validated sheet and the digest of its file's canonical JSON."""

    sheet: FlightSheet
    sha256: Digest
    raw: bytes = b""  # the file's bytes, served as published (GET /flight-sheets/{id}@{version})

    def ref(self) -> FlightSheetRef:
        """What a Checked event and a receipt name: id, version, sha256."""
        return FlightSheetRef(id=self.sheet.id, version=self.sheet.version, sha256=self.sha256)

    @property
    def lane(self) -> Lane:
        return self.sheet.lane

    @property
    def title(self) -> str:
        return self.sheet.title


class Library:
    """Flight Sheets by `id@version`."""

    def __init__(self, sheets: Iterable[LoadedSheet]) -> None:
        self._sheets: dict[str, LoadedSheet] = {}
        for loaded in sheets:
            if loaded.sheet.key in self._sheets:
                raise FlightSheetInvalid(f"flight sheet {loaded.sheet.key} is defined twice")
            self._sheets[loaded.sheet.key] = loaded

    def get(self, id_or_key: str, version: str | None = None) -> LoadedSheet:
        """`get("cre_memo_dscr_ltv_v1@1.0.0")` or `get("cre_memo_dscr_ltv_v1", "1.0.0")`."""
        key = id_or_key if version is None else f"{id_or_key}@{version}"
        try:
            return self._sheets[key]
        except KeyError:
            known = ", ".join(sorted(self._sheets))
            raise UnknownFlightSheet(f"unknown flight sheet {key!r}; known: {known}") from None

    def get_ref(self, key: str) -> LoadedSheet:
        """`get` for an `id@version` string, as a request-reply query carries it."""
        return self.get(key)

    def keys(self) -> list[str]:
        return sorted(self._sheets)

    def digests(self) -> dict[str, str]:
        """`id@version` -> sha256, what the lock file pins."""
        return {key: loaded.sha256 for key, loaded in self._sheets.items()}

    def sheets(self) -> list[LoadedSheet]:
        return [self._sheets[key] for key in sorted(self._sheets)]

    def __len__(self) -> int:
        return len(self._sheets)


def load_library(directory: Traversable | Path | None = None) -> Library:
    """Every `*.json` in `directory` (default: the packaged `flight_sheets/`), validated, hashed,
    and matched against the directory's lock of published hashes (publication.py)."""
    root: Traversable = directory if directory is not None else packaged_directory()
    files = sorted((f for f in root.iterdir() if f.is_file() and f.name.endswith(".json")), key=lambda f: f.name)
    if not files:
        raise FlightSheetInvalid(f"no flight sheets (*.json) in {root}")
    library = Library(load_sheet(f.read_bytes(), source=f.name) for f in files)
    lock = root / LOCK_NAME
    if not lock.is_file():
        raise FlightSheetInvalid(f"{root} has no {LOCK_NAME}: run `defendable flight-sheet publish {root}`")
    try:
        problems = publication_problems(read_lock(lock.read_text("utf-8")), library.digests())
    except LockError as exc:
        raise FlightSheetInvalid(str(exc)) from None
    if problems:
        raise FlightSheetInvalid(f"{root}: " + "; ".join(problems))
    return library


def packaged_directory() -> Traversable:
    return resources.files(__package__) / "flight_sheets"


def load_sheet(data: bytes, *, source: str) -> LoadedSheet:
    """Decode, validate and hash one sheet; errors name `source`."""
    try:
        value = msgspec.json.decode(data)
        sheet = msgspec.convert(value, type=FlightSheet)
        _validate(sheet)
        digest = sha256_digest(canonicalize(value))
    except FlightSheetInvalid as exc:
        raise FlightSheetInvalid(f"{source}: {exc}") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise FlightSheetInvalid(f"{source}: {exc}") from None
    return LoadedSheet(sheet=sheet, sha256=digest, raw=data)


def _validate(sheet: FlightSheet) -> None:
    if not sheet.rules:
        raise FlightSheetInvalid("a flight sheet needs at least one rule")
    try:
        jsonschema.Draft202012Validator.check_schema(sheet.required_output_schema)
    except jsonschema.SchemaError as exc:
        raise FlightSheetInvalid(f"required_output_schema is not a valid JSON Schema: {exc.message}") from None
    problem = compile_problem(sheet.required_output_schema)
    if problem is not None:
        raise FlightSheetInvalid(f"required_output_schema cannot be compiled: {problem}")
    seen: set[str] = set()
    for rule in sheet.rules:
        if rule.id in seen:
            raise FlightSheetInvalid(f"rule id {rule.id!r} is used twice")
        seen.add(rule.id)
        if rule.kind not in RULE_KINDS:
            raise FlightSheetInvalid(f"rule {rule.id!r} has unknown kind {rule.kind!r}")
        try:
            params_for(rule)
        except msgspec.ValidationError as exc:
            raise FlightSheetInvalid(f"rule {rule.id!r} params: {exc}") from None
    _validate_tolerances(sheet.tolerances)
    derived = _validate_derivations(sheet.derivations, sheet.tolerances.classes)
    _validate_names(sheet)
    gate_ids: set[str] = set()
    for gate in sheet.gates:
        if gate.quantity not in derived:
            raise FlightSheetInvalid(f"gate {gate.id!r} bounds {gate.quantity!r}, which no derivation defines")
        if to_decimal(gate.threshold) is None:
            raise FlightSheetInvalid(f"gate {gate.id!r} threshold {gate.threshold!r} is not a decimal string")
        gate_ids.add(gate.id)
    for rule in sheet.rules:
        params = params_for(rule)
        if isinstance(params, PolicyParams):
            if not sheet.gates:
                raise FlightSheetInvalid(f"policy rule {rule.id!r} has no gates to apply")
            for gate_id in params.gates:
                if gate_id not in gate_ids:
                    raise FlightSheetInvalid(f"rule {rule.id!r} names unknown gate {gate_id!r}")


def _validate_names(sheet: FlightSheet) -> None:
    """Every field and name a rule or derivation relies on is one the sheet defines (module docstring)."""
    properties = sheet.required_output_schema.get("properties")
    fields = sorted(properties) if isinstance(properties, dict) else []
    for rule in sheet.rules:
        params = params_for(rule)
        if not isinstance(params, StructureParams):
            continue
        for key, names in (("required", params.required), ("non_empty", params.non_empty)):
            for name in names:
                if name not in fields:
                    raise FlightSheetInvalid(
                        f"rule {rule.id!r} {key} names field {name!r}, which required_output_schema does not define"
                        f" (its properties: {', '.join(fields) or 'none'})"
                    )
    declared = ", ".join(sorted(sheet.conventions)) or "none"
    derived = {d.name for d in sheet.derivations}
    earlier: list[str] = []
    for derivation in sheet.derivations:
        reads = parse_expression(derivation.formula).names  # parsed by _validate_derivations already
        for name in sorted(reads):
            if name in derived and name not in earlier:
                raise FlightSheetInvalid(
                    f"derivation {derivation.name!r} reads {name!r}, which is not derived before it"
                    " (derivations run in sheet order)"
                )
            if name not in derived and name not in sheet.conventions:
                raise FlightSheetInvalid(
                    f"derivation {derivation.name!r} reads {name!r}, which is neither an earlier derivation"
                    f" ({', '.join(earlier) or 'none'}) nor declared in conventions ({declared})"
                )
        for name in derivation.excludes:
            if name == derivation.name:
                raise FlightSheetInvalid(f"derivation {derivation.name!r} excludes itself")
            if name in reads:
                raise FlightSheetInvalid(f"derivation {derivation.name!r} excludes {name!r}, which its formula reads")
            if name not in derived and name not in sheet.conventions:
                raise FlightSheetInvalid(
                    f"derivation {derivation.name!r} excludes {name!r}, which is neither a derivation"
                    f" nor declared in conventions ({declared})"
                )
        earlier.append(derivation.name)


def _validate_tolerances(tolerances: Tolerances) -> None:
    for name, tolerance in tolerances.classes.items():
        if to_decimal(tolerance.absolute) is None or tolerance.absolute.startswith("-"):
            raise FlightSheetInvalid(f"tolerance {name!r} absolute {tolerance.absolute!r} is not a decimal ≥ 0")
        if not 0 <= tolerance.places <= MAX_PLACES:
            raise FlightSheetInvalid(f"tolerance {name!r} places {tolerance.places} is outside 0..{MAX_PLACES}")
    for unit, name in {**tolerances.units, "(default)": tolerances.default_class}.items():
        if name not in tolerances.classes:
            raise FlightSheetInvalid(f"units {unit!r} map to unknown tolerance class {name!r}")
        if unit != unit.strip().lower():
            raise FlightSheetInvalid(f"units key {unit!r} must be lower-case and trimmed")


def _validate_derivations(derivations: list[Derivation], classes: Mapping[str, Tolerance]) -> set[str]:
    derived: set[str] = set()
    for derivation in derivations:
        if derivation.name in derived:
            raise FlightSheetInvalid(f"quantity {derivation.name!r} is derived twice")
        if derivation.tolerance not in classes:
            raise FlightSheetInvalid(f"derivation {derivation.name!r} names unknown tolerance {derivation.tolerance!r}")
        try:
            parse_expression(derivation.formula)
        except EvaluationError as exc:
            raise FlightSheetInvalid(f"derivation {derivation.name!r} formula refused: {exc}") from None
        derived.add(derivation.name)
    return derived
