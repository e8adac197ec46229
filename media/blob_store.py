"""The product's own copy of every file: content-addressed blobs, in MEDIA_DIR or in S3.

A blob lives at `ab/cd/<sha256>` under MEDIA_DIR (`BlobStore`) or under MEDIA_URL's bucket and
prefix (`media.s3_store.S3BlobStore`, same interface). The name is built only from a sha256 we
computed ourselves (checked to be 64 hex digits), never from a URL or a file name, so nothing a
user or Slack sends can steer a write or a read elsewhere. Writes go to a temporary file in
`MEDIA_DIR/tmp` first and are renamed (or uploaded) into place only whole, so a blob is either whole
or absent. Code that needs a file on disk (ffmpeg, Pillow) asks for `local_copy()`; the customer
page reads through `open_blob()`, which seeks, so Range requests work on either store.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from core.config import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class TooLarge(Exception):
    """The content grew past the limit while being written; nothing was kept."""


class StoreUnavailable(OSError):
    """The object store did not take or give a blob (down, no such bucket, writes refused)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.strerror = message  # what callers that describe an OSError show


def blob_name(sha256: str) -> str:
    """`ab/cd/<sha256>`: the only way a blob is named, in a folder or a bucket."""
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise ValueError("not a sha256 digest")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def open_store(settings: Settings) -> BlobStore:
    """The store this deployment keeps media in: MEDIA_URL's bucket when set, else MEDIA_DIR.
    (MEDIA_DIR still holds the temporary files of downloads, merges and conversions.)"""
    if settings.media_url:
        from media.s3_store import S3BlobStore

        return S3BlobStore.for_settings(settings)
    return BlobStore(settings.media_dir)


class BlobStore:
    """Blobs in a local folder (MEDIA_DIR)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def path_for(self, sha256: str) -> Path:
        return self.root / blob_name(sha256)

    def has(self, sha256: str | None) -> bool:
        try:
            return bool(sha256) and self.path_for(sha256).is_file()
        except ValueError:
            return False

    def size(self, sha256: str) -> int:
        return self.path_for(sha256).stat().st_size

    def open_blob(self, sha256: str) -> BinaryIO:
        """The blob for reading (seekable). FileNotFoundError when absent."""
        return open(self.path_for(sha256), "rb")

    def read_bytes(self, sha256: str) -> bytes:
        with self.open_blob(sha256) as blob:
            return blob.read()

    @contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        """A path to the blob's bytes on this machine for the `with` block (here: the blob itself)."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise FileNotFoundError(sha256)
        yield path

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def _place(self, tmp: Path, sha256: str) -> None:
        """Move a whole, hashed temp file to its name (same content already stored: dropped)."""
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, final)

    def scratch_root(self) -> Path:
        return self.root

    def writer(self, max_bytes: int | None = None) -> BlobWriter:
        tmp_dir = self.scratch_root() / "tmp"
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
        tmp_dir = self.scratch_root() / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=suffix)
        os.close(fd)
        return Path(name)


class BlobWriter:
    """Streams bytes to a temp file while hashing; `commit()` places it at its content address
    (a rename, or an upload; an upload refused raises StoreUnavailable and keeps nothing)."""

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
        try:
            self.store._place(self._tmp, sha)
        finally:
            self._tmp.unlink(missing_ok=True)
        self._done = True
        return sha, self.size

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
