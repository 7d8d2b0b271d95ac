"""The Dataset lane's submission: a manifest describing the data files attached as evidence.

The manifest is the submitter's account of the data — name, version, license; each file
with its path, media type, sha256, row count and split; a declared schema (column types,
nullability, uniqueness, allowed values, roles such as label / text / group key);
provenance per file or per record (Croissant-style: source URL, collected_at, method,
license). Its numbers are *claims*: the checks recompute every figure from the files and
flag any claim they cannot re-derive.

`read_manifest` decodes the submission (already JSON-decoded, fractions as Decimal) into
typed Structs; the sheets' `required_output_schema` (MANIFEST_SCHEMA below) says the same
in JSON Schema for the schema rule. Both bound every list and string, so a manifest can
never make a check do unbounded work.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

ColumnType = Literal["string", "integer", "number", "boolean", "date", "datetime"]
COLUMN_TYPES: tuple[ColumnType, ...] = ("string", "integer", "number", "boolean", "date", "datetime")
Role = Literal["feature", "label", "text", "group_key", "id", "split", "source", "license"]
ROLES: tuple[Role, ...] = ("feature", "label", "text", "group_key", "id", "split", "source", "license")
Format = Literal["csv", "jsonl", "parquet"]

# Media types a manifest may declare, by the reader that handles them.
MEDIA_TYPES: dict[str, Format] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
}

MAX_FILES = 64
MAX_COLUMNS = 256
MAX_ALLOWED = 1_000
MAX_SENTINELS = 32
NAME_CHARS = 200

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_CHARS)]
Text = Annotated[str, msgspec.Meta(max_length=2_000)]
Rate = Decimal  # in [0, 1]: msgspec bounds no Decimal, so manifest_problems checks it
# msgspec unions take one str-like type (Decimal is one), so scalars decode as Any and
# manifest_problems checks them: str, int, Decimal or bool (sentinels: not bool).
Scalar = Any
Sentinel = Any


class DatasetInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    version: Name
    license: Name
    description: Text = ""


class Provenance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Croissant-style origin of a file (cr:source, contentUrl, license)."""

    source_url: Text = ""
    collected_at: Text = ""
    method: Text = ""
    license: Text = ""


class FileEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: Name
    media_type: Name
    sha256: Name  # "sha256:<hex>" or bare hex; must equal the attached evidence's digest
    rows: Annotated[int, msgspec.Meta(ge=0)]  # a claim: re-derived by counting
    split: Name | None = None  # the file's split; or a column with role "split" says it per row
    evidence: Name | None = None  # evidence id, name or sha256; default: the path, then the sha256
    delimiter: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] = ","  # CSV only
    provenance: Provenance | None = None

    @property
    def format(self) -> Format | None:
        return MEDIA_TYPES.get(self.media_type.strip().lower())


class Column(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    type: ColumnType
    nullable: bool = True
    unique: bool = False
    allowed: Annotated[list[Scalar], msgspec.Meta(max_length=MAX_ALLOWED)] | None = None
    min: Decimal | None = None  # integer and number columns
    max: Decimal | None = None
    role: Role = "feature"
    missing_values: Annotated[list[Sentinel], msgspec.Meta(max_length=MAX_SENTINELS)] = []  # column sentinels
    max_missing_rate: Rate | None = None  # declared bound; the sheet's default applies otherwise


class Schema(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    columns: Annotated[list[Column], msgspec.Meta(min_length=1, max_length=MAX_COLUMNS)]
    additional_columns: bool = False  # may the files carry columns the schema does not declare?


class ClassBalance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The label distribution the submitter declares: target shares (default: uniform over the
    label's allowed values, else over the classes found) within `tolerance`, per split."""

    shares: dict[str, Rate] = {}
    tolerance: Rate | None = None
    min_class_count: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Statistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Figures the submitter claims about the data; each is re-derived or flagged.

    Keyed by split where a split applies ("all" for the whole dataset)."""

    class_counts: dict[str, dict[str, Annotated[int, msgspec.Meta(ge=0)]]] | None = None
    class_shares: dict[str, dict[str, Rate]] | None = None
    missing_counts: dict[str, Annotated[int, msgspec.Meta(ge=0)]] | None = None
    missing_rates: dict[str, Rate] | None = None
    exact_duplicate_rows: Annotated[int, msgspec.Meta(ge=0)] | None = None
    near_duplicate_rows: Annotated[int, msgspec.Meta(ge=0)] | None = None
    pii_counts: dict[str, Annotated[int, msgspec.Meta(ge=0)]] | None = None
    cross_split_duplicates: Annotated[int, msgspec.Meta(ge=0)] | None = None
    shared_group_keys: Annotated[int, msgspec.Meta(ge=0)] | None = None

    def claimed(self) -> list[str]:
        """The names of the statistics this manifest states, in field order."""
        return [name for name in self.__struct_fields__ if getattr(self, name) is not None]


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dataset: DatasetInfo
    files: Annotated[list[FileEntry], msgspec.Meta(min_length=1, max_length=MAX_FILES)]
    data_schema: Schema = msgspec.field(name="schema")
    provenance_level: Literal["file", "record"] = "file"
    missing_values: Annotated[list[Sentinel], msgspec.Meta(max_length=MAX_SENTINELS)] = []  # every column's
    class_balance: ClassBalance | None = None
    statistics: Statistics = Statistics()

    @property
    def columns(self) -> list[Column]:
        return self.data_schema.columns

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def with_role(self, role: Role) -> list[Column]:
        return [c for c in self.columns if c.role == role]


class ManifestInvalid(ValueError):
    """The submission does not decode as a manifest (the schema rule says where in detail)."""


def read_manifest(document: dict[str, Any]) -> Manifest:
    """The submission as a Manifest, or ManifestInvalid with the first problem found."""
    try:
        manifest = msgspec.convert(document, Manifest, strict=False)
    except msgspec.ValidationError as exc:
        raise ManifestInvalid(f"manifest does not decode: {exc}") from None
    problems = manifest_problems(manifest)
    if problems:
        raise ManifestInvalid("manifest is inconsistent: " + "; ".join(problems[:5]))
    return manifest


def manifest_problems(manifest: Manifest) -> list[str]:
    """What JSON Schema cannot say: unique names, one column per single role, known media types."""
    problems: list[str] = []
    names = [c.name for c in manifest.columns]
    problems += [f"column {n!r} is declared twice" for n in sorted({n for n in names if names.count(n) > 1})]
    paths = [f.path for f in manifest.files]
    problems += [f"file {p!r} is listed twice" for p in sorted({p for p in paths if paths.count(p) > 1})]
    for role in ("label", "split", "source", "license"):
        having = [c.name for c in manifest.columns if c.role == role]
        if len(having) > 1:
            problems.append(f"role {role!r} is given to {len(having)} columns ({', '.join(having)}); at most one")
    for f in manifest.files:
        if f.format is None:
            known = ", ".join(sorted(MEDIA_TYPES))
            problems.append(f"file {f.path!r} has media type {f.media_type!r}; known: {known}")
    for where, values, allowed_types in _scalar_lists(manifest):
        for value in values:
            if (isinstance(value, bool) and bool not in allowed_types) or not isinstance(value, allowed_types):
                problems.append(f"{where} holds {value!r}; only strings and numbers may be listed")
                break
    for where, rate in _rates(manifest):
        if not (rate.is_finite() and 0 <= rate <= 1):
            problems.append(f"{where} is {rate}; a rate or share lies in [0, 1]")
    split_columns = manifest.with_role("split")
    if split_columns and any(f.split is not None for f in manifest.files):
        problems.append(f"splits are declared both per file and by column {split_columns[0].name!r}; choose one")
    for column in manifest.columns:
        if (column.min is not None or column.max is not None) and column.type not in ("integer", "number"):
            problems.append(f"column {column.name!r} has min/max but type {column.type}")
        if column.min is not None and column.max is not None and column.min > column.max:
            problems.append(f"column {column.name!r} min {column.min} exceeds max {column.max}")
    return problems


def _scalar_lists(manifest: Manifest) -> list[tuple[str, list[Any], tuple[type, ...]]]:
    lists: list[tuple[str, list[Any], tuple[type, ...]]] = [
        ("missing_values", manifest.missing_values, (str, int, Decimal))
    ]
    for c in manifest.columns:
        lists.append((f"column {c.name!r} missing_values", c.missing_values, (str, int, Decimal)))
        if c.allowed is not None:
            lists.append((f"column {c.name!r} allowed", c.allowed, (str, int, Decimal, bool)))
    return lists


def _rates(manifest: Manifest) -> list[tuple[str, Decimal]]:
    rates = [(f"column {c.name!r} max_missing_rate", c.max_missing_rate) for c in manifest.columns]
    balance = manifest.class_balance
    if balance is not None:
        rates += [(f"class_balance share of {k!r}", v) for k, v in balance.shares.items()]
        rates.append(("class_balance tolerance", balance.tolerance))
    stats = manifest.statistics
    for split, shares in (stats.class_shares or {}).items():
        rates += [(f"statistics.class_shares[{split!r}][{k!r}]", v) for k, v in shares.items()]
    rates += [(f"statistics.missing_rates[{k!r}]", v) for k, v in (stats.missing_rates or {}).items()]
    return [(where, rate) for where, rate in rates if rate is not None]


def normalise_digest(value: str) -> str:
    """'sha256:<lower hex>' from either spelling."""
    text = value.strip().lower()
    return text if text.startswith("sha256:") else f"sha256:{text}"


# -- the JSON Schema the sheets publish as required_output_schema -------------

_NAME = {"type": "string", "minLength": 1, "maxLength": NAME_CHARS}
_TEXT = {"type": "string", "maxLength": 2_000}
_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_SCALAR = {"type": ["string", "number", "boolean"]}
_SENTINEL = {"type": ["string", "number"]}


def manifest_schema(schema_id: str) -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), as every Dataset sheet publishes it."""
    by_split = {
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "object", "maxProperties": 1_000},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": "Dataset manifest",
        "type": "object",
        "additionalProperties": False,
        "required": ["dataset", "files", "schema"],
        "properties": {
            "dataset": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "version", "license"],
                "properties": {"name": _NAME, "version": _NAME, "license": _NAME, "description": _TEXT},
            },
            "files": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_FILES,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["path", "media_type", "sha256", "rows"],
                    "properties": {
                        "path": _NAME,
                        "media_type": {"enum": sorted(MEDIA_TYPES)},
                        "sha256": {"type": "string", "pattern": "^(sha256:)?[0-9a-fA-F]{64}$"},
                        "rows": _COUNT,
                        "split": _NAME,
                        "evidence": _NAME,
                        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
                        "provenance": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {k: _TEXT for k in ("source_url", "collected_at", "method", "license")},
                        },
                    },
                },
            },
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["columns"],
                "properties": {
                    "columns": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_COLUMNS,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "type"],
                            "properties": {
                                "name": _NAME,
                                "type": {"enum": list(COLUMN_TYPES)},
                                "nullable": {"type": "boolean"},
                                "unique": {"type": "boolean"},
                                "allowed": {"type": "array", "maxItems": MAX_ALLOWED, "items": _SCALAR},
                                "min": {"type": "number"},
                                "max": {"type": "number"},
                                "role": {"enum": list(ROLES)},
                                "missing_values": {"type": "array", "maxItems": MAX_SENTINELS, "items": _SENTINEL},
                                "max_missing_rate": _RATE,
                            },
                        },
                    },
                    "additional_columns": {"type": "boolean"},
                },
            },
            "provenance_level": {"enum": ["file", "record"]},
            "missing_values": {"type": "array", "maxItems": MAX_SENTINELS, "items": _SENTINEL},
            "class_balance": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "shares": {"type": "object", "maxProperties": 1_000, "additionalProperties": _RATE},
                    "tolerance": _RATE,
                    "min_class_count": _COUNT,
                },
            },
            "statistics": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "class_counts": by_split,
                    "class_shares": by_split,
                    "missing_counts": {"type": "object", "maxProperties": MAX_COLUMNS, "additionalProperties": _COUNT},
                    "missing_rates": {"type": "object", "maxProperties": MAX_COLUMNS, "additionalProperties": _RATE},
                    "exact_duplicate_rows": _COUNT,
                    "near_duplicate_rows": _COUNT,
                    "pii_counts": {"type": "object", "maxProperties": 32, "additionalProperties": _COUNT},
                    "cross_split_duplicates": _COUNT,
                    "shared_group_keys": _COUNT,
                },
            },
        },
    }
