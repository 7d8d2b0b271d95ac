"""This lane's rule checks, by kind (rules.py merges CHECKS into its dispatcher)."""

from __future__ import annotations

from collections.abc import Callable

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.sheet import Rule

CHECKS: dict[str, Callable[[Rule, CheckContext], list[Finding]]] = {}
