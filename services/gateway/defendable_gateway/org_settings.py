"""An org's settings: what its proof packages carry and which receipt fields it redacts.

``GET /org/settings`` (any key of the org) answers the settings, the defaults when the org
never set any; ``PUT /org/settings`` (admin keys only) replaces them whole with a JSON object
of at most ``MAX_SETTINGS_BYTES``. Unknown fields, values outside the lists below and a field
named twice in ``redact`` are a 400 problem: a typo must not be stored as a setting nobody
applies.

- ``package_evidence``: ``"files"`` (default) lets ``GET /receipts/{hash}/package`` include the
  evidence bytes; ``"hashes"`` keeps packages to the hashes the receipt already names (a
  caller may always ask for hashes only).
- ``redact``: receipt fields to mint as salted commitments (``defendable_canonical.redaction``).

Stored as JSON (``jsonb``) in ``gateway.org_settings``, one row per org that set any. This
module is the storage layer (``store.py`` takes its migration, so it imports nothing of the
HTTP layer); the two routes are in ``package_routes.py``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from defendable_canonical.redaction import REDACTABLE_FIELDS, RedactableField

MAX_SETTINGS_BYTES: Final = 8 * 1024
SETTINGS_HELP: Final = (
    "fields: package_evidence (files|hashes), redact (a list of distinct fields among "
    + ", ".join(REDACTABLE_FIELDS)
    + ")"
)

ORG_SETTINGS_MIGRATIONS: list[str] = [
    """
    CREATE TABLE gateway.org_settings (
        org_id text PRIMARY KEY REFERENCES gateway.orgs,
        settings jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """,
]


class OrgSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    package_evidence: Literal["files", "hashes"] = "files"
    redact: list[RedactableField] = []

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for name in self.redact:
            if name in seen:
                raise ValueError(f"redact names {name} twice; name each field once")
            seen.add(name)


DEFAULT_SETTINGS: Final = OrgSettings()
_encoder = msgspec.json.Encoder()


def decode_settings(data: bytes | str) -> OrgSettings:
    """Settings from JSON; raises msgspec.DecodeError / msgspec.ValidationError with the reason."""
    return msgspec.json.decode(data, type=OrgSettings)


async def get_org_settings(pool_or_conn: Any, org_id: str) -> OrgSettings:
    """The org's settings; the defaults when it never set any. `pool_or_conn`: an asyncpg Pool or Connection."""
    stored = await pool_or_conn.fetchval("SELECT settings::text FROM gateway.org_settings WHERE org_id = $1", org_id)
    return DEFAULT_SETTINGS if stored is None else decode_settings(stored)


async def put_org_settings(pool_or_conn: Any, org_id: str, settings: OrgSettings) -> None:
    """Replace the org's settings whole."""
    await pool_or_conn.execute(
        """INSERT INTO gateway.org_settings (org_id, settings) VALUES ($1, $2::jsonb)
           ON CONFLICT (org_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()""",
        org_id,
        _encoder.encode(settings).decode(),
    )
