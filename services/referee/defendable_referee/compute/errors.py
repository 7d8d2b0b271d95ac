"""The one error the Compute lane's parsers raise: evidence the referee refuses to read.

A parser that meets malformed, oversized or hostile bytes (an XML entity bomb, a CSV
with no header, a log with no result line) raises `EvidenceRefused` with the facts;
the checks turn it into a flag on the finding that needed that evidence. It is a
`ValueError`, so a check that forgets to catch it still fails closed ("could not run").
"""

from __future__ import annotations


class EvidenceRefused(ValueError):
    """The evidence bytes cannot be trusted as the tool's output; the message says why."""


def refuse_oversized(what: str, size: int, limit: int) -> None:
    """Raise if `size` bytes exceed `limit` (checked before anything is decoded)."""
    if size > limit:
        raise EvidenceRefused(f"{what} is {size} bytes; the limit is {limit}")
