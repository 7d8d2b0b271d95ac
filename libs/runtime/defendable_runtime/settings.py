"""Service settings, read once from the environment at start-up."""

from __future__ import annotations

import os

import msgspec


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str
    database_url: str
    s3_endpoint_url: str
    s3_access_key_id: str
    s3_secret_access_key: str
    s3_region: str
    s3_bucket: str
    public_base_url: str
    max_evidence_bytes: int
    data_dir: str
    flight_sheets_dir: str = ""  # referee: a library directory instead of the packaged one
    work_dir: str = ""  # referee: where a run's evidence files are copied for checking ("" = the system temp dir)
    max_run_file_bytes: int = 8 * 1024**3  # referee: disk one run's evidence copies may take


def from_env() -> Settings:
    env = os.environ
    return Settings(
        nats_url=env.get("NATS_URL", "nats://127.0.0.1:4222"),
        database_url=env.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        s3_endpoint_url=env.get("S3_ENDPOINT_URL", "http://127.0.0.1:8333"),
        s3_access_key_id=env.get("S3_ACCESS_KEY_ID", "defendable"),
        s3_secret_access_key=env.get("S3_SECRET_ACCESS_KEY", "defendable-secret"),
        s3_region=env.get("S3_REGION", "us-east-1"),
        s3_bucket=env.get("S3_BUCKET", "defendable"),
        public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8700").rstrip("/"),
        # Datasets are evidence too (issue 4): a 2 GB file must go through; uploads stream to S3.
        max_evidence_bytes=int(env.get("MAX_EVIDENCE_BYTES", str(4 * 1024**3))),
        data_dir=env.get("DEFENDABLE_DATA_DIR", ".stack/data"),
        flight_sheets_dir=env.get("FLIGHT_SHEETS_DIR", ""),
        work_dir=env.get("REFEREE_WORK_DIR", ""),
        max_run_file_bytes=int(env.get("REFEREE_MAX_RUN_FILE_BYTES", str(8 * 1024**3))),
    )
