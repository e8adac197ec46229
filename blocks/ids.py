"""Every action id and callback id the app puts in Slack, one scheme: "<feature>.<what>".

The prefix names the feature whose listener module (handlers/<feature>_listeners.py) answers it,
so `grep -rn "files.open"` leads from a button in Slack to its listener, its flow and its view.
"""

from __future__ import annotations

# Merging videos (handlers/files_listeners.py: it starts from the Files modal)
MERGE_START = "merge.start"

# Metrics (handlers/metrics_listeners.py): the admins' Home section
METRICS_EXPORT = "metrics.export"

# A modal that only says something (a refusal, "sending…"): nothing to submit.
NOTICE_MODAL = "ro.notice"

# The RO card (handlers/ro_listeners.py)
RO_STATUS = "ro.status"
RO_INFO = "ro.info"
RO_CONVERSATION = "ro.conversation"
RO_INFO_MODAL = "ro.info_modal"

# Files and sending them (handlers/files_listeners.py)
FILES_OPEN = "files.open"
FILES_PICK = "files.pick"
FILES_PREV = "files.prev"
FILES_NEXT = "files.next"
FILES_MODAL = "files.modal"
FILES_DONE = "files.done"
SEND_RETRY = "send.retry"
SEND_REVOKE = "send.revoke"

# Participants and invitation requests (handlers/participants_listeners.py)
PARTICIPANTS_OPEN = "participants.open"
PARTICIPANTS_USERS = "participants.users"
PARTICIPANTS_MODAL = "participants.modal"
PARTICIPANTS_REQUEST_INVITE = "participants.request_invite"
PARTICIPANTS_INVITE_MODAL = "participants.invite_modal"

# The customer conversation (handlers/conversation_listeners.py)
CONVERSATION_RETRY = "conversation.retry"
CONVERSATION_ATTACH = "conversation.attach"
CONVERSATION_DISMISS = "conversation.dismiss"
CONVERSATION_ATTACH_MODAL = "conversation.attach_modal"
CONVERSATION_PREV = "conversation.prev"
CONVERSATION_NEXT = "conversation.next"

# App Home (handlers/home_listeners.py)
HOME_SEARCH = "home.search"
HOME_MINE = "home.mine"
HOME_ALL = "home.all"
HOME_STATUS = "home.status"
HOME_PREV = "home.prev"
HOME_NEXT = "home.next"
HOME_CLEAR = "home.clear"
HOME_OPEN = "home.open"
HOME_MARK_READ = "home.mark_read"
HOME_NOTIFY = "home.notify"

# `/ro admin` (handlers/admin_listeners.py)
ADMIN_TOGGLE = "admin.toggle"
ADMIN_PREV = "admin.prev"
ADMIN_NEXT = "admin.next"
ADMIN_MODAL = "admin.modal"

FEATURES = ("ro", "files", "send", "participants", "home", "admin", "conversation", "merge", "metrics")


def feature_of(identifier: str) -> str | None:
    """The feature prefix of one of our ids, or None for an id we never made."""
    prefix, dot, rest = (identifier or "").partition(".")
    return prefix if dot and rest and prefix in FEATURES else None
