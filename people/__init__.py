"""People on repair orders: participants, unread counts, notification digests, invitation requests.

Domain services only: no Slack types. Listeners in handlers/ hand them plain ids and text, and
give them a small `Workspace` (people.participant_rules) to add or remove someone from a channel.
"""
