"""A submission's declared usage: the `Defendable-Usage` header of `POST /runs/{id}/submission`.

Usage travels beside the submission, never inside it: the submission must match its Flight
Sheet's output schema (which forbids unknown members) and is hashed into the receipt, while
usage only feeds governance spend caps (intake counts the larger of this and the run's OTLP
trail). The header is one JSON object, at most 1 KiB:

    Defendable-Usage: {"input_tokens": 1200, "output_tokens": 300, "cost": "0.42"}

`cost` is a decimal string in the org's accounting currency (the one its spend caps name).
"""

from __future__ import annotations

from typing import Final

import msgspec
from litestar.plugins.problem_details import ProblemDetailsException

from defendable_canonical.events import Usage

HEADER: Final = "defendable-usage"
MAX_HEADER_BYTES: Final = 1024
_decoder: Final = msgspec.json.Decoder(Usage)


def declared_usage(header: str | None) -> Usage | None:
    """The header's usage, None without one; 400 problem+json when it is not a valid usage object."""
    if header is None:
        return None
    if len(header) > MAX_HEADER_BYTES:
        raise ProblemDetailsException(
            status_code=400, detail=f"the Defendable-Usage header may be at most {MAX_HEADER_BYTES} bytes"
        )
    try:
        return _decoder.decode(header.encode())
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProblemDetailsException(
            status_code=400,
            detail=(
                f"the Defendable-Usage header is not a usage object ({exc}): send JSON such as"
                ' {"input_tokens": 1200, "output_tokens": 300, "cost": "0.42"}, tokens 0..10^12,'
                " cost a decimal string with at most 12 decimal places"
            ),
        ) from exc
