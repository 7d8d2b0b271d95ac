"""Streaming evidence uploads: bytes flow from the request to S3 chunk by chunk.

A multipart body is parsed incrementally (python-multipart's streaming parser),
so a 100 MiB file never sits whole in memory: each fed chunk yields the file
part's bytes, which go straight on to the S3 upload. Small text fields beside
the file (`sha256`, `name`, `kind`) are collected, bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16


class UploadError(ValueError):
    """The multipart body is malformed; the message says how."""


class MultipartFile:
    def __init__(self, content_type: str) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise UploadError("multipart/form-data needs a boundary parameter in Content-Type")
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_media_type: str = "application/octet-stream"
        self._pending: list[bytes] = []
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._is_file = False
        self._seen_file = False
        self._field_name = ""
        self._field_value = bytearray()
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )

    # -- parser callbacks (synchronous, called from feed)

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._is_file = False
        self._field_value = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode(errors="replace")
        filename = params.get(b"filename")
        if filename is not None or name == "file":
            if self._seen_file:
                raise UploadError("send one file per evidence upload")
            self._seen_file = self._is_file = True
            self.filename = (filename or b"upload").decode(errors="replace")
            self.file_media_type = self._headers.get(b"content-type", b"application/octet-stream").decode(
                errors="replace"
            )
        else:
            if len(self.fields) >= MAX_FIELDS:
                raise UploadError(f"at most {MAX_FIELDS} form fields")
            self._field_name = name

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._pending.append(bytes(data[start:end]))
        else:
            self._field_value += data[start:end]
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise UploadError(f"form field {self._field_name!r} exceeds {MAX_FIELD_BYTES} bytes")

    def _on_part_end(self) -> None:
        if not self._is_file:
            self.fields[self._field_name] = self._field_value.decode(errors="replace")

    # -- the stream

    async def file_chunks(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in body:
            try:
                self._parser.write(chunk)
            except UploadError:
                raise
            except Exception as exc:
                raise UploadError(f"malformed multipart body: {exc}") from exc
            while self._pending:
                yield self._pending.pop(0)
        self._parser.finalize()
        while self._pending:
            yield self._pending.pop(0)
        if not self._seen_file:
            raise UploadError("no file part: send the evidence as a form field named 'file'")
