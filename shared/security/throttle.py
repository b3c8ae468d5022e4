"""Brute-force protection: a per-account lockout and per-client-IP rate limits.

One implementation for both twins, on the ``limits`` library. Counters live in the process
(memory_counters.py: bounded, and each key dropped once its window has passed) by default, or
in Redis (``AUTHTWIN_REDIS_URL``, where every key has a TTL) when several processes serve: in
memory each worker counts alone, and an attacker gets N guesses per worker.

The lockout (NIST SP 800-63B §5.2.2, ASVS v5 6.3.x) counts failed logins per *account*,
whatever address they come from, and holds even against the right password; a success
clears it. Unknown emails are counted exactly like real ones, so a lockout tells nothing
about whether an account exists.
"""

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Literal, ParamSpec, TypeVar

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.errors import StorageError
from limits.storage import RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from shared.domain import errors
from shared.infrastructure.audit import auth_event
from shared.infrastructure.config import Settings
from shared.security.memory_counters import LOCKOUT_KIND, BoundedMemoryStorage

logger = logging.getLogger("authtwin")
P = ParamSpec("P")
R = TypeVar("R")

# Operations limited per client address, each with its own AUTHTWIN_RATE_LIMIT budget.
Operation = Literal[
    "signup", "login", "token", "refresh", "password_reset", "reset_confirm", "verify"
]
# Mail limited per recipient (an address, or an account's id), AUTHTWIN_MAIL_RATE_LIMIT each.
MailPurpose = Literal["verify_email", "signup_attempt", "email_changed"]
# Mail carrying a link its owner needs: limited per recipient and asking client, under a
# ceiling per recipient (``limit_link_mail``).
LinkPurpose = Literal["password_reset", "verify_email"]
# How many clients' worth of verification mail an address takes an hour from strangers'
# signups before its owner's own must wait: a mailbox flood bounded, an owner rarely shut out.
VERIFY_CEILING_CLIENTS = 4


@dataclass(frozen=True)
class Throttle:
    limiter: MovingWindowRateLimiter
    # None when AUTHTWIN_RATE_LIMIT_ENABLED=false (load tests from one address).
    per_client: RateLimitItem | None
    failures: RateLimitItem
    # Always on, like the lockout: the per-client limits may be off (load tests), but no
    # one may use the service to flood a mailbox.
    mail: RateLimitItem
    # Per recipient, whoever asks, above ``mail`` per recipient and client.
    mail_ceilings: Mapping[LinkPurpose, RateLimitItem]

    @classmethod
    def from_settings(cls, settings: Settings) -> "Throttle":
        return cls(
            limiter=MovingWindowRateLimiter(_storage(settings)),
            per_client=parse(settings.rate_limit) if settings.rate_limit_enabled else None,
            failures=RateLimitItemPerSecond(
                settings.login_max_failures, settings.login_lockout_seconds
            ),
            mail=parse(settings.mail_rate_limit),
            mail_ceilings=mail_ceilings(settings),
        )

    def limit_client(self, operation: Operation, client_ip: str) -> None:
        """Count one ``operation`` from ``client_ip``; 429 once over the limit."""
        if self.per_client is None:
            return
        key = ("client", operation, rate_limit_key(client_ip))
        if not self._call(self.limiter.hit, self.per_client, *key):
            auth_event(operation, "failure", client_ip=client_ip, reason="rate_limited")
            raise errors.TooManyRequests(self._retry_after(self.per_client, *key))

    def allow_mail(self, purpose: MailPurpose, recipient: str) -> bool:
        """Count one ``purpose`` mail to ``recipient``, whoever asks: False once over the
        limit. Counted whether the recipient has an account or not. For notices, which the
        client must not learn about and the owner needs no link from."""
        key = ("mail", purpose, _hashed(recipient))
        return self._call(self.limiter.hit, self.mail, *key)

    def limit_link_mail(self, purpose: LinkPurpose, recipient: str, *, client_ip: str) -> bool:
        """Count one ``purpose`` mail to ``recipient`` asked for by ``client_ip``.

        429 once that client is over its own budget for the address: a stranger spends only
        its own, never the owner's (NIST SP 800-63B-4 §3.2.2: rate limiting must not let an
        attacker lock the owner out). False, and nothing to mail, once the address is over
        its ceiling from every client together; not told as a 429, which would shut out the
        owner too: the caller keeps the owner a way in (``mail_ceilings``).
        """
        key = ("mail", purpose, _hashed(f"{recipient} {rate_limit_key(client_ip)}"))
        if not self._call(self.limiter.hit, self.mail, *key):
            raise errors.TooManyRequests(self._retry_after(self.mail, *key))
        ceiling = self.mail_ceilings[purpose]
        return self._call(self.limiter.hit, ceiling, "mail", purpose, _hashed(recipient))

    def allow_link_mail(self, purpose: LinkPurpose, recipient: str, *, client_ip: str) -> bool:
        """``limit_link_mail`` for a mail the client must not learn about: True, or False."""
        try:
            return self.limit_link_mail(purpose, recipient, client_ip=client_ip)
        except errors.TooManyRequests:
            return False

    def count_login_attempt(self, email: str) -> None:
        """Count an attempt at ``email``'s password, or 429 while the account is locked.

        Counted before the password is checked, in one atomic step: guesses sent at the same
        moment cannot all pass a check made before any of them was counted. A success then
        clears the count, so only failures accumulate.
        """
        key = _account_key(email)
        if not self._call(self.limiter.hit, self.failures, *key):
            raise errors.TooManyRequests(self._retry_after(self.failures, *key))

    def record_success(self, email: str) -> None:
        """Failures must be consecutive to lock: a success starts the count again."""
        self._call(self.limiter.clear, self.failures, *_account_key(email))

    def check(self) -> None:
        """Readiness: ``ThrottleUnavailable`` when the counters' store does not answer."""
        if not self.limiter.storage.check():
            logger.warning("rate limiter unavailable: its store does not answer")
            raise errors.ThrottleUnavailable

    def _retry_after(self, item: RateLimitItem, *key: str) -> int:
        stats = self._call(self.limiter.get_window_stats, item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    @staticmethod
    def _call(operation: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return operation(*args, **kwargs)
        except StorageError as error:
            # Without its counters the service cannot limit guessing: fail closed. An outage,
            # not a bug: one line, no traceback (as infrastructure/outages.py logs the database).
            cause = error.__cause__ or error
            logger.warning("rate limiter unavailable: %s: %s", type(cause).__name__, cause)
            raise errors.ThrottleUnavailable from None


def mail_ceilings(settings: Settings) -> dict[LinkPurpose, RateLimitItem]:
    """What an address is mailed at most, whoever asks.

    Resets: ``mail``'s count, over a window no longer than a reset link lives. Past it a
    request mails nothing, and the newest link mailed (less than one window old, so less
    than its lifetime) still works: the owner recovers with it, however many strangers ask.
    Verification: ``VERIFY_CEILING_CLIENTS`` clients' worth an hour, as a stranger's
    signup link is of no use to the owner (it finishes only with the stranger's password).
    """
    mail = parse(settings.mail_rate_limit)
    reset_window = min(mail.get_expiry(), settings.password_reset_minutes * 60)
    return {
        "password_reset": RateLimitItemPerSecond(mail.amount, reset_window),
        "verify_email": RateLimitItemPerSecond(
            VERIFY_CEILING_CLIENTS * mail.amount, mail.get_expiry()
        ),
    }


def _account_key(email: str) -> tuple[str, str]:
    return (LOCKOUT_KIND, _hashed(email))


def _hashed(recipient: str) -> str:
    # Hashed, so the counter store (Redis) holds no email addresses.
    return hashlib.sha256(recipient.encode()).hexdigest()[:32]


def _storage(settings: Settings) -> Storage:
    if not settings.redis_url:
        return BoundedMemoryStorage()
    return RedisStorage(
        settings.redis_url,
        key_prefix=settings.redis_key_prefix,
        wrap_exceptions=True,  # Redis errors arrive as limits' StorageError
        socket_connect_timeout=2,
        socket_timeout=2,
    )


def rate_limit_key(address: str) -> str:
    """What one client is, for counting: an IPv4 address, or an IPv6 /64 — one subscriber
    usually holds a whole /64, and could otherwise take a fresh address for every request."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)
