"""This lane's rule checks, by kind (rules.py merges CHECKS into its dispatcher)."""

from __future__ import annotations

from collections.abc import Callable

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.balance import check_class_balance
from defendable_referee.dataset.duplicate import check_duplicates
from defendable_referee.dataset.files import check_files
from defendable_referee.dataset.missing import check_missing_values
from defendable_referee.dataset.provenance import check_provenance
from defendable_referee.dataset.safety import check_content_safety
from defendable_referee.dataset.split import check_split_integrity
from defendable_referee.dataset.validation import check_schema_validation
from defendable_referee.sheet import Rule

CHECKS: dict[str, Callable[[Rule, CheckContext], list[Finding]]] = {
    "dataset_files": check_files,
    "dataset_schema_validation": check_schema_validation,
    "dataset_class_balance": check_class_balance,
    "dataset_duplicate_detection": check_duplicates,
    "dataset_provenance_completeness": check_provenance,
    "dataset_content_safety_scan": check_content_safety,
    "dataset_train_test_integrity": check_split_integrity,
    "dataset_missing_value_audit": check_missing_values,
}
