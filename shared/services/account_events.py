"""Announcing what happens to accounts, once it is committed.

Events are gathered in the transaction that causes them and published after it commits
(never before: a stream must not close for a logout that rolled back), through the app's
broker (services/event_broker.py). Changes to a user row are found by SQLAlchemy
itself, as they are flushed, whichever service made them: a new route that changes an
address or ends sessions is announced without remembering to. A session's end is a bulk
UPDATE of its refresh tokens, which the ORM does not track: ``TokenStore`` says so.

Publishing is best effort. A broker that fails (Redis down) loses the event, not the
request that caused it: each stream checks its credential at every heartbeat, so a lost
revocation still ends the stream within ``events_heartbeat_seconds``.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from shared.domain.events import SESSION_REVOKED, SESSIONS_REVOKED, USER_UPDATED, AccountEvent
from shared.domain.models import User
from shared.services.event_broker import EventBroker

logger = logging.getLogger("authtwin.events")

# Session.info lives as long as the request's session; the events wait there for the commit.
PENDING = "authtwin.events"
# What a client shows of the account (UserPublic): a change to any is ``user.updated``.
PUBLIC_FIELDS = ("email", "full_name", "is_active", "is_superuser", "is_verified")
# And what says why sessions ended: a new token generation ends them all (users.py).
TRACKED = (*PUBLIC_FIELDS, "hashed_password", "token_generation")
DEACTIVATED, DELETED = "(deactivated)", "(deleted)"


class AccountEvents:
    """Collects events in each transaction of ``sessions`` and publishes the committed ones."""

    def __init__(self, *, broker: EventBroker) -> None:
        self._broker = broker

    def install(self, sessions: sessionmaker[Session]) -> None:
        # Before the flush: after it, a value the database computes (the token generation's
        # increment) is expired and shows no change.
        event.listen(sessions, "before_flush", self._collect_user_changes)
        event.listen(sessions, "after_commit", self._publish_pending)
        event.listen(sessions, "after_rollback", self._discard_pending)

    @staticmethod
    def session_revoked(session: Session, *, user_id: int, session_id: str, reason: str) -> None:
        """One session ended (logout, reuse detection); published if ``session`` commits."""
        _pending(session).sessions.append(
            AccountEvent(
                type=SESSION_REVOKED,
                user_id=user_id,
                session_id=session_id,
                data={"reason": reason},
            )
        )

    @staticmethod
    def _collect_user_changes(session: Session, _context: Any, _instances: Any) -> None:
        pending = _pending(session)
        for user in (obj for obj in session.dirty if isinstance(obj, User)):
            state = inspect(user)
            changes = pending.users.setdefault(user.id, set())
            changes.update(name for name in TRACKED if state.attrs[name].history.has_changes())
            if "is_active" in changes and not user.is_active:
                changes.add(DEACTIVATED)
        for user in (obj for obj in session.deleted if isinstance(obj, User)):
            pending.users.setdefault(user.id, set()).add(DELETED)

    def _publish_pending(self, session: Session) -> None:
        pending: Pending | None = session.info.pop(PENDING, None)
        for account_event in pending.events() if pending else ():
            try:
                self._broker.publish(account_event)
            except redis.RedisError as exc:
                logger.warning("account event not published (%s): %s", account_event.type, exc)

    @staticmethod
    def _discard_pending(session: Session) -> None:
        session.info.pop(PENDING, None)


@dataclass
class Pending:
    """What one transaction did to accounts, gathered over its flushes (a service may flush
    a change before it makes the next: a password reset flushes the new hash before it
    ends the sessions), and announced as one event of each kind per user."""

    users: dict[int, set[str]] = field(default_factory=dict)
    sessions: list[AccountEvent] = field(default_factory=list)

    def events(self) -> list[AccountEvent]:
        """Each user's update first: a revocation closes the stream that would carry it."""
        announced = []
        for user_id, changes in self.users.items():
            if changed := [name for name in PUBLIC_FIELDS if name in changes]:
                announced.append(
                    AccountEvent(type=USER_UPDATED, user_id=user_id, data={"changed": changed})
                )
            if reason := _why_ended(changes):
                announced.append(
                    AccountEvent(type=SESSIONS_REVOKED, user_id=user_id, data={"reason": reason})
                )
        return announced + self.sessions


def _pending(session: Session) -> Pending:
    pending: Pending = session.info.setdefault(PENDING, Pending())
    return pending


def _why_ended(changes: set[str]) -> str | None:
    """Why every session of the user ended, if they did, as the changes show it."""
    if DELETED in changes:
        return "deleted"
    if "token_generation" not in changes:
        return None
    if "hashed_password" in changes:
        return "password_changed"
    return "deactivated" if DEACTIVATED in changes else "revoked"
