"""Render's record of the PDFs it stored (schema `render`). Only this module imports asyncpg."""

from __future__ import annotations

from asyncpg import Connection

SCHEMA = "render"
MIGRATIONS = [
    """
    CREATE TABLE render.pdfs (
        receipt_hash text PRIMARY KEY,
        org_id text NOT NULL,
        pdf_key text NOT NULL,
        pdf_sha256 text NOT NULL,
        pdf_size bigint NOT NULL,
        rendered_at timestamptz NOT NULL DEFAULT now()
    );
    """,
]


async def record_pdf(conn: Connection, receipt_hash: str, org_id: str, key: str, sha256: str, size: int) -> None:
    await conn.execute(
        """INSERT INTO render.pdfs (receipt_hash, org_id, pdf_key, pdf_sha256, pdf_size)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        receipt_hash,
        org_id,
        key,
        sha256,
        size,
    )
