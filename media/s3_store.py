"""Blobs in S3-compatible object storage (AWS S3, MinIO, Cloudflare R2): MEDIA_URL=s3://bucket/prefix.

The same interface as `media.blob_store.BlobStore`, so intake, sends, merges and the customer
page do not know which one they have. Objects are named `<prefix>/ab/cd/<sha256>`: content
addressed, so an upload repeated after a crash or by two processes writes the same bytes under
the same name, and nothing ever needs a lock. boto3 does the protocol (signing, multipart uploads
of large videos, retries of throttled calls); the endpoint comes from S3_ENDPOINT_URL, the
credentials from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an
instance role).

Every failure of the store (down, no such bucket, access refused) is raised as StoreUnavailable,
an OSError, with the store's own error code and never a credential: callers already treat an
OSError as "storage error" (a copy is marked failed with its reason and retried; a merge fails
with the storage message).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from media.blob_store import CHUNK, BlobStore, StoreUnavailable, blob_name

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

# Short waits: a store that does not answer must not hold a Slack ack or a worker for minutes.
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 60
MULTIPART_THRESHOLD = 16 * 1024 * 1024


def parse_media_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix"). ValueError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("MEDIA_URL must look like s3://bucket or s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def _reason(exc: Exception) -> str:
    """What went wrong, in the store's words and without secrets."""
    from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "error")
        return {"404": "NoSuchKey", "403": "AccessDenied"}.get(code, code)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return "unreachable"
    return type(exc).__name__


def _unavailable(exc: Exception, what: str) -> StoreUnavailable:
    reason = _reason(exc)
    return StoreUnavailable(f"object storage {what} failed: {reason}")


class S3BlobStore(BlobStore):
    """Blobs in a bucket; MEDIA_DIR only holds temporary files."""

    def __init__(self, client: Any, bucket: str, prefix: str, scratch: Path | str):
        super().__init__(scratch)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def for_settings(cls, settings: Settings) -> S3BlobStore:
        bucket, prefix = parse_media_url(settings.media_url or "")
        return cls(_shared_client(settings.s3_endpoint_url), bucket, prefix, settings.media_dir)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key_for(self, sha256: str) -> str:
        name = blob_name(sha256)
        return f"{self.prefix}/{name}" if self.prefix else name

    def path_for(self, sha256: str) -> Path:
        raise NotImplementedError("blobs in object storage have no path: use local_copy() or open_blob()")

    # -- reading -------------------------------------------------------------------------------
    def _head(self, sha256: str) -> dict | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except ClientError as exc:
            if _reason(exc) in ("NoSuchKey", "NotFound"):
                return None
            raise _unavailable(exc, "read") from None
        except BotoCoreError as exc:
            raise _unavailable(exc, "read") from None

    def has(self, sha256: str | None) -> bool:
        try:
            return bool(sha256) and self._head(sha256) is not None
        except ValueError:
            return False
        except StoreUnavailable as exc:
            # "Not there now": a send or a merge is refused with the file named, not crashed.
            log.warning("%s", exc)
            return False

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise FileNotFoundError(sha256)
        return int(head["ContentLength"])

    def open_blob(self, sha256: str) -> BinaryIO:
        return io.BufferedReader(_RangedObject(self, self.key_for(sha256), self.size(sha256)), CHUNK)

    def read_bytes(self, sha256: str) -> bytes:
        with self.open_blob(sha256) as blob:
            return blob.read()

    @contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        """The blob downloaded to a temporary file, removed after the `with` block."""
        from botocore.exceptions import BotoCoreError, ClientError

        path = self.temp_path()
        try:
            try:
                self.client.download_file(self.bucket, self.key_for(sha256), str(path))
            except ClientError as exc:
                if _reason(exc) in ("NoSuchKey", "NotFound"):
                    raise FileNotFoundError(sha256) from None
                raise _unavailable(exc, "download") from None
            except BotoCoreError as exc:
                raise _unavailable(exc, "download") from None
            yield path
        finally:
            path.unlink(missing_ok=True)

    # -- writing -------------------------------------------------------------------------------
    def adopt(self, path: Path, sha256: str) -> None:
        """Upload a file whose sha256 the caller has checked and found missing (a folder's blob
        being migrated)."""
        self._upload(path, sha256)

    def _place(self, tmp: Path, sha256: str) -> None:
        if self._head(sha256) is None:  # else the same content is there already
            self._upload(tmp, sha256)

    def _upload(self, path: Path, sha256: str) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                self.key_for(sha256),
                Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, use_threads=False),
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc, "upload") from None
        except Exception as exc:  # s3transfer wraps some failures in its own types
            raise _unavailable(exc.__cause__ or exc, "upload") from None

    def put_file(self, path: Path) -> tuple[str, int]:
        """Upload a finished file (a merge, a conversion) without copying it first."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        sha = digest.hexdigest()
        self._place(Path(path), sha)
        return sha, size

    def present(self, sha256: str) -> bool:
        """Is the blob in the bucket? Unlike has(), a store that does not answer raises StoreUnavailable."""
        return self._head(sha256) is not None

    def delete(self, sha256: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc, "delete") from None

    # -- checks --------------------------------------------------------------------------------
    def reachable(self) -> None:
        """The bucket answers (a read: cheap enough for a readiness probe). Raises StoreUnavailable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable(f"bucket {self.bucket} not reachable ({_reason(exc)})") from None

    def probe(self) -> str:
        """Write, read back and delete a small object: the bucket exists and takes writes.
        Raises StoreUnavailable with the store's reason."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = f"{self.prefix}/.probe" if self.prefix else ".probe"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            reason = _reason(exc)
            if reason in ("NoSuchKey", "NoSuchBucket", "NotFound"):
                raise StoreUnavailable(f"bucket {self.bucket} does not exist") from None
            where = self.client.meta.endpoint_url
            raise StoreUnavailable(f"bucket {self.bucket} not reachable at {where} ({reason})") from None
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"ok")
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable(f"bucket {self.bucket} refuses writes: {_reason(exc)}") from None
        return f"{self.describe()} reachable and writable"


@functools.lru_cache(maxsize=8)
def _shared_client(endpoint_url: str | None) -> Any:
    """One client per endpoint and process: boto3 clients are thread-safe, and making one costs
    tens of milliseconds (a store is opened for every copy, send and merge)."""
    return make_client(endpoint_url)


def make_client(endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"max_attempts": 3, "mode": "standard"},
        # Path-style works on every S3-compatible server (MinIO, moto); AWS still accepts it.
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


class _RangedObject(io.RawIOBase):
    """A seekable, read-only view of one object: each read streams from one ranged GET, opened
    at the current position and reopened only after a seek, so a phone seeking in a video
    fetches just the part it plays."""

    def __init__(self, store: S3BlobStore, key: str, length: int):
        self.store, self.key, self.length = store, key, length
        self.position = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.position + offset, io.SEEK_END: self.length + offset}[whence]
        if target != self.position:
            self._drop()
            self.position = max(0, target)
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.length or len(buffer) == 0:
            return 0
        if self._body is None:
            self._body = self._open()
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def _open(self) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.store.client.get_object(Bucket=self.store.bucket, Key=self.key, Range=f"bytes={self.position}-")
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc, "read") from None
        return answer["Body"]

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()
