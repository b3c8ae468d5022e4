"""Account events: what a user's open streams are told (GET /users/me/events, /ws).

An event says *that* something happened to the account, not what the account now holds: a
client that wants the new profile asks ``GET /users/me``. So the events, the replay window
that keeps them (in Redis, when shared) and anything logging them hold no address or name.
"""

import json
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

EventType = Literal["session.revoked", "sessions.revoked", "user.updated", "token.expired"]

# This stream's session ended: logged out, or its refresh family revoked when a spent
# refresh token was replayed. Only the streams of that session are told.
SESSION_REVOKED: Final = "session.revoked"
# Every session of the user ended: password changed or reset, deactivated, deleted.
SESSIONS_REVOKED: Final = "sessions.revoked"
# The account changed: its name, address, verification or role.
USER_UPDATED: Final = "user.updated"
# The access token that opened the stream expired; the client opens a new one with a
# refreshed token. Never published: each stream tells itself.
TOKEN_EXPIRED: Final = "token.expired"

# After these, the stream checks its credential and ends if it no longer holds.
REVOCATIONS: Final = frozenset({SESSION_REVOKED, SESSIONS_REVOKED})


@dataclass(frozen=True)
class AccountEvent:
    type: EventType
    user_id: int
    data: dict[str, Any] = field(default_factory=dict)
    # session.revoked: the session it ended (which streams it is for); never sent.
    session_id: str | None = None
    # Given by the broker when it publishes: increasing over every process that shares it.
    id: int = 0
    # When it was published (seconds since the epoch): how long it may be replayed.
    published_at: float = 0.0

    def numbered(self, event_id: int, published_at: float) -> "AccountEvent":
        return replace(self, id=event_id, published_at=published_at)

    def is_for(self, session_id: str) -> bool:
        """Whether a stream of ``session_id`` is told: another session's logout is not news."""
        return self.type != SESSION_REVOKED or self.session_id == session_id

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "user_id": self.user_id,
                "data": self.data,
                "session_id": self.session_id,
                "published_at": self.published_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> "AccountEvent":
        fields = json.loads(raw)
        return cls(
            id=int(fields["id"]),
            type=fields["type"],
            user_id=int(fields["user_id"]),
            data=dict(fields["data"]),
            session_id=fields["session_id"],
            published_at=float(fields["published_at"]),
        )


def parse_event_id(raw: str | None) -> int | None:
    """A client's ``Last-Event-ID`` (or the socket's ``last_event_id``): an id this service
    sent is a decimal integer; anything else resumes nothing rather than fail the stream,
    as a browser sends back whatever it was last given."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    return int(raw)
