"""``authtwin`` command line: administration that needs no running server."""

import argparse
import getpass
import json
import signal
import sys
import threading
from datetime import timedelta

from pydantic import ValidationError

from shared.infrastructure import migrations
from shared.infrastructure.config import Settings
from shared.infrastructure.db import utcnow
from shared.infrastructure.outages import DatabaseUnreachable
from shared.runtime import Runtime
from shared.services.outbox import purge_finished


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise SystemExit("Passwords do not match")
    return password


def create_superuser(email: str, *, password_stdin: bool) -> int:
    runtime = Runtime.build(Settings())
    runtime.prepare()
    password = _read_password(password_stdin)
    try:
        # The policy the API applies to every password it sets, with its reason.
        if problem := runtime.policy.problem(password, email=email):
            print(f"error: password: {problem}", file=sys.stderr)
            return 2
        with runtime.sessions() as session:
            user = runtime.users.ensure_superuser(session=session, email=email, password=password)
    except ValidationError as exc:
        messages = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: {messages}", file=sys.stderr)
        return 2
    finally:
        runtime.dispose()
    print(f"superuser {user.email} (id {user.id}) is ready")
    return 0


def migrate(*, revision: str, downgrade: bool) -> int:
    """Bring the database of ``AUTHTWIN_DATABASE_URL`` to ``revision``: the deployment step
    before the servers start. Safe to run from several places at once, and again."""
    settings = Settings()
    try:
        before = migrations.current_revision(settings)
        if downgrade:
            migrations.downgrade(settings, revision)
        else:
            migrations.upgrade(settings, revision)
        after = migrations.current_revision(settings)
    except DatabaseUnreachable as exc:
        print(f"error: the database is unreachable: {exc}", file=sys.stderr)
        return 1
    print(f"database at revision {after or 'base (no tables)'} (was {before or 'base'})")
    return 0


def purge_tokens(*, batch: int) -> int:
    """Delete the token rows nothing can use any more (services/token_store.py says which),
    ``batch`` at a time, each batch its own short transaction. Safe to run while the
    servers serve, and from a scheduler (cron) for sessions that never log out."""
    runtime = Runtime.build(Settings())
    total = {
        "expired denials": 0,
        "expired refresh tokens": 0,
        "rows of ended sessions": 0,
        "old mail and expired links": 0,
    }
    try:
        with runtime.sessions() as session:
            while True:
                purged = runtime.token_store.purge(session=session, batch=batch)
                mail = purge_finished(session, batch=batch)
                session.commit()
                total["expired denials"] += purged.expired_denials
                total["expired refresh tokens"] += purged.expired_refresh
                total["rows of ended sessions"] += purged.dead_family_rows
                total["old mail and expired links"] += mail
                if purged.total + mail == 0:
                    break
    except DatabaseUnreachable as exc:
        print(f"error: the database is unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.dispose()
    print("purged " + ", ".join(f"{count} {what}" for what, count in total.items()))
    return 0


def deliver_mail(*, loop: bool, interval: float) -> int:
    """Send what the outbox holds that is due: once, or every ``interval`` seconds until
    SIGTERM or SIGINT (finishing the pass under way). Any number may run beside the servers
    and each other: every message is claimed before it is sent (services/mail_delivery.py).

    Once, it exits 1 while mail is not getting out: a message it gave up, or any waiting
    for a retry, due yet or not. A scheduler running it between two retries hears it too."""
    runtime = Runtime.build(Settings())
    stop = threading.Event()

    def stopping(*_: object) -> None:
        # The pass under way ends after the message being sent: nothing more is claimed.
        runtime.mail_delivery.stop()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stopping)
    unsent = False
    try:
        while True:
            report = runtime.mail_delivery.deliver_due()
            if report.counts:
                print(json.dumps(report.counts), flush=True)
            unsent = unsent or bool(report.counts.get("retrying") or report.counts.get("failed"))
            if not loop and not report.counts.get("sent"):
                # Every pass after the last send finds nothing due.
                unsent = unsent or runtime.mail_delivery.awaiting_retry() > 0
                return 1 if unsent else 0
            if loop and stop.wait(interval):
                return 0
    except DatabaseUnreachable as exc:
        print(f"error: the database is unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.dispose()


def mail_status(*, hours: float) -> int:
    """Count what the outbox holds: pending, waiting for a retry, and given up in the last
    ``hours``, one JSON line; then one line for each given-up message (the latest 100).

    Exits 1 while any mail was given up in that window or waits for a retry: a scheduler or
    a monitoring check hears that mail is not getting out. Given-up mail is never retried:
    its link is erased; whoever needs it asks again (a new reset, a new verification link).
    """
    runtime = Runtime.build(Settings())
    since = utcnow() - timedelta(hours=hours)
    try:
        delivery = runtime.mail_delivery
        failed, latest = delivery.given_up(since=since)
        summary = {
            "pending": delivery.pending(),
            "retrying": delivery.awaiting_retry(),
            "failed": failed,
            "since": since.isoformat(timespec="seconds"),
        }
    except DatabaseUnreachable as exc:
        print(f"error: the database is unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.dispose()
    print(json.dumps(summary))
    for message in latest:
        failed_at = message.failed_at.isoformat(timespec="seconds") if message.failed_at else ""
        print(
            f"{message.id}\t{failed_at}\t{message.kind}\t{message.recipient}\t"
            f"{message.attempts} attempt(s)\t{message.last_error or ''}"
        )
    return 1 if failed or summary["retrying"] else 0


def _hours(value: str) -> float:
    hours = float(value)
    if not 0 < hours <= 24 * 365:  # NaN fails both
        raise argparse.ArgumentTypeError("must be more than 0 and at most a year (8760)")
    return hours


def _batch_size(value: str) -> int:
    size = int(value)
    if not 1 <= size <= 100_000:
        raise argparse.ArgumentTypeError("must be from 1 to 100000")
    return size


def new_migration(message: str) -> int:
    """Write the next revision from what the models have that the database has not."""
    path = migrations.new_revision(Settings(), message)
    print(f"wrote {path}: read it, adjust it, and commit it with the model change")
    return 0


def _migration_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    migrate = commands.add_parser("migrate", help="upgrade the database to the code's schema")
    migrate.add_argument(
        "--revision", default="head", help="the revision to go to (default: head, the code's)"
    )
    migrate.add_argument(
        "--downgrade",
        action="store_true",
        help="go back to --revision (required then; `base` drops every table)",
    )
    new = commands.add_parser(
        "new-migration", help="write the next revision from the models (development)"
    )
    new.add_argument("message", help="what the revision does, e.g. 'add users.last_login'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="authtwin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _migration_commands(commands)
    create = commands.add_parser(
        "create-superuser", help="create a superuser, or promote an existing account"
    )
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    purge = commands.add_parser(
        "purge-tokens", help="delete expired and ended token rows (safe while serving)"
    )
    purge.add_argument(
        "--batch", type=_batch_size, default=1000, help="rows per transaction (default 1000)"
    )
    deliver = commands.add_parser("deliver-mail", help="send the mail waiting in the outbox")
    deliver.add_argument("--loop", action="store_true", help="keep delivering until stopped")
    deliver.add_argument(
        "--interval", type=float, default=5.0, help="seconds between passes with --loop"
    )
    status = commands.add_parser(
        "mail-status", help="count pending, retrying and given-up mail; list what was given up"
    )
    status.add_argument(
        "--hours", type=_hours, default=24.0, help="given up within this many hours (default 24)"
    )
    args = parser.parse_args(argv)
    if args.command == "mail-status":
        return mail_status(hours=args.hours)
    if args.command == "deliver-mail":
        return deliver_mail(loop=args.loop, interval=args.interval)
    if args.command == "purge-tokens":
        return purge_tokens(batch=args.batch)
    if args.command == "migrate":
        if args.downgrade and args.revision == "head":
            parser.error("--downgrade needs --revision (a revision id, or base)")
        return migrate(revision=args.revision, downgrade=args.downgrade)
    if args.command == "new-migration":
        return new_migration(args.message)
    return create_superuser(args.email, password_stdin=args.password_stdin)


if __name__ == "__main__":
    sys.exit(main())
