"""Settings, read from the environment (prefix ``AUTHTWIN_``) once per app and passed in."""

import logging
import secrets
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit
from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url

from shared.infrastructure.secret_key import MIN_SECRET_BYTES, secret_key_problem

logger = logging.getLogger("authtwin")

# OWASP Password Storage Cheat Sheet, argon2id with parallelism 1: (memory KiB, passes) pairs
# of equal strength, trading memory for time. Production meets or exceeds one of them.
OWASP_ARGON2ID_MINIMUMS = ((47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5))


def _comma_separated(value: object) -> object:
    """``a, b`` in the environment; a list or tuple when built in code."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _networks(value: object) -> object:
    items = _comma_separated(value)
    if isinstance(items, tuple | list):
        return tuple(ip_network(item, strict=False) for item in items)
    return items


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine, reached without crossing a network."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


CommaSeparated = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)]
Networks = Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode, BeforeValidator(_networks)]


class Settings(BaseSettings):
    """Everything an app needs to know about its deployment; built once, never global."""

    # hide_input_in_errors: a refused setting must not print the secret it refused.
    model_config = SettingsConfigDict(
        env_prefix="AUTHTWIN_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # Production unless told otherwise: a deployment that forgot to say must not get
    # development's conveniences (a random secret, migrating at start-up, cheap hashing).
    env: Literal["development", "production"] = "production"
    secret_key: SecretStr | None = None
    database_url: str = "sqlite:///./authtwin.db"
    # Per-process pool; size it to the process's concurrency (threads, or in-flight requests).
    db_pool_size: int = Field(default=20, ge=1, le=500)
    # The read-only pool for token lookups and /health (infrastructure/db.py): one short
    # SELECT each, fewer than one in flight per worker on average even at 2k requests/s. More
    # connections only add PostgreSQL backends competing for the same cores (bench/README.md).
    db_read_pool_size: int = Field(default=4, ge=1, le=500)
    # How long a request waits for the database before it is answered 503 (infrastructure/
    # timeouts.py). Without them a server that is down or frozen holds each request for the
    # OS's TCP timeouts (minutes) and SQLAlchemy's 30 s pool wait, and requests pile up.
    # Connecting, handshake included; libpq's connect_timeout counts whole seconds, from 2.
    db_connect_timeout_seconds: int = Field(default=3, ge=2, le=60)
    # Waiting for a pooled connection while all are busy.
    db_pool_timeout_seconds: float = Field(default=5, gt=0, le=60)
    # One statement: PostgreSQL's statement_timeout, enforced by the server, and on the client
    # half a second later for a server too frozen to cancel anything; SQLite's busy_timeout.
    # Every statement of the service is one indexed row or a few: seconds are already ample.
    db_statement_timeout_seconds: float = Field(default=5, ge=0.1, le=600)

    jwt_issuer: str = "authtwin"
    # Access tokens' audience: the API here, and any resource server that trusts our JWKS.
    jwt_audience: str = "authtwin-api"
    # Refresh tokens' audience, which only this service accepts: with the same one as access
    # tokens, any resource server checking iss, aud and the signature would take a refresh
    # token (14 days) as an access token (15 minutes). Must differ from jwt_audience.
    jwt_refresh_audience: str = "authtwin-refresh"
    # The access tokens' client_id (RFC 9068 §2.2). The password-grant clients of this service
    # (its own web and mobile front ends) are not registered and do not identify themselves,
    # so this names them all as one: the first-party client of this deployment.
    jwt_client_id: str = Field(default="authtwin", min_length=1)
    # Clock skew forgiven when a token's iat or nbf lies ahead of this process's clock
    # (RFC 7519 §4.1.4): replicas' clocks differ by a fraction of a second even under NTP,
    # and a token minted by one that runs ahead would otherwise be refused by the others.
    # Never applied to exp. Small: a minute at most, since it is also how far in the future
    # a token may claim to start.
    jwt_leeway_seconds: int = Field(default=5, ge=0, le=60)
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    refresh_token_days: int = Field(default=14, ge=1, le=90)

    # OWASP Password Storage Cheat Sheet's argon2id minimum: m=19 MiB, t=2, p=1. Production
    # refuses less (OWASP_ARGON2ID_MINIMUMS); development may hash cheaply, as the tests do.
    argon2_memory_kib: int = Field(default=19_456, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)

    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None

    # NIST SP 800-63B §3.1.1.2: at least 8 characters. Raise it if you like; never lower it.
    password_min_length: int = Field(default=8, ge=8, le=64)
    # Set only if bcrypt hashes imported from an older system are stored: their cost (12 is
    # passlib's and bcrypt's default). They then verify (and become argon2id at the next
    # login), and every failed login also checks a dummy bcrypt hash of this cost, so that an
    # unknown email or an argon2id account cannot be told from a bcrypt one, by time or by
    # load (security/passwords.py). That is ten times the CPU per failure: unset, bcrypt
    # hashes are refused and failures cost one argon2id check.
    legacy_bcrypt_rounds: int | None = Field(default=None, ge=4, le=31)

    # Per-account lockout (security/throttle.py): always on, whatever rate_limit_enabled says.
    login_max_failures: int = Field(default=10, ge=1, le=100)
    login_lockout_seconds: int = Field(default=900, ge=1, le=86_400)
    # Per-client-IP limit on each of signup, login, token and refresh, in `limits` notation.
    rate_limit: str = "20/minute"
    rate_limit_enabled: bool = True
    # Where counters live: in the process by default; Redis when several processes serve.
    redis_url: str | None = None
    redis_key_prefix: str = "authtwin"
    # Proxies whose X-Forwarded-For is believed; from anyone else it is ignored.
    trusted_proxies: Networks = ()

    # Browser origins allowed to call the API; none (CORS off) by default.
    cors_origins: CommaSeparated = ()

    # Optional RS256 signing: a PEM private key (or a file holding one). Tokens are then
    # verifiable by anyone holding the public key, published at /.well-known/jwks.json.
    jwt_private_key: SecretStr | None = None
    jwt_private_key_file: Path | None = None

    # The largest body of the contract is a few KiB (signup, every character escaped as
    # \uXXXX), so 64 KiB is ample. It is also the bound on what a hostile body costs before
    # anything else looks at it: FastAPI parses JSON on its event loop before any dependency
    # runs, and 1 MiB of nested arrays took 0.5 s there; 64 KiB takes a sixteenth of that.
    max_body_bytes: int = Field(default=65_536, ge=1024)

    # Where this service is reached by people: the links in mail are built from it, never
    # from a request's Host header, which whoever sends the request chooses (a reset link
    # pointing at an attacker's host would hand them the token).
    public_url: str = "http://localhost:8000"
    # Account mail (services/account_mail.py). Unset, development logs each message
    # (console) and production sends it by SMTP; production refuses the console, which
    # would write reset links, that is live credentials, into the log.
    mail_backend: Literal["console", "smtp"] | None = None
    mail_from: str = "authtwin <no-reply@localhost>"
    mail_reply_to: str | None = None
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    # STARTTLS unless told otherwise: credentials and reset links never cross a network in
    # clear by default. ``none`` is for a relay on the same host (and the tests).
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(default=10, gt=0, le=120)
    # Production refuses to send links in clear over a network: to an SMTP relay on another
    # host without TLS, or pointing at a plain-http AUTHTWIN_PUBLIC_URL that is not this
    # host's. True accepts both (a relay inside a private network that cannot do TLS, a
    # service behind a proxy whose public side is not this URL), and every start logs it.
    allow_cleartext: bool = False
    # A failed delivery is retried after this many seconds, doubled at each attempt up to an
    # hour, and given up after mail_max_attempts (about a day at the default).
    mail_retry_seconds: float = Field(default=30, gt=0, le=3600)
    mail_max_attempts: int = Field(default=30, ge=1, le=1000)

    # One-time links (services/one_time_tokens.py). OWASP's Forgot Password cheat sheet: a
    # reset token is short-lived; a verification link may wait for someone to read mail.
    password_reset_minutes: int = Field(default=30, ge=1, le=24 * 60)
    verify_email_hours: int = Field(default=48, ge=1, le=30 * 24)
    # How many reset or verification mails one address (or account) may be sent, whoever
    # asks: always on, like the lockout, so no one can flood a mailbox through the service.
    mail_rate_limit: str = "5/hour"
    # True: an unverified account cannot log in (403 after the password check), and signup
    # no longer tells whether an address has an account (202 for both, README explains).
    require_verified_login: bool = False

    # Account events (GET /users/me/events, /ws; services/event_streams.py). A heartbeat
    # keeps proxies from closing a quiet stream, and is when each stream checks again that
    # its credential is still good (a revocation whose event was lost is caught by then).
    events_heartbeat_seconds: float = Field(default=15, gt=0, le=300)
    # How long a WebSocket may take to send its {"type": "auth"} message.
    events_auth_seconds: float = Field(default=5, gt=0, le=60)
    # Streams one user may hold at once, over every process (a tab or device each).
    events_max_streams_per_user: int = Field(default=5, ge=1, le=100)
    # Streams one process holds. A Flask worker holds a thread per stream: its gunicorn runs
    # with as many threads more than the API's (deploy/servers.py), so streams never take the
    # threads requests need. Over it: 503 with Retry-After.
    events_max_streams: int = Field(default=100, ge=1, le=100_000)
    # Of those, the places one client address may hold: its streams, whatever the accounts,
    # and its sockets not yet authenticated (each holds a place, and on Flask a thread, for
    # up to events_auth_seconds). A fifth of the default 100: no one client fills a process,
    # and a few hundred users behind one NAT still fit over a deployment's processes. Over
    # it: 429.
    events_max_streams_per_client: int = Field(default=20, ge=1, le=100_000)
    # A stream that carried no event this long, or open this long, ends; its client resumes
    # with Last-Event-ID. The access token's expiry ends it sooner (15 minutes by default).
    events_idle_seconds: float = Field(default=600, gt=0, le=86_400)
    events_lifetime_seconds: float = Field(default=3600, gt=0, le=86_400)
    # Events a stream may have waiting to be written: a reader slower than this is dropped,
    # as is one that has not taken a write after this many seconds.
    events_buffer: int = Field(default=32, ge=1, le=10_000)
    events_write_seconds: float = Field(default=10, gt=0, le=300)
    # What Last-Event-ID can resume: each user's last events, for this long.
    events_replay_count: int = Field(default=50, ge=0, le=1000)
    events_replay_seconds: int = Field(default=300, ge=1, le=86_400)

    @field_validator("database_url")
    @classmethod
    def _shared_database(cls, value: str) -> str:
        url = make_url(value)
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            # Each connection would see a database of its own: the read pool, the write pool
            # and FastAPI's reader thread would not share one.
            raise ValueError("an in-memory SQLite database is refused: give it a file path")
        return value

    @field_validator("rate_limit", "mail_rate_limit")
    @classmethod
    def _parseable_rate_limit(cls, value: str) -> str:
        try:
            parse_rate_limit(value)
        except ValueError:
            raise ValueError("rate_limit must look like '20/minute' or '5 per second'") from None
        return value

    @field_validator("smtp_username", "smtp_password", "mail_reply_to", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``VAR=`` (compose's ``${VAR:-}``) means unset, not an empty login."""
        return None if value == "" else value

    @field_validator("public_url")
    @classmethod
    def _public_base(cls, value: str) -> str:
        """``scheme://host[:port][/path]``: links are this plus ``/reset-password#token=…``."""
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("public_url must be an http(s) URL, e.g. https://auth.example.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("public_url must have no query, fragment or credentials")
        return value.rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        """Exact ``scheme://host[:port]`` origins only: no wildcard, and never ``null``.

        ``Origin: null`` is sent by sandboxed frames and ``file:`` pages, which any attacker
        can create, so allowing it would allow everyone.
        """
        for origin in origins:
            parts = urlsplit(origin)
            exact = parts.scheme in {"http", "https"} and parts.netloc and not parts.path
            if not exact or "*" in origin or parts.query or parts.fragment:
                raise ValueError(f"CORS origin {origin!r} must be scheme://host[:port]")
        return origins

    @model_validator(mode="after")
    def _refresh_audience_of_its_own(self) -> "Settings":
        if self.jwt_refresh_audience == self.jwt_audience:
            raise ValueError(
                "AUTHTWIN_JWT_REFRESH_AUDIENCE must differ from AUTHTWIN_JWT_AUDIENCE: "
                "a refresh token must not verify as an access token anywhere"
            )
        return self

    @model_validator(mode="after")
    def _refuse_a_forgeable_secret(self) -> "Settings":
        """A given secret is checked in every environment: anyone who can guess it can sign
        a token for any account. Only a missing one is tolerated, in development alone
        (``signing_key`` then makes a random one), or with an RS256 key instead."""
        if self.secret_key is not None:
            if problem := secret_key_problem(self.secret_key.get_secret_value()):
                raise ValueError(
                    f"AUTHTWIN_SECRET_KEY {problem}; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        elif self.env != "development" and not self.private_key_pem():
            raise ValueError("AUTHTWIN_SECRET_KEY must be set outside development")
        return self

    @model_validator(mode="after")
    def _owasp_hashing_in_production(self) -> "Settings":
        """A stolen table of cheap hashes is cracked at GPU speed; production hashes no
        cheaper than OWASP's minimums. Parallelism is not checked: lanes share the memory."""
        if self.env == "development":
            return self
        memory, passes = self.argon2_memory_kib, self.argon2_time_cost
        if not any(memory >= m and passes >= t for m, t in OWASP_ARGON2ID_MINIMUMS):
            raise ValueError(
                "AUTHTWIN_ARGON2_MEMORY_KIB and AUTHTWIN_ARGON2_TIME_COST are below OWASP's "
                "argon2id minimums: at least one of "
                + ", ".join(f"{m} KiB with {t} passes" for m, t in OWASP_ARGON2ID_MINIMUMS)
                + " (cheaper hashing is for development)"
            )
        return self

    @model_validator(mode="after")
    def _no_links_in_production_logs(self) -> "Settings":
        if self.env == "production" and self.mail_backend == "console":
            raise ValueError(
                "AUTHTWIN_MAIL_BACKEND=console is refused in production: it logs reset and "
                "verification links, which are credentials; use smtp"
            )
        return self

    @model_validator(mode="after")
    def _no_links_in_clear_in_production(self) -> "Settings":
        """A reset link is the account it resets: whoever reads one on the path takes it."""
        if self.env == "production" and not self.allow_cleartext and self.cleartext_links():
            raise ValueError(
                "; ".join(self.cleartext_links())
                + ": use TLS (AUTHTWIN_SMTP_SECURITY=starttls or tls, an https:// "
                "AUTHTWIN_PUBLIC_URL), or set AUTHTWIN_ALLOW_CLEARTEXT=true to accept it"
            )
        return self

    @model_validator(mode="after")
    def _no_smtp_login_in_clear(self) -> "Settings":
        """A login over a connection without TLS hands the relay's password to anyone on the
        path; only a relay on this host may be reached that way."""
        local = is_loopback(self.smtp_host)
        if self.smtp_username and self.smtp_security == "none" and not local:
            raise ValueError(
                "AUTHTWIN_SMTP_USERNAME with AUTHTWIN_SMTP_SECURITY=none would send the SMTP "
                "password in clear: use starttls or tls"
            )
        if self.smtp_username and self.smtp_password is None:
            raise ValueError("AUTHTWIN_SMTP_USERNAME needs AUTHTWIN_SMTP_PASSWORD")
        return self

    def cleartext_links(self) -> list[str]:
        """Where links in mail would cross a network in clear, each said in a sentence."""
        found = []
        if self.smtp_security == "none" and not is_loopback(self.smtp_host):
            found.append(f"AUTHTWIN_SMTP_SECURITY=none sends mail to {self.smtp_host} without TLS")
        parts = urlsplit(self.public_url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            found.append(
                f"AUTHTWIN_PUBLIC_URL={self.public_url} makes links that travel without TLS"
            )
        return found

    @property
    def mail_transport(self) -> Literal["console", "smtp"]:
        """The backend in use: as set, else the console in development and SMTP elsewhere."""
        if self.mail_backend is not None:
            return self.mail_backend
        return "console" if self.env == "development" else "smtp"

    def private_key_pem(self) -> str | None:
        """The RS256 private key, from the setting or the file; None for HS256."""
        if self.jwt_private_key is not None:
            return self.jwt_private_key.get_secret_value()
        if self.jwt_private_key_file is not None:
            return self.jwt_private_key_file.read_text()
        return None

    def signing_key(self) -> str:
        """The HS256 key; in development a random one, so tokens die with the process."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        logger.warning(
            "AUTHTWIN_SECRET_KEY is not set: using a random key; tokens will not survive "
            "a restart and are not shared between worker processes"
        )
        return secrets.token_urlsafe(MIN_SECRET_BYTES)
