"""The portal's actions (restart, savepoint, suspend, resume): off unless an installation
turns them on, and then only for an authenticated person, with CSRF protection and a
confirmation naming the job. Each goes through the same operation as the CLI
(`common.store.operations`) and is recorded as an event naming who did it.

Who someone is comes from a trusted header an authenticating proxy sets (only where nothing
but the proxy reaches the portal), or from a bearer token of the installation's tokens file
(`NAME:TOKEN` lines): in an `Authorization: Bearer` header, or in the cookie `/login` sets.
Every decision here is a pure function of what was asked; `scheduler.portal.app` does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common.errors import FlinkschedError

ACTIONS = ("restart", "savepoint", "suspend", "resume")
COOKIE = "flinksched_token"


def load_tokens(path: Path) -> dict[str, str]:
    """token -> name from a file of `NAME:TOKEN` lines (# comments and blank lines skipped);
    a line that is not one names its number."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, token = line.partition(":")
        if not colon or not name.strip() or len(token.strip()) < 16:
            raise FlinkschedError(f"{path}:{number}: not NAME:TOKEN with a token of at least "
                                  "16 characters")
        tokens[token.strip()] = name.strip()
    if not tokens:
        raise FlinkschedError(f"{path}: no NAME:TOKEN line")
    return tokens


@dataclass(frozen=True)
class ActionPolicy:
    """Whether the portal acts, and how it knows who asks."""

    enabled: bool = False
    tokens: Mapping[str, str] = field(default_factory=dict)  # token -> who
    trusted_header: str = ""  # in lower case, e.g. x-forwarded-user
    secret: bytes = field(default_factory=lambda: os.urandom(32))  # signs the CSRF tokens

    def problems(self) -> list[str]:
        if self.enabled and not self.tokens and not self.trusted_header:
            return ["portal actions need an authentication: --portal-tokens-file or "
                    "--portal-trusted-header"]
        return []

    def identify(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
        """Who is asking, or None for somebody unknown."""
        if self.trusted_header and headers.get(self.trusted_header, "").strip():
            return headers[self.trusted_header].strip()[:100]
        given = ""
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        elif cookies.get(COOKIE):
            given = cookies[COOKIE]
        return self.who_has(given) if given else None

    def who_has(self, token: str) -> str | None:
        found = None
        for known, name in self.tokens.items():  # every one compared: no early answer
            if hmac.compare_digest(known.encode(), token.encode()):
                found = name
        return found

    def csrf_token(self, who: str) -> str:
        return hmac.new(self.secret, f"act:{who}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Request:
    """An action as a form asked for it."""

    action: str
    reason: str = ""


def refusal(policy: ActionPolicy, who: str | None, job: str, form: Mapping[str, str],
            origin: str, host: str) -> tuple[int, str] | Request:
    """The action asked for, or the HTTP status and reason it is refused with."""
    if not policy.enabled:
        return 405, "the portal is read-only: actions are not enabled here"
    if who is None:
        return 401, "sign in first: actions need a known person"
    if origin and urlsplit(origin).netloc != host:
        return 403, f"refused: the form came from {origin}, not from this portal"
    if not hmac.compare_digest(form.get("csrf", ""), policy.csrf_token(who)):
        return 403, "refused: the form's CSRF token is missing or not this person's"
    action = form.get("action", "")
    if action not in ACTIONS:
        return 400, f"unknown action {action!r}: one of {', '.join(ACTIONS)}"
    if form.get("confirm", "").strip() != job:
        return 400, f"not confirmed: type the job's name, {job}, to {action} it"
    reason = form.get("reason", "").strip()
    if action == "suspend" and not reason:
        return 400, "a suspension needs a reason, for whoever looks next"
    return Request(action, reason[:500])
