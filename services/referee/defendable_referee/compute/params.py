"""Params of this lane's rule kinds, decoded and validated when a sheet loads (sheet.py merges PARAMS)."""

from __future__ import annotations

import msgspec

PARAMS: dict[str, type[msgspec.Struct]] = {}
