"""`python bot.py media migrate`: the local media folder (MEDIA_DIR) copied into MEDIA_URL's bucket.

Safe to run again and to stop half-way: blobs are content addressed, so one already in the bucket
is skipped, and each file is hashed before it is sent, so a file damaged on disk (its content no
longer matches its name) is reported and never uploaded under a name that lies. Nothing is
deleted from the folder: once the bucket is in use and backed up, the folder can be removed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from media.blob_store import CHUNK, BlobStore
from media.s3_store import S3BlobStore

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class MigrateReport:
    copied: int = 0
    present: int = 0
    damaged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.copied} copied, {self.present} already there, {len(self.damaged)} damaged"


def blobs_in(folder: BlobStore) -> list[Path]:
    """The blobs of a media folder (ab/cd/<sha256>), not its temporary files."""
    return [
        path
        for path in sorted(folder.root.glob("??/??/*"))
        if path.is_file()
        and _SHA256.match(path.name)
        and path.parent.name == path.name[2:4]
        and path.parent.parent.name == path.name[:2]
    ]


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def migrate(folder: BlobStore, bucket: S3BlobStore, progress: Callable[[int, int], None] | None = None) -> MigrateReport:
    """Copy every blob of `folder` missing from `bucket`. StoreUnavailable stops it (run it again)."""
    report = MigrateReport()
    paths = blobs_in(folder)
    for done, path in enumerate(paths, 1):
        sha = path.name
        if bucket.present(sha):
            report.present += 1
        elif _digest(path) != sha:
            report.damaged.append(sha)
        else:
            bucket.adopt(path, sha)
            report.copied += 1
        if progress:
            progress(done, len(paths))
    return report
