"""S3-compatible blob storage (aioboto3): SeaweedFS locally, any S3 in production.

Bytes are streamed in chunks and hashed on the way; nothing is held whole in
memory. Evidence lives under content-addressed keys (`evidence/sha256/<hex>`),
so the key itself states what the bytes must hash to.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .settings import Settings

CHUNK = 1024 * 1024
PART = 8 * 1024 * 1024  # S3 multipart parts must be ≥ 5 MiB (except the last)


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"blob exceeds the limit of {limit} bytes")
        self.limit = limit


def evidence_key(sha256_hex: str) -> str:
    return f"evidence/sha256/{sha256_hex}"


class BlobStore:
    """One S3 client for the life of the service."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.bucket = settings.s3_bucket
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def open(self) -> BlobStore:
        session = aioboto3.Session()
        self._client = await self._stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=self._settings.s3_endpoint_url,
                aws_access_key_id=self._settings.s3_access_key_id,
                aws_secret_access_key=self._settings.s3_secret_access_key,
                region_name=self._settings.s3_region,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=64,
                ),
            )
        )
        return self

    async def close(self) -> None:
        await self._stack.aclose()

    async def ensure_bucket(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                await self._client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def ping(self) -> None:
        await self._client.head_bucket(Bucket=self.bucket)

    async def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        await self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], limit: int, *, inline_max: int = 0
    ) -> tuple[str, int, bytes | None]:
        """Stream chunks to `key`, hashing as they pass; returns (sha256 hex, size, inline).

        A body of at most `inline_max` bytes is not stored at all: it comes back as
        `inline` (else None) for the caller to send on. Other small bodies go in one
        PUT; larger ones as an S3 multipart upload, so memory stays at one part
        whatever the size. Over `limit` → BlobTooLarge and nothing is left behind.
        """
        hasher = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise BlobTooLarge(limit)
                hasher.update(chunk)
                buffer += chunk
                if len(buffer) >= PART:
                    if upload_id is None:
                        created = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
                        upload_id = created["UploadId"]
                    part = await self._client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=bytes(buffer)
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": len(parts) + 1})
                    buffer.clear()
            if upload_id is None and size <= inline_max:
                return hasher.hexdigest(), size, bytes(buffer)
            if upload_id is None:
                await self._client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer))
            else:
                if buffer:
                    part = await self._client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=bytes(buffer)
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": len(parts) + 1})
                await self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            if upload_id is not None:
                await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return hasher.hexdigest(), size, None

    async def _body(self, key: str) -> Any:
        """The object's streaming body, or None when it does not exist."""
        try:
            obj = await self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return obj["Body"]

    async def _hash_body(
        self, body: Any, limit: int | None = None, sink: Callable[[bytes], object] | None = None
    ) -> tuple[str, int]:
        """Read `body` in chunks, hashing it (and handing each chunk to `sink`); closes it."""
        hasher = hashlib.sha256()
        size = 0
        try:
            async for chunk in body.iter_chunks(CHUNK):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise BlobTooLarge(limit)
                hasher.update(chunk)
                if sink is not None:
                    sink(chunk)
        finally:
            body.close()
        return hasher.hexdigest(), size

    async def hash_object(self, key: str) -> tuple[str, int] | None:
        """Re-read an object in chunks and hash it; None when it does not exist."""
        body = await self._body(key)
        return None if body is None else await self._hash_body(body)

    async def download(self, key: str, path: Path, limit: int) -> tuple[str, int] | None:
        """Stream an object into the file `path`, hashing it on the way: (sha256 hex, size), or
        None when it does not exist. Raises BlobTooLarge past `limit` bytes (the file is removed)."""
        body = await self._body(key)
        if body is None:
            return None
        try:
            with path.open("wb") as out:
                # 1 MiB writes into the page cache: cheaper than a thread hop each.
                return await self._hash_body(body, limit, out.write)
        except BaseException:
            path.unlink(missing_ok=True)  # noqa: ASYNC240  # a local temp file: microseconds
            raise

    async def get_bytes(self, key: str) -> bytes | None:
        body = await self._body(key)
        if body is None:
            return None
        try:
            data: bytes = await body.read()
        finally:
            body.close()
        return data

    async def exists(self, key: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        return True

    async def copy(self, source_key: str, dest_key: str) -> None:
        await self._client.copy_object(
            Bucket=self.bucket, Key=dest_key, CopySource={"Bucket": self.bucket, "Key": source_key}
        )

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=key)
