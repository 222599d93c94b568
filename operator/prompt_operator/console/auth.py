"""Who may use the console: the holder of the link it printed, and no one else.

At start-up the console makes a random key that never leaves the process, and
a one-time login token that it prints on its own terminal (Jupyter's way). The
browser that opens ``/login?token=...`` spends the token and gets a session
cookie (HttpOnly, SameSite=Strict) whose value is a random session id signed
with the key; every other request must carry it. The CSRF token of a session
is derived from the key and the session id, so no client can pick a cookie and
a form field that match: without the key, neither can be made.

A spent or lost link is replaced by a new one on SIGUSR1 (``kill -USR1 PID``,
the PID is printed next to the link) or by restarting the console; a restart
also ends every session, because the key dies with the process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SESSION_PREFIX = "prompt_console_session"
TOKEN_BYTES = 32
# Tokens printed but not spent; more than a person asks for is a process looping.
MAX_PENDING_TOKENS = 16


def session_cookie_name(port: int) -> str:
    """Cookies are shared by every port of a host: one name per console's port, so
    two consoles on one machine do not overwrite each other's session."""
    return f"{SESSION_PREFIX}_{port}"


class Keys:
    """The process's key, its sessions and its one-time login tokens."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._pending: list[str] = []

    def new_login_token(self) -> str:
        """A fresh one-time token; the oldest unspent one goes when there are too many."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._pending = [*self._pending[-(MAX_PENDING_TOKENS - 1) :], token]
        return token

    def spend(self, token: str) -> bool:
        """Whether ``token`` is an unspent login token; if so it is spent now."""
        found = None
        for pending in self._pending:  # every one compared, in constant time each
            if hmac.compare_digest(pending.encode(), token.encode()):
                found = pending
        if found is None:
            return False
        self._pending.remove(found)
        return True

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def new_session(self) -> str:
        """A cookie value: a random session id and the key's signature of it."""
        sid = secrets.token_urlsafe(32)
        return f"{sid}.{self._sign('session', sid)}"

    def session_id(self, cookie: str) -> str | None:
        """The session id of a cookie this process signed, else None."""
        sid, _, signature = cookie.partition(".")
        if not sid or not hmac.compare_digest(
            signature.encode(), self._sign("session", sid).encode()
        ):
            return None
        return sid

    def csrf_token(self, sid: str) -> str:
        """The token every form and script of session ``sid`` repeats on a POST."""
        return self._sign("csrf", sid)

    def csrf_ok(self, sid: str, sent: str) -> bool:
        return hmac.compare_digest(sent.encode(), self.csrf_token(sid).encode())
