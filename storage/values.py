"""Vocabularies stored in the database, shared by every layer (rules, views, reports)."""

from __future__ import annotations

# RepairOrder.status
IN_PROGRESS, UPCOMING, COMPLETED = "in_progress", "upcoming", "completed"
STATUSES = (IN_PROGRESS, UPCOMING, COMPLETED)

# RoFile.kind
PICTURE, VIDEO, DOCUMENT = "picture", "video", "document"
KINDS = (PICTURE, VIDEO, DOCUMENT)

# Activity.kind (a customer's text is its own kind: it counts as unread, it is no one's message)
MESSAGE, FILE, CUSTOMER_MESSAGE = "message", "file", "customer_message"
# Activity.user_id of what the customer sent (texts, MMS media)
CUSTOMER = "customer"

# RoFile.origin
STAFF_FILE, CUSTOMER_FILE, MERGED_FILE = "staff", "customer", "merged"

# InvitationRequest fields
INVITE_ROLES = ("advisor", "technician", "parts", "manager", "other")
INVITE_MAX_NAME, INVITE_MAX_NOTE = 100, 1000
