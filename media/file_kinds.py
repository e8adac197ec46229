"""What a file is (picture / video / document) and the content types we are willing to serve.

Served content types come from this list only, never from an upload's own claim: a file that
is not on it goes out as `application/octet-stream`, as a download.
"""

from __future__ import annotations

from storage.values import DOCUMENT, PICTURE, VIDEO

# Shown inline on the customer page (browsers render these safely).
INLINE_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/webm": "webm",
}
# Offered as downloads with their own type, so the phone opens the right app.
DOWNLOAD_TYPES = {
    "application/pdf": "pdf",
    "image/heic": "heic",
    "image/heif": "heif",
    "video/quicktime": "mov",
}
FALLBACK_TYPE = "application/octet-stream"
_EXTENSION_TYPES = {
    "heic": "image/heic",
    "heif": "image/heif",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "mov": "video/quicktime",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "webm": "video/webm",
    "pdf": "application/pdf",
}


def normalise_mimetype(mimetype: str | None, name: str = "") -> str:
    """Lower-cased type without parameters; an empty or generic type is guessed from the extension."""
    value = (mimetype or "").split(";", 1)[0].strip().lower()
    if not value or value in (FALLBACK_TYPE, "binary/octet-stream"):
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        value = _EXTENSION_TYPES.get(ext, value or FALLBACK_TYPE)
    return value


def kind_of(mimetype: str | None, name: str = "") -> str:
    value = normalise_mimetype(mimetype, name)
    if value.startswith("image/"):
        return PICTURE
    if value.startswith("video/"):
        return VIDEO
    return DOCUMENT


def served_type(mimetype: str | None) -> tuple[str, bool]:
    """(content type to send, inline?) for a stored file of `mimetype`."""
    value = normalise_mimetype(mimetype)
    if value in INLINE_TYPES:
        return value, True
    if value in DOWNLOAD_TYPES:
        return value, False
    return FALLBACK_TYPE, False


def extension_for(mimetype: str) -> str:
    return INLINE_TYPES.get(mimetype) or DOWNLOAD_TYPES.get(mimetype) or "bin"
