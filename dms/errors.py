"""Errors a DMS connector may raise from ``fetch`` or ``check``.

Whatever the subclass, the caller's rule is the same: change nothing and try
again at the next interval. The subclasses exist so that ``check`` and the logs
can tell an operator *what* to fix.
"""


class DmsError(Exception):
    """Base class: the DMS could not be read this time."""


class DmsUnavailable(DmsError):
    """The DMS is down or out of reach: refused, timed out, 5xx, rate limited, file missing."""


class DmsAuthError(DmsError):
    """The DMS refused our credentials or denied access to the shop."""


class DmsBadData(DmsError):
    """The DMS answered, but with something we cannot read (HTML, wrong shape, unparsable file)."""
