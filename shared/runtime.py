"""What one app instance is made of, built from its settings by both factories alike."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.audit import configure_logging
from shared.config import Settings
from shared.db import create_tables, make_engine, make_read_engine, make_session_factory
from shared.password_policy import PasswordPolicy
from shared.passwords import PasswordHasher
from shared.services.users import create_first_superuser
from shared.throttle import Throttle
from shared.tokens import SigningKey, TokenCodec

logger = logging.getLogger("authtwin")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    # Read-only lookups run in autocommit, in a pool of their own: no BEGIN/ROLLBACK round
    # trips for one SELECT, and no isolation switch at each checkout.
    read_engine: Engine
    sessions: sessionmaker[Session]
    passwords: PasswordHasher
    policy: PasswordPolicy
    tokens: TokenCodec
    throttle: Throttle

    @classmethod
    def build(cls, settings: Settings) -> "Runtime":
        """Create the pieces; connects to nothing until ``prepare`` or the first request."""
        configure_logging()
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        return cls(
            settings=settings,
            engine=engine,
            read_engine=make_read_engine(
                settings.database_url, pool_size=settings.db_read_pool_size
            ),
            sessions=make_session_factory(engine),
            passwords=PasswordHasher(
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
            ),
            policy=PasswordPolicy(min_length=settings.password_min_length),
            throttle=Throttle.from_settings(settings),
            tokens=TokenCodec(
                key=_signing_key(settings),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                access_ttl=timedelta(minutes=settings.access_token_minutes),
                refresh_ttl=timedelta(days=settings.refresh_token_days),
            ),
        )

    def prepare(self) -> None:
        """Start-up work: create tables (until migrations exist) and the first superuser."""
        if self.settings.create_tables:
            create_tables(self.engine)
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
            created = create_first_superuser(
                session=session, passwords=self.passwords, email=email, password=password
            )
        if created:
            logger.info("first superuser created", extra={"email": email})

    def dispose(self) -> None:
        """Close every pooled connection and the hashing threads (at shutdown; after tests)."""
        self.read_engine.dispose()
        self.engine.dispose()
        self.passwords.close()


def _signing_key(settings: Settings) -> SigningKey:
    if private_pem := settings.private_key_pem():
        return SigningKey(private_pem=private_pem)
    return SigningKey(secret=settings.signing_key())
