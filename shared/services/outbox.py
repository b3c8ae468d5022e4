"""Writing mail into the outbox, in the transaction of what the mail announces.

A request never sends mail itself: it adds rows here, commits them with its own changes, and
its twin hands the new rows' ids to a background step after the response
(``fastapi_app/background.py``, ``flask_app/background.py``), which ``MailDelivery`` sends.
If that step never runs (a crash, a restart, an SMTP outage) the rows wait for
``authtwin deliver-mail``; nothing was sent before the commit, so nothing is announced that
did not happen.
"""

import secrets
from datetime import timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from shared.domain.models import OneTimeToken, OutboxMessage, PendingSignup
from shared.infrastructure.db import utcnow
from shared.infrastructure.mail_templates import MailKind

# Where the ids written in a session wait for the route to hand them on: Session.info
# lives exactly as long as the request's session.
QUEUED = "authtwin.outbox"


def enqueue(
    session: Session,
    *,
    kind: MailKind,
    recipient: str,
    context: str | None,
    domain: str,
) -> None:
    """Add one message to the caller's transaction; it is sent only if that commits.
    ``context``: what its template needs, sealed by the caller (services/account_mail.py)."""
    message = OutboxMessage(
        kind=kind,
        recipient=recipient,
        context=context,
        message_id=f"<{secrets.token_hex(16)}@{domain}>",
    )
    session.add(message)
    session.flush()  # assigns the id
    session.info.setdefault(QUEUED, []).append(message.id)


def queued_in(session: Session) -> list[int]:
    """The ids of the messages written through ``session``, once: the route's to deliver.

    Read after the commit; a message of a transaction that rolled back has no row, and
    delivering its id finds nothing to send.
    """
    ids: list[int] = session.info.pop(QUEUED, [])
    return ids


# How long a sent or abandoned message's metadata (kind, recipient, times, last error) is
# kept for whoever investigates "I never got the mail"; its link went when it was sent.
KEEP_FINISHED = timedelta(days=30)


def purge_finished(session: Session, *, batch: int) -> int:
    """Delete up to ``batch`` messages finished over ``KEEP_FINISHED`` ago, and as many
    expired one-time tokens and signups that waited in vain; the caller commits."""
    before, now = utcnow() - KEEP_FINISHED, utcnow()
    finished = (
        select(OutboxMessage.id)
        .where(or_(OutboxMessage.sent_at < before, OutboxMessage.failed_at < before))
        .limit(batch)
    )
    expired = select(OneTimeToken.id).where(OneTimeToken.expires_at < now).limit(batch)
    messages = session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(finished)))
    tokens = session.execute(delete(OneTimeToken).where(OneTimeToken.id.in_(expired)))
    stale = select(PendingSignup.id).where(PendingSignup.expires_at < now).limit(batch)
    signups = session.execute(delete(PendingSignup).where(PendingSignup.id.in_(stale)))
    counts: list[int] = [result.rowcount for result in (messages, tokens, signups)]  # type: ignore[attr-defined]
    return sum(counts)
