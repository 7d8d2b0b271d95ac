"""Moved to `defendable.client`; this name stays only until the last importer (tests/e2e/test_cook.py) moves."""

from defendable.client import STAGE_RANK, ApiError, Reply
from defendable.client import AsyncClient as Client

__all__ = ["STAGE_RANK", "ApiError", "Client", "Reply"]
