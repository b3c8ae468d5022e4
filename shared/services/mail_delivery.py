"""Sending what the outbox holds: after a response, and by ``authtwin deliver-mail``.

Each message is claimed before it is sent (a lease: ``claimed_until``), by a compare-and-set
that one sender alone can win, and marked sent once the SMTP server has accepted it. While
the send goes on, the sender renews its claim every third of the lease: the socket timeout
bounds each read, not the send, so no fixed lease outlasts a server that trickles its reply.
A live sender thus keeps its claim however slow the server, and two senders (a background
step and the worker, or two workers) never send one message twice. A claim expires only
when its sender stops renewing it: it died (or lost its database for a whole lease). Then
the message is sent again: the one case of a duplicate, when the server accepted it and the
crash came before the mark; the Message-ID is the same, for the receiving side to recognise
it.

A sender that is stopping (``stop``: its process was told to exit) claims nothing more, and
``release_unsent`` lets go of what it claimed and has not sent, so that the next sender may
try at once instead of after the lease. A send that completes after the release is the same
rare duplicate as a crash after the server accepted.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.domain.models import OutboxMessage
from shared.infrastructure.db import utcnow
from shared.infrastructure.logs import log_unexpected_error
from shared.infrastructure.mail import MailBackend, MailError, OutgoingMail
from shared.infrastructure.outages import is_database_outage
from shared.security.sealing import UnreadableSeal
from shared.services.account_mail import AccountMail

logger = logging.getLogger("authtwin.mail")
MAX_BACKOFF = timedelta(hours=1)
P = ParamSpec("P")
R = TypeVar("R")
Outcome = Literal["sent", "retrying", "failed", "dropped", "skipped"]


@dataclass
class DeliveryReport:
    """What one pass did: sent, to retry later, given up, dropped (no account), or left to
    another sender (already claimed or sent)."""

    counts: dict[Outcome, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


class MailDelivery:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        backend: MailBackend,
        mail: AccountMail,
        retry_after: timedelta,
        max_attempts: int,
        lease: timedelta,
    ) -> None:
        self._sessions = sessions
        self._backend = backend
        self._mail = mail
        self._retry_after = retry_after
        self._max_attempts = max_attempts
        self._lease = lease
        # After a failure, background steps leave mail to the worker for a while, rather
        # than the pool's threads waiting out the SMTP timeout on a server that is down at
        # every handover.
        self._paused_until = 0.0
        # What this sender has claimed and not finished, and whether it is stopping; the
        # lock orders a release against a heartbeat's renewal.
        self._lock = threading.Lock()
        self._sending: set[int] = set()
        self._stopping = threading.Event()
        self._released = False

    def stop(self) -> None:
        """Claim nothing more: the process is about to exit."""
        self._stopping.set()

    def release_unsent(self) -> int:
        """Let go of the messages claimed and not yet sent; how many. After ``stop``."""
        with self._lock:
            self._released = True
            ids = sorted(self._sending)
            if not ids:
                return 0
            try:
                with self._sessions() as session:
                    session.execute(
                        update(OutboxMessage)
                        .where(
                            OutboxMessage.id.in_(ids),
                            OutboxMessage.sent_at.is_(None),
                            OutboxMessage.failed_at.is_(None),
                        )
                        # Not an attempt that failed: it does not count towards giving up.
                        .values(claimed_until=None, attempts=OutboxMessage.attempts - 1)
                    )
                    session.commit()
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                logger.warning("mail %s: claims left to their lease: %s", ids, exc)
                return 0
        logger.info("mail %s: let go unsent, for the next sender", ids)
        return len(ids)

    def deliver(self, ids: list[int]) -> DeliveryReport:
        """The background step after a response: send the messages it wrote.

        It never raises: no one is left to answer. A database outage or a bug is logged and
        the messages stay in the outbox, for the worker.
        """
        report = DeliveryReport()
        try:
            for message_id in ids:
                if self._stopping.is_set():
                    break  # the rest stays in the outbox, unclaimed
                if time.monotonic() < self._paused_until:
                    report.add("skipped")  # still in the outbox: the worker's next pass
                    continue
                report.add(self._deliver_one(message_id))
        except Exception as exc:
            if is_database_outage(exc):
                logger.warning("mail left in the outbox: database unavailable: %s", exc)
            else:
                log_unexpected_error(exc)
        return report

    def deliver_due(self, *, limit: int = 100) -> DeliveryReport:
        """One pass of the worker: every message whose (next) attempt is due, oldest first."""
        now = utcnow()
        with self._sessions() as session:
            due = session.scalars(
                select(OutboxMessage.id)
                .where(*_pending(now))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            ).all()
        report = DeliveryReport()
        for message_id in due:
            if self._stopping.is_set():
                break
            report.add(self._deliver_one(message_id))
        return report

    def awaiting_retry(self) -> int:
        """How many messages failed and wait for another attempt: mail not getting out,
        whether or not a retry is due yet."""
        with self._sessions() as session:
            waiting = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.sent_at.is_(None),
                    OutboxMessage.failed_at.is_(None),
                    OutboxMessage.last_error.is_not(None),
                )
            )
        return waiting or 0

    def given_up(self, *, since: datetime, limit: int = 100) -> tuple[int, list[OutboxMessage]]:
        """Messages given up since ``since`` (refused for good, or out of attempts): how
        many, and the latest ``limit`` of them, for an operator to look into."""
        given_up = (OutboxMessage.failed_at.is_not(None), OutboxMessage.failed_at >= since)
        with self._sessions() as session:
            count = session.scalar(select(func.count()).select_from(OutboxMessage).where(*given_up))
            latest = session.scalars(
                select(OutboxMessage)
                .where(*given_up)
                .order_by(OutboxMessage.failed_at.desc(), OutboxMessage.id.desc())
                .limit(limit)
            ).all()
        return count or 0, list(latest)

    def pending(self) -> int:
        """How many messages are neither sent nor given up."""
        with self._sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
            )
        return count or 0

    def _deliver_one(self, message_id: int) -> Outcome:
        prepared = _once_more_if_locked(self._claim_in_session, message_id)
        # The session is closed: no connection or transaction is held while SMTP talks.
        if not isinstance(prepared, OutgoingMail):
            return prepared
        try:
            try:
                with self._claim_held(message_id):
                    self._backend.send(prepared)
            except MailError as error:
                return self._failed(message_id, error)
            self._finish(message_id, sent=True, error=None)
            return "sent"
        finally:
            with self._lock:
                self._sending.discard(message_id)

    def _claim_in_session(self, message_id: int) -> OutgoingMail | Outcome:
        # Under the lock: a claim is either refused by ``stop`` or recorded before any
        # ``release_unsent`` can look.
        with self._lock:
            if self._stopping.is_set():
                return "skipped"
            with self._sessions() as session:
                prepared = self._claim(session, message_id)
            if isinstance(prepared, OutgoingMail):
                self._sending.add(message_id)
            return prepared

    def _claim(self, session: Session, message_id: int) -> OutgoingMail | Outcome:
        now = utcnow()
        claimed = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, *_pending(now))
            .values(claimed_until=now + self._lease, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        message = session.get(OutboxMessage, message_id)
        if claimed.rowcount != 1 or message is None:  # type: ignore[attr-defined]
            return "skipped"
        if not self._mail.prepare(session, message):
            session.delete(message)  # an address with no account: nothing to keep
            session.commit()
            return "dropped"
        session.commit()  # a reset link's token, with the message that carries it
        try:
            return self._mail.render(message)
        except UnreadableSeal as exc:
            # Sealed under another secret (rotated since), or altered in the table: nothing
            # trustworthy to send. Given up, for the operator to see (authtwin mail-status).
            logger.warning("mail %s not sent, given up: its context %s", message_id, exc)
            error = f"context unreadable: {exc}"
            values = {"context": None, "claimed_until": None, "last_error": error}
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(failed_at=utcnow(), **values)
            )
            session.commit()
            return "failed"

    @contextmanager
    def _claim_held(self, message_id: int) -> Iterator[None]:
        """Renew the claim every third of the lease until the body (the send) returns or raises.

        A heartbeat thread does it, so a slow send cannot delay it; it is joined before the
        message is marked, so no renewal comes after the mark.
        """
        stop = threading.Event()
        heartbeat = threading.Thread(
            target=self._renew_until, args=(message_id, stop), name="outbox-claim", daemon=True
        )
        heartbeat.start()
        try:
            yield
        finally:
            stop.set()
            heartbeat.join()

    def _renew_until(self, message_id: int, stop: threading.Event) -> None:
        # A third: a claim renewed on time still has two thirds of a lease to run, so one
        # late renewal (a slow database) does not let it lapse.
        interval = self._lease.total_seconds() / 3
        while not stop.wait(interval):
            if not self._renew(message_id):
                return

    def _renew(self, message_id: int) -> bool:
        """Push the claim a lease ahead; False when renewing should stop.

        It runs in a thread no one waits on for an answer, so it never raises: a database
        outage is one warning line, a bug its traceback, and the claim is left to its lease.
        """
        now = utcnow()
        try:
            with self._lock, self._sessions() as session:
                if self._released:
                    return False  # let go: the next sender's to claim
                renewed = session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id == message_id,
                        OutboxMessage.sent_at.is_(None),
                        OutboxMessage.failed_at.is_(None),
                    )
                    .values(claimed_until=now + self._lease)
                    .execution_options(synchronize_session=False)
                )
                session.commit()
        except Exception as exc:
            if is_database_outage(exc):
                logger.warning(
                    "mail %s: claim not renewed: database unavailable: %s", message_id, exc
                )
            else:
                log_unexpected_error(exc)
            return False
        count: int = renewed.rowcount  # type: ignore[attr-defined]
        return count == 1  # 0: no longer pending, nothing left to hold

    def _failed(self, message_id: int, error: MailError) -> Outcome:
        with self._sessions() as session:
            attempts = session.scalar(
                select(OutboxMessage.attempts).where(OutboxMessage.id == message_id)
            )
        gave_up = error.permanent or (attempts or 0) >= self._max_attempts
        if not error.permanent:
            self._paused_until = time.monotonic() + self._retry_after.total_seconds()
        logger.warning(
            "mail %s not sent (attempt %s%s): %s",
            message_id,
            attempts,
            ", given up" if gave_up else "",
            error,
        )
        if gave_up:
            self._finish(message_id, sent=False, error=str(error))
            return "failed"
        backoff = min(self._retry_after * 2 ** ((attempts or 1) - 1), MAX_BACKOFF)
        self._update(message_id, next_attempt_at=utcnow() + backoff, last_error=str(error)[:255])
        return "retrying"

    def _finish(self, message_id: int, *, sent: bool, error: str | None) -> None:
        """Sent, or given up: either way the context goes, and the link's token with it."""
        now = utcnow()
        ended = {"sent_at": now} if sent else {"failed_at": now}
        error_text = None if error is None else error[:255]
        self._update(message_id, context=None, last_error=error_text, **ended)

    def _update(self, message_id: int, **values: object) -> None:
        def write() -> None:
            with self._sessions() as session:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == message_id)
                    .values(claimed_until=None, **values)
                )
                session.commit()

        _once_more_if_locked(write)


def _once_more_if_locked(operation: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``operation``, and once more if SQLite said "database is locked".

    In WAL mode SQLite refuses a write at once, without waiting out busy_timeout, when
    another connection committed after this one's read snapshot began (a request's write
    beside the background step's): the outbox writes are compare-and-sets, so trying again,
    on a fresh snapshot, is safe. Seen on the Flask twin's pool (tests/test_recovery_attacks).
    """
    try:
        return operation(*args, **kwargs)
    except OperationalError as error:
        if "database is locked" not in str(error.orig):
            raise
    return operation(*args, **kwargs)


def _pending(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Unsent, due, and claimed by no live sender."""
    return (
        OutboxMessage.sent_at.is_(None),
        OutboxMessage.failed_at.is_(None),
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )
