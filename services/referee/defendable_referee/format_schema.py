"""The JSON Schema of the Flight Sheet format, derived from the Structs that decode it.

Derived, not hand-written, so the schema an editor validates against and the
loader the referee runs cannot drift apart. msgspec gives the shape; this adds
what msgspec's types do not say: the id and version spelling, and `params`
per rule kind (one `if kind = … then params: …` per kind).

`docs/flight-sheet.schema.json` is this schema, committed for editors and
reviewers; a test keeps it equal to `format_schema()`. Regenerate with
`python -m defendable_referee.format_schema > docs/flight-sheet.schema.json`.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from defendable_referee.sheet import PARAMS_BY_KIND, FlightSheet

FORMAT_ID = "https://defendable.cloud/schemas/flight-sheet/v1.json"
ID_PATTERN = "^[a-z][a-z0-9_]{0,63}$"
VERSION_PATTERN = "^(0|[1-9][0-9]{0,5})\\.(0|[1-9][0-9]{0,5})\\.(0|[1-9][0-9]{0,5})$"  # MAJOR.MINOR.PATCH
DECIMAL_PATTERN = "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?$"


def format_schema() -> dict[str, Any]:
    kinds = sorted(PARAMS_BY_KIND)
    _, defs = msgspec.json.schema_components(
        [FlightSheet, *(PARAMS_BY_KIND[k] for k in kinds)], ref_template="#/$defs/{name}"
    )
    sheet = defs.pop("FlightSheet")
    props = sheet["properties"]
    props["id"] |= {"pattern": ID_PATTERN, "description": "stable name; a new version keeps it"}
    props["version"] |= {
        "pattern": VERSION_PATTERN,
        "description": "MAJOR.MINOR.PATCH; published versions never change",
    }
    props["$schema"] = {"const": FORMAT_ID}
    props["required_output_schema"]["description"] = "JSON Schema (draft 2020-12) the submission must match"
    rule = defs["Rule"]
    rule["properties"]["kind"] = {"enum": kinds}
    rule["properties"]["id"] |= {"minLength": 1, "maxLength": 100}
    rule["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {"properties": {"params": {"$ref": f"#/$defs/{PARAMS_BY_KIND[kind].__name__}"}}},
        }
        for kind in kinds
    ]
    defs["Tolerance"]["properties"]["absolute"] |= {"pattern": DECIMAL_PATTERN}
    defs["Gate"]["properties"]["threshold"] |= {"pattern": DECIMAL_PATTERN}
    defs["CookPolicy"]["properties"]["noise_floor"] |= {"pattern": DECIMAL_PATTERN}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": FORMAT_ID,
        "title": "Defendable Flight Sheet",
        "description": "The data a run is checked against. See docs/flight-sheets.md.",
        **sheet,
        "$defs": defs,
    }


def main() -> int:
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(format_schema()), indent=2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
