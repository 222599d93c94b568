"""The API client's own errors: callers catch these, never a transport library's.

client-go's ``apierrors.IsNotFound``/``IsConflict`` become classes here, and
every network failure (refused, reset, timed out, unreadable answer) becomes
``Unavailable``, so a caller writes ``except ApiError`` and is done.
"""

from __future__ import annotations


class ApiError(Exception):
    """The API server refused a request, or could not be asked (``status`` 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        """Worth trying again later: conflicts, throttling, server and network trouble."""
        return self.status in (0, 409, 429) or self.status >= 500


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class Conflict(ApiError):
    """409: a stale resourceVersion, or the object exists already."""


class Expired(ApiError):
    """410 Gone: the resourceVersion a watch started from is too old; list again."""


class Forbidden(ApiError):
    """403: RBAC, or admission (e.g. a namespace being terminated)."""


class Invalid(ApiError):
    """400 or 422: the request itself is wrong; retrying cannot help."""


class Unavailable(ApiError):
    """No usable answer: the connection failed or timed out, 429, or a 5xx."""


class NotLeading(ApiError):
    """A write refused before it was sent: this replica does not hold the lease.

    Retryable, so a reconcile that meets it is tried again (by the leader)
    rather than turned into a failure condition."""

    def __init__(self, message: str = "this replica is not the leader") -> None:
        super().__init__(0, "NotLeading", message)


_BY_STATUS: dict[int, type[ApiError]] = {
    400: Invalid,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Expired,
    422: Invalid,
    429: Unavailable,
}


def error_for(status: int, reason: str, message: str) -> ApiError:
    """The typed error for an HTTP status the API server answered with."""
    cls = _BY_STATUS.get(status) or (Unavailable if status >= 500 else ApiError)
    return cls(status, reason, message)
