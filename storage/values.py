"""Vocabularies stored in the database, shared by every layer (rules, views, reports)."""

from __future__ import annotations

# RepairOrder.status
IN_PROGRESS, UPCOMING, COMPLETED = "in_progress", "upcoming", "completed"
STATUSES = (IN_PROGRESS, UPCOMING, COMPLETED)

# RoFile.kind
PICTURE, VIDEO, DOCUMENT = "picture", "video", "document"
KINDS = (PICTURE, VIDEO, DOCUMENT)

# Activity.kind
MESSAGE, FILE = "message", "file"

# InvitationRequest fields
INVITE_ROLES = ("advisor", "technician", "parts", "manager", "other")
INVITE_MAX_NAME, INVITE_MAX_NOTE = 100, 1000
