"""Params of this lane's rule kinds, decoded and validated when a sheet loads (sheet.py merges PARAMS).

The sheet sets the policy (thresholds, caps, what counts as missing); the manifest may
declare its own, stricter, figures (a column's missing-rate bound, the class shares and
tolerance) — never laxer ones than the sheet's ceilings, which the checks flag. Every size
a sheet can set is bounded, so no sheet can make a check do unbounded work.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from defendable_referee.dataset.pii import PII_TYPES, PiiType

Shown = Annotated[int, msgspec.Meta(ge=1, le=50)]  # offending rows / lines named per finding
Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Jaccard = Annotated[float, msgspec.Meta(ge=0.5, le=1.0)]
Permutations = Annotated[int, msgspec.Meta(ge=16, le=256)]
ShingleWords = Annotated[int, msgspec.Meta(ge=1, le=10)]
RowCap = Annotated[int, msgspec.Meta(ge=1_000, le=20_000_000)]
ProvenanceField = Literal["source_url", "license", "collected_at", "method"]
SentinelValue = Annotated[str, msgspec.Meta(max_length=100)] | int


class FilesParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_files`: every manifest file is the attached evidence, readable in full, and
    its claimed row count is the count; every claimed statistic is one this sheet re-derives."""

    lines_reported: Shown = 5


class SchemaValidationParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_schema_validation`: every record matches the declared schema."""

    rows_reported: Shown = 5


class ClassBalanceParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_class_balance`: each class's share within tolerance of its target, per split."""

    tolerance: Share = 0.05  # used when the manifest declares none
    max_tolerance: Share = 0.10  # a declared tolerance above it is refused
    min_class_count: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)] = 1  # floor; a manifest may raise it
    max_classes: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 1_000


class DuplicateParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_duplicate_detection`: exact duplicate records and near-duplicate texts."""

    max_exact_rate: Share = 0.0
    max_near_rate: Share = 0.01
    jaccard_threshold: Jaccard = 0.8
    num_perm: Permutations = 64
    shingle_words: ShingleWords = 3
    max_rows_scanned: RowCap = 2_000_000  # near-duplicate scan; exact duplicates are counted over every row
    rows_reported: Shown = 5


class ProvenanceParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_provenance_completeness`: every file (or record, if so declared) carries its origin."""

    required: Annotated[list[ProvenanceField], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["source_url", "license"]
    )
    require_record_level: bool = False  # refuse file-level provenance
    rows_reported: Shown = 5


class ContentSafetyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_content_safety_scan`: personal data and secrets in string values."""

    detectors: Annotated[list[PiiType], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(PII_TYPES)
    )
    max_matches: dict[PiiType, Annotated[int, msgspec.Meta(ge=0)]] = {}  # per type; default 0
    phone_region: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")] = "US"  # for numbers without +country
    samples: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3  # redacted samples per type
    max_phone_checks: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = 20_000  # distinct candidates

    def __post_init__(self) -> None:
        if len(set(self.detectors)) != len(self.detectors):
            raise ValueError("detectors lists a type twice")
        unknown = sorted(set(self.max_matches) - set(self.detectors))
        if unknown:
            raise ValueError(f"max_matches names detectors the rule does not run: {', '.join(unknown)}")


class SplitIntegrityParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_train_test_integrity`: splits share no record, near-duplicate text or group key."""

    near_duplicates: bool = True
    jaccard_threshold: Jaccard = 0.8
    num_perm: Permutations = 64
    shingle_words: ShingleWords = 3
    max_rows_scanned: RowCap = 2_000_000
    rows_reported: Shown = 5


class MissingValueParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`dataset_missing_value_audit`: per-column missing rates within bounds."""

    max_rate: Share = 0.05  # a column's bound when the manifest declares none
    max_declared_rate: Share = 0.5  # a declared bound above it is refused
    sentinels: Annotated[list[SentinelValue], msgspec.Meta(max_length=32)] = msgspec.field(
        default_factory=lambda: ["", "N/A", "null", "NULL"]
    )


PARAMS: dict[str, type[msgspec.Struct]] = {
    "dataset_files": FilesParams,
    "dataset_schema_validation": SchemaValidationParams,
    "dataset_class_balance": ClassBalanceParams,
    "dataset_duplicate_detection": DuplicateParams,
    "dataset_provenance_completeness": ProvenanceParams,
    "dataset_content_safety_scan": ContentSafetyParams,
    "dataset_train_test_integrity": SplitIntegrityParams,
    "dataset_missing_value_audit": MissingValueParams,
}
