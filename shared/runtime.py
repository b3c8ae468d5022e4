"""What one app instance is made of, built from its settings by both factories alike.

This is where the layers meet (the composition root): infrastructure (engines, sessions),
security (hasher, policy, token codec, throttle) and the services that hold them. Routes
never assemble these: they ask their twin's deps for a service (``get_auth_service``,
``get_user_service``) and pass it only what comes with the request.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.infrastructure import migrations
from shared.infrastructure.config import Settings
from shared.infrastructure.db import (
    make_engine,
    make_probe_engine,
    make_read_engine,
    make_session_factory,
)
from shared.infrastructure.logs import configure_logging
from shared.infrastructure.mail import make_mail_backend
from shared.infrastructure.outages import DatabaseUnreachable
from shared.infrastructure.timeouts import DatabaseTimeouts
from shared.security.password_policy import PasswordPolicy
from shared.security.passwords import PasswordHasher
from shared.security.sealing import Seal, sealing_secret
from shared.security.throttle import Throttle
from shared.security.tokens import SigningKey, TokenCodec
from shared.services.account_events import AccountEvents
from shared.services.account_mail import AccountMail
from shared.services.admin import AdminService
from shared.services.auth import AuthService
from shared.services.email_changes import EmailChanges
from shared.services.event_broker import EventBroker, make_event_broker
from shared.services.event_streams import EventStreams, StreamLimits
from shared.services.mail_delivery import MailDelivery
from shared.services.mail_pool import MailPool
from shared.services.one_time_tokens import OneTimeTokens
from shared.services.pending_signups import PendingSignups
from shared.services.recovery import RecoveryService
from shared.services.token_store import TokenStore
from shared.services.users import UserService
from shared.web.cors import CorsPolicy

logger = logging.getLogger("authtwin")
# The outbox's lease, in SMTP timeouts. A live sender renews its claim every third of it
# however long the send takes (MailDelivery), so the lease need only outlast one renewal's gap
# and a slow renewal; it is also how long a dead sender's message waits to be sent again.
CLAIM_TIMEOUTS = 10


@dataclass(frozen=True, kw_only=True)
class Runtime:
    settings: Settings
    engine: Engine
    # Read-only lookups run in autocommit, in a pool of their own: no BEGIN/ROLLBACK round
    # trips for one SELECT, and no isolation switch at each checkout.
    read_engine: Engine
    # /health's own: no pool to wait in behind user requests (make_probe_engine).
    probe_engine: Engine
    sessions: sessionmaker[Session]
    passwords: PasswordHasher
    policy: PasswordPolicy
    tokens: TokenCodec
    throttle: Throttle
    cors: CorsPolicy
    token_store: TokenStore
    auth: AuthService
    users: UserService
    admins: AdminService
    recovery: RecoveryService
    mail_delivery: MailDelivery
    # Sends after a response, in threads of its own (services/mail_pool.py); each twin's
    # background.py hands it what a request committed, and stops it at shutdown.
    mail_pool: MailPool
    broker: EventBroker
    streams: EventStreams

    @classmethod
    def build(cls, settings: Settings) -> "Runtime":
        """Create the pieces; connects to nothing until ``prepare`` or the first request."""
        configure_logging()
        if settings.env == "production":
            for problem in settings.cleartext_links():
                logger.warning("INSECURE (AUTHTWIN_ALLOW_CLEARTEXT=true): %s", problem)
        timeouts = DatabaseTimeouts.from_settings(settings)
        url = settings.database_url
        engine = make_engine(url, pool_size=settings.db_pool_size, timeouts=timeouts)
        passwords = PasswordHasher(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
            legacy_bcrypt_rounds=settings.legacy_bcrypt_rounds,
        )
        policy = PasswordPolicy(min_length=settings.password_min_length)
        tokens = _token_codec(settings)
        throttle = Throttle.from_settings(settings)
        sessions = make_session_factory(engine)
        broker = make_event_broker(
            settings.redis_url,
            key_prefix=settings.redis_key_prefix,
            replay_count=settings.events_replay_count,
            replay_seconds=settings.events_replay_seconds,
        )
        events = AccountEvents(broker=broker)
        events.install(sessions)
        token_store = TokenStore(tokens=tokens, events=events)
        read_engine = make_read_engine(url, pool_size=settings.db_read_pool_size, timeouts=timeouts)
        one_time_tokens = OneTimeTokens(
            lifetimes={
                "password_reset": timedelta(minutes=settings.password_reset_minutes),
                "verify_email": timedelta(hours=settings.verify_email_hours),
                "change_email": timedelta(hours=settings.verify_email_hours),
            }
        )
        mail = AccountMail(
            tokens=one_time_tokens,
            throttle=throttle,
            public_url=settings.public_url,
            seal=Seal(secret=sealing_secret(settings)),
        )
        users = UserService(
            passwords=passwords,
            policy=policy,
            throttle=throttle,
            token_store=token_store,
            mail=mail,
        )
        pending = PendingSignups(
            lifetime=timedelta(hours=settings.verify_email_hours), passwords=passwords
        )
        mail_delivery = MailDelivery(
            sessions=sessions,
            backend=make_mail_backend(settings),
            mail=mail,
            retry_after=timedelta(seconds=settings.mail_retry_seconds),
            max_attempts=settings.mail_max_attempts,
            # Renewed while the send goes on: a claim outlives its sender only if the
            # sender died.
            lease=timedelta(seconds=settings.smtp_timeout * CLAIM_TIMEOUTS),
        )
        return cls(
            settings=settings,
            engine=engine,
            read_engine=read_engine,
            probe_engine=make_probe_engine(url, timeouts=timeouts),
            sessions=sessions,
            passwords=passwords,
            policy=policy,
            tokens=tokens,
            throttle=throttle,
            cors=CorsPolicy(settings.cors_origins),
            token_store=token_store,
            auth=AuthService(
                passwords=passwords,
                tokens=tokens,
                throttle=throttle,
                token_store=token_store,
                users=users,
                mail=mail,
                pending=pending,
                require_verified=settings.require_verified_login,
            ),
            users=users,
            admins=AdminService(passwords=passwords, users=users, mail=mail),
            recovery=RecoveryService(
                passwords=passwords,
                throttle=throttle,
                tokens=one_time_tokens,
                mail=mail,
                users=users,
                pending=pending,
                changes=EmailChanges(passwords=passwords, throttle=throttle, users=users),
            ),
            mail_delivery=mail_delivery,
            mail_pool=MailPool(delivery=mail_delivery),
            broker=broker,
            streams=EventStreams(
                broker=broker, read_engine=read_engine, limits=StreamLimits.from_settings(settings)
            ),
        )

    def prepare(self) -> None:
        """Start-up work: the schema (see ``_schema``), then the first superuser."""
        try:
            self._prepare()
        finally:
            # Close the connections start-up opened: under gunicorn --preload this runs in
            # the master, and forked workers must not share its sockets.
            self.engine.dispose()

    def _prepare(self) -> None:
        try:
            self._schema()
        except DatabaseUnreachable as exc:
            # Refusing to start would only turn an outage into a crash loop: the server
            # starts, /health answers 503 until the database is back.
            logger.warning(
                "database unreachable at start-up (%s); schema not checked, first "
                "superuser not created",
                exc,
            )
            return
        self._first_superuser()

    def _first_superuser(self) -> None:
        """The configured superuser, created once; a password the API would refuse stops
        start-up, with a reason that names the setting and never quotes its value."""
        email, secret = (
            self.settings.first_superuser_email,
            self.settings.first_superuser_password,
        )
        if not (email and secret):
            return
        password = secret.get_secret_value()
        if problem := self.policy.problem(password, email=email):
            # The same rules as every other password the service sets; refuse to start.
            raise ValueError(f"AUTHTWIN_FIRST_SUPERUSER_PASSWORD is refused: {problem}")
        with self.sessions() as session:
            try:
                created = self.users.create_first_superuser(
                    session=session, email=email, password=password
                )
            except ValidationError as exc:
                # `from None`: pydantic's own message quotes the value it refused, and a
                # traceback printing it would put the password in the server's log.
                raise ValueError(_first_superuser_refused(exc)) from None
        if created:
            logger.info("first superuser created", extra={"email": email})

    def _schema(self) -> None:
        """Development migrates, so a fresh checkout runs; production creates nothing.

        In production the schema is a deployment step (``authtwin migrate``, once, before
        the servers start), and a server finding its database at another revision refuses
        to start (:class:`migrations.SchemaNotCurrent`) rather than serve a schema its code
        was not written for.
        """
        if self.settings.env == "development":
            migrations.upgrade(self.settings)
        else:
            migrations.check(self.settings)

    def dispose(self) -> None:
        """Close every pooled connection and the hashing threads (at shutdown; after tests)."""
        self.read_engine.dispose()
        self.probe_engine.dispose()
        self.engine.dispose()
        self.passwords.close()
        self.broker.close()


# The setting each field of the account comes from, to name it in a refusal.
FIRST_SUPERUSER_SETTINGS = {
    "email": "AUTHTWIN_FIRST_SUPERUSER_EMAIL",
    "password": "AUTHTWIN_FIRST_SUPERUSER_PASSWORD",
}


def _first_superuser_refused(exc: ValidationError) -> str:
    """Which setting is wrong and why, from pydantic's errors without their ``input``."""
    reasons = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        setting = FIRST_SUPERUSER_SETTINGS.get(field, "the first superuser")
        reasons.append(f"{setting}: {error['msg']}")
    return f"the first superuser is refused: {'; '.join(reasons)}"


def _token_codec(settings: Settings) -> TokenCodec:
    if private_pem := settings.private_key_pem():
        key = SigningKey(private_pem=private_pem)
    else:
        key = SigningKey(secret=settings.signing_key())
    return TokenCodec(
        key=key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        refresh_audience=settings.jwt_refresh_audience,
        client_id=settings.jwt_client_id,
        access_ttl=timedelta(minutes=settings.access_token_minutes),
        refresh_ttl=timedelta(days=settings.refresh_token_days),
        leeway_seconds=settings.jwt_leeway_seconds,
    )
