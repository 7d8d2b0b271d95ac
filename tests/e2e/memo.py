"""The demo's CRE memo builder and evidence, shared with the end-to-end tests."""

from defendable_stack.demo import EVIDENCE, SHEET, memo

__all__ = ["EVIDENCE", "SHEET", "memo"]
