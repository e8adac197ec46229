"""Customer-ready copies: HEIC → JPEG, HEVC/MOV → H.264 MP4, the rest as stored; made once per content."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from media.blob_store import BlobStore
from media.transcode import customer_version
from storage.db import database, open_database
from storage.migrations import migrate
from storage.models import MediaRendition
from tests.support.files import has_encoder, heic_bytes, jpeg_bytes, video_bytes, video_codec


@pytest.fixture
def store(tmp_path):
    open_database(f"sqlite:///{tmp_path}/t.db")
    migrate()
    with database.connection_context():
        yield BlobStore(tmp_path / "media")


def _put(store: BlobStore, data: bytes) -> str:
    return store.put_bytes(data)[0]


def test_heic_becomes_jpeg_once(store):
    sha = _put(store, heic_bytes(80, 60))
    asset = customer_version(store, sha, "image/heic")
    assert asset.mimetype == "image/jpeg" and asset.converted and asset.sha256 != sha
    with Image.open(store.path_for(asset.sha256)) as image:
        assert (image.format, image.size) == ("JPEG", (80, 60))
    again = customer_version(store, sha, "image/heic")
    assert again.sha256 == asset.sha256 and MediaRendition.select().count() == 1


def test_hevc_mov_becomes_h264_mp4(store, tmp_path):
    if not has_encoder("libx265"):
        pytest.skip("this ffmpeg build has no libx265 encoder, so no HEVC clip can be made here")
    source = video_bytes(tmp_path, codec="libx265", container="mov", audio=True)
    assert video_codec(source, tmp_path) == "hevc"
    asset = customer_version(store, _put(store, source), "video/quicktime")
    assert (asset.mimetype, asset.converted) == ("video/mp4", True)
    assert video_codec(store.path_for(asset.sha256).read_bytes(), tmp_path) == "h264"


def test_h264_mov_is_rewrapped_as_mp4(store, tmp_path):
    source = video_bytes(tmp_path, codec="libx264", container="mov")
    asset = customer_version(store, _put(store, source), "video/quicktime")
    assert asset.mimetype == "video/mp4" and asset.converted
    data = store.path_for(asset.sha256).read_bytes()
    assert video_codec(data, tmp_path) == "h264" and data[4:8] == b"ftyp"


def test_h264_mp4_and_jpeg_are_sent_as_stored(store, tmp_path):
    clip = _put(store, video_bytes(tmp_path))
    photo = _put(store, jpeg_bytes())
    assert customer_version(store, clip, "video/mp4").sha256 == clip
    assert customer_version(store, photo, "image/jpeg").sha256 == photo
    assert not customer_version(store, photo, "image/jpeg").converted


def test_a_file_that_cannot_be_converted_falls_back_to_the_original(store):
    sha = _put(store, b"not really a video")
    asset = customer_version(store, sha, "video/quicktime")
    assert (asset.sha256, asset.mimetype, asset.converted) == (sha, "video/quicktime", False)
    broken_image = _put(store, b"\x00\x01 not an image")
    assert customer_version(store, broken_image, "image/heic").sha256 == broken_image
    assert MediaRendition.select().count() == 0, "failures are not remembered, so a later send tries again"


def test_store_paths_come_from_digests_only(tmp_path):
    store = BlobStore(tmp_path / "media")
    for bad in ("../../etc/passwd", "ab" * 31 + "..", "A" * 64, ""):
        with pytest.raises(ValueError):
            store.path_for(bad)
    sha, size = store.put_stream(io.BytesIO(b"hello"))
    assert store.path_for(sha).read_bytes() == b"hello" and size == 5
    assert store.path_for(sha).relative_to(tmp_path / "media").parts[:2] == (sha[:2], sha[2:4])
