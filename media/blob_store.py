"""The product's own copy of every file: content-addressed blobs under MEDIA_DIR.

A blob lives at `MEDIA_DIR/ab/cd/<sha256>`. The path is built only from a sha256 we computed
ourselves (checked to be 64 hex digits), never from a URL or a file name, so nothing a user or
Slack sends can steer a write or a read outside MEDIA_DIR. Writes go to a temporary file in
`MEDIA_DIR/tmp` (same file system) and are renamed into place, so a blob is either whole or absent.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class TooLarge(Exception):
    """The content grew past the limit while being written; nothing was kept."""


class BlobStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise ValueError("not a sha256 digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str | None) -> bool:
        try:
            return bool(sha256) and self.path_for(sha256).is_file()
        except ValueError:
            return False

    def writer(self, max_bytes: int | None = None) -> BlobWriter:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self, tmp_dir, max_bytes)

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        with self.writer(max_bytes) as out:
            while chunk := stream.read(CHUNK):
                out.write(chunk)
            return out.commit()

    def put_file(self, path: Path) -> tuple[str, int]:
        with open(path, "rb") as stream:
            return self.put_stream(stream)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        with self.writer() as out:
            out.write(data)
            return out.commit()

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh path in the store's temp folder (for tools such as ffmpeg that write files)."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=suffix)
        os.close(fd)
        return Path(name)


class BlobWriter:
    """Streams bytes to a temp file while hashing; `commit()` renames it to its content address."""

    def __init__(self, store: BlobStore, tmp_dir: Path, max_bytes: int | None):
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="in-")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._done = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise TooLarge(f"over {self.max_bytes} bytes")
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> tuple[str, int]:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha = self._hash.hexdigest()
        final = self.store.path_for(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            self._tmp.unlink(missing_ok=True)  # same content already stored
        else:
            os.replace(self._tmp, final)
        self._done = True
        return sha, self.size

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
