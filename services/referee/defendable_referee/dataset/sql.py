"""SQL text the dataset checks send to DuckDB: quoting, and the per-format value tests.

Every name and value that comes from a manifest enters SQL through `ident` or `literal`
(doubling the quote character is the whole of SQL's escaping), never by formatting raw.

Each file is read into one uniform shape (source.py): a VARCHAR "text form" per declared
column, NULL where the value is missing. How a value's *type* is tested depends on the
format: a CSV field is text and must parse; a JSON Lines value carries its JSON type; a
Parquet column carries a physical type, which must agree with the declaration.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from defendable_referee.dataset.manifest import ColumnType

# Text that parses as the declared type (CSV fields; JSON strings declared date/datetime).
# RE2 syntax: DuckDB's regexp_full_match.
_INTEGER = r"\s*[+-]?[0-9]+\s*"
_NUMBER = r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*"
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATETIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?"
BOOLEAN_TEXT = ("true", "false", "0", "1")

# DuckDB logical types a Parquet column may have for each declared type.
_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
PARQUET_TYPES: dict[ColumnType, frozenset[str]] = {
    "string": frozenset({"VARCHAR"}),
    "integer": _INTEGER_TYPES,
    "number": _INTEGER_TYPES | {"FLOAT", "DOUBLE", "DECIMAL"},
    "boolean": frozenset({"BOOLEAN"}),
    "date": frozenset({"DATE"}),
    "datetime": frozenset({"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"}),
}
# JSON types (DuckDB json_type) a JSON Lines value may have for each declared type.
JSON_TYPES: dict[ColumnType, frozenset[str]] = {
    "string": frozenset({"VARCHAR"}),
    "integer": frozenset({"BIGINT", "UBIGINT"}),
    "number": frozenset({"BIGINT", "UBIGINT", "DOUBLE"}),
    "boolean": frozenset({"BOOLEAN"}),
    "date": frozenset({"VARCHAR"}),
    "datetime": frozenset({"VARCHAR"}),
}


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def literal_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]::VARCHAR[]"


def parquet_type_family(duckdb_type: str) -> str:
    """'DECIMAL(18,3)' → 'DECIMAL': the name PARQUET_TYPES lists."""
    return duckdb_type.split("(", 1)[0].strip().upper()


def text_parses(text: str, declared: ColumnType) -> str:
    """SQL: the VARCHAR expression `text` (non-NULL) reads as `declared`."""
    match declared:
        case "string":
            return "TRUE"
        case "integer":
            return f"regexp_full_match({text}, {literal(_INTEGER)})"
        case "number":
            return f"regexp_full_match({text}, {literal(_NUMBER)})"
        case "boolean":
            return f"lower(trim({text})) IN ({', '.join(literal(v) for v in BOOLEAN_TEXT)})"
        case "date":
            return f"(regexp_full_match({text}, {literal(_DATE)}) AND TRY_CAST({text} AS DATE) IS NOT NULL)"
        case "datetime":
            return (
                f"(regexp_full_match({text}, {literal(_DATETIME)})"
                f" AND TRY_CAST(substr({text}, 1, 10) AS DATE) IS NOT NULL)"
            )


def number_text(value: object) -> str | None:
    """The text a number-typed manifest value compares as (None for non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return format(Decimal(value).normalize(), "f") if isinstance(value, Decimal) else str(value)


def scalar_text(value: object) -> str:
    """A manifest scalar (allowed value, sentinel) in the text form values are compared in."""
    if isinstance(value, bool):
        return "true" if value else "false"
    number = number_text(value)
    return number if number is not None else str(value)


def sentinel_test(value: str, column_type: ColumnType, sentinels: Iterable[object]) -> str:
    """SQL: the VARCHAR expression `value` is one of `sentinels` — as text (trimmed), and for a
    numeric sentinel in a numeric column as a number too (-999 matches "-999.0")."""
    texts = sorted({scalar_text(v) for v in sentinels})
    parts = [f"trim({value}) IN ({', '.join(literal(t) for t in texts)})"] if texts else []
    numbers = sorted({n for v in sentinels if not isinstance(v, str) and (n := number_text(v)) is not None})
    if numbers and column_type in ("integer", "number"):
        doubles = ", ".join(f"TRY_CAST({literal(n)} AS DOUBLE)" for n in numbers)
        parts.append(f"TRY_CAST({value} AS DOUBLE) IN ({doubles})")
    return "(" + (" OR ".join(parts) or "FALSE") + ")"


def numeric(text: str) -> str:
    """SQL: the text form as DOUBLE, NULL where it is not a number."""
    return f"TRY_CAST({text} AS DOUBLE)"
