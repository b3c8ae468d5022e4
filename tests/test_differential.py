"""Differential testing of the twins: one random story, told to both apps, gets one answer.

The contract suite checks each twin against what its authors thought to test. Here hypothesis
writes the stories: a ``RuleBasedStateMachine`` draws sequences of operations (sign up, log
in, the OAuth2 form, refresh and reuse, logout, profile and password changes, administration,
password resets and address verification by mailed link, malformed requests), performs each
on the FastAPI app and on the Flask app, in process, each on an empty SQLite database of its
own, and requires the same answer from both: status, the headers that carry meaning, and the
body byte for byte once the values that differ by nature (tokens, timestamps) are normalised.
Each twin mails to an SMTP server of its own (``tests.mailbox.Mailbox``): after every request
both must have sent the same messages (link tokens normalised), and the machine follows each
twin's links with that twin's own tokens. After every step the two databases must hold the
same state too. Any difference is a bug in one twin; hypothesis shrinks it to a short sequence
and prints it, with a ``note`` of every request sent and both answers where they differ.

Besides comparing the twins, the machine keeps a model of what should happen and checks the
answers against it where it is sure: a session it holds works, a link works while it is the
latest of its kind and the account has not moved on, ``is_verified`` is what the story made
it, and the mail limit (``mail_rate_limit``, per address or account; lowered here to two an
hour) answers 429 exactly when the story has used it up.

The budget is a setting: ``AUTHTWIN_DIFF_EXAMPLES`` (default 25) sequences of up to
``AUTHTWIN_DIFF_STEPS`` (default 20) steps. Without ``AUTHTWIN_DIFF_EXAMPLES`` the run is
derandomised, so ``make test`` and CI test the same sequences every time and a red build is
a real difference, not a lucky draw; setting it (e.g. ``AUTHTWIN_DIFF_EXAMPLES=500``) hunts
with fresh randomness on every run. ``AUTHTWIN_DIFF_RATE_LIMIT=15/minute`` turns the per-IP
limit on in both twins for a hunt.

A difference is fixed in the twin that is wrong, never normalised away here: only what differs
by nature (token values, timestamps, Retry-After's seconds) is. It found three so far (a
Content-Type on FastAPI's 204s, a chunked body over the limit that FastAPI never read, Flask
merging repeated slashes), each fixed in the app.
"""

import base64
import binascii
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import httpx2
import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)
from limits import parse
from sqlalchemy import Engine, create_engine, func, select

from shared.domain.models import (
    OneTimeToken,
    OutboxMessage,
    RefreshToken,
    RevokedAccessToken,
    User,
)
from shared.infrastructure.config import Settings
from tests.clients import APPS
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    TEST_SECRET,
    in_process_settings,
    migrated_sqlite,
)
from tests.mailbox import Mailbox, link_token
from tests.mails import SUBJECTS
from tests.support import forge

EXAMPLES_VARIABLE = "AUTHTWIN_DIFF_EXAMPLES"
STEPS_VARIABLE = "AUTHTWIN_DIFF_STEPS"
HUNTING = bool(os.environ.get(EXAMPLES_VARIABLE))
# Optional, for a hunt: a per-client rate limit (e.g. "15/minute") on both twins; off by
# default, as in the rest of the suite, since it would refuse most of a long sequence.
RATE_LIMIT = os.environ.get("AUTHTWIN_DIFF_RATE_LIMIT")
TWINS: Final = tuple(APPS)  # ("fastapi", "flask"): the first one's answer is "the" answer
pytestmark = pytest.mark.in_process

PerApp = dict[str, str]
"""A value each twin makes its own (a token), by app name. Ids, by contrast, must agree."""

# Headers whose values must agree; Retry-After must be present on both or neither (its value
# is seconds left on a clock, which moved between the two requests).
COMPARED_HEADERS = (
    "content-type",
    "www-authenticate",
    "allow",
    "location",
    "cache-control",
    "pragma",
    "x-content-type-options",
    "referrer-policy",
    "content-security-policy",
    "x-frame-options",
)
PRESENCE_HEADERS = ("retry-after",)

# --- What the rules draw from: small pools, so collisions (a taken email) happen often. -----

JSON = "application/json"
OVERSIZED = b'{"x":"' + b"a" * 1_048_576 + b'"}'  # over the default max_body_bytes, 1 MiB
ABSENT = "<absent>"  # a key left out of a JSON body, as opposed to sent as null
SAME_AS_EMAIL = "<the account's email>"
SAME_AS_CURRENT = "<the current password>"

EMAILS = ("ann@example.com", "bob@example.com", "Cy@Example.COM", "åsa@exämple.com", ADMIN_EMAIL)
NEW_EMAILS_OK = tuple(email for email in EMAILS if email != ADMIN_EMAIL)
BAD_EMAILS = (
    "not-an-email",
    "ann@",
    "",
    "ann@@example.com",
    " bob@example.com ",
    "a" * 250 + "@example.com",  # over RFC 5321's 254
)
GOOD_PASSWORDS = ("correct horse battery", "another long passphrase", "pässwörd with ümlauts")
SIGNUP_PASSWORDS = (
    *GOOD_PASSWORDS,
    "password123",  # on the common-password blocklist
    "short",
    "y" * 129,  # over the maximum
    "lone \ud800 surrogate",  # valid JSON (escaped), not encodable text
    SAME_AS_EMAIL,
)
BENIGN_EXTRAS: tuple[dict[str, object], ...] = (
    {},
    {"full_name": "Ann Example"},
    {"full_name": None},
)
SIGNUP_EXTRAS: tuple[dict[str, object], ...] = (
    *BENIGN_EXTRAS,
    {"is_superuser": True},  # mass assignment: refused
    {"full_name": "tab\there"},
    {"full_name": "x" * 256},
)
LOGIN_PASSWORDS = ("right", "wrong", "empty")
EMAIL_FORMS = ("stored", "upper-case", "padded")
TOKEN_FORMS = (
    "ok",
    "wrong password",
    "upper-case username",
    "grant_type=client_credentials",
    "no grant_type",
    "no password",
    "empty password",
    "repeated username",
    "with scope",
    "as JSON",
)
REFRESH_WITH = ("current", "previous", "first", "garbage", "access token")
LOGOUT_WITH = ("current", "garbage", "another account's", "no bearer")
READ_ME_AUTH: dict[str, str | None] = {  # Authorization headers, by what they hold
    "current": "Bearer {access}",
    "none": None,
    "garbage": "Bearer not.a.token",
    "refresh token": "Bearer {refresh}",
    "previous access": "Bearer {previous}",
    "Basic": "Basic YWRtaW46YWRtaW4=",
    "lower-case scheme": "bearer {access}",
    "two spaces": "Bearer  {access}",
    "Bearer and nothing": "Bearer",
    "token and more": "Bearer {access} more",
}
FORGED = (
    "valid",
    "other generation",
    "refresh typ",
    "no typ",
    "alg none",
    "other audience",
    "other issuer",
    "no exp",
    "expired",
    "not yet valid",
    "sub not a number",
    "sub missing",
    "unknown user",
    "other secret",
    "kid header",
)
NEW_NAMES = (ABSENT, "Renamed", None, "bell\x07")
NEW_EMAILS = (ABSENT, *EMAILS, "dee@example.com", "not-an-email")
CURRENT_PASSWORDS = (ABSENT, "right", "wrong")
NEW_PASSWORDS = ("a brand new passphrase", "password123", "short", SAME_AS_EMAIL, SAME_AS_CURRENT)
# The new passwords the policy refuses, whatever else the request gets right.
REFUSED_PASSWORDS = frozenset({"password123", "short", SAME_AS_EMAIL})
TOO_SHORT = "short"  # refused by the body's schema, before anything else is looked at
PAGE_QUERIES = (
    "",
    "offset=1&limit=2",
    "limit=200&limit=1",
    "limit=1&limit=200",
    "offset=-1",
    "limit=ten",
    "limit=0",
    "limit=101",
    "offset=2147483648",
    "offset=1e3",
    "limit=",
    "offset=0&limit=100&extra=1",
)
# Ids no account has (or can have); updates and deletes use these only.
BAD_IDS = ("abc", "0", "-5", "1.5", "99999999999", "2147483647", "999", "1e0", "%20")
# Reads also try other spellings of the first superuser's id.
RAW_IDS = (*BAD_IDS, "01", "+1", "%201", "1%20")
ADMIN_CHANGES: tuple[dict[str, object], ...] = (
    {"is_superuser": True},
    {"is_superuser": False},
    {"is_active": False},
    {"is_active": True},
    {"full_name": "Set By Admin"},
    {"full_name": None},
    {"email": "bob@example.com"},
    {"email": "dee@example.com"},
    {"email": None},
    {"password": "reset by the admin"},
    {"password": "password123"},
    {"bogus": 1},
    {},
    {"is_active": "yes"},
    {"is_superuser": None, "full_name": "Both"},
    {"is_verified": True},
    {"is_verified": False},
    {"email": "dee@example.com", "is_verified": True},  # an address the administrator vouches for
    {"is_verified": "yes"},
)
BODY_ROUTES = (
    "POST /auth/signup",
    "POST /auth/login",
    "POST /auth/refresh",
    "POST /auth/logout",
    "POST /auth/token",
    "PATCH /users/me",
    "PUT /users/me/password",
    "PATCH /users/{own id}",
    "POST /auth/password-reset",
    "POST /auth/password-reset/confirm",
    "POST /auth/verify",
    "POST /auth/verify/request",  # takes no body: one sent is never read (over 1 MiB: 413)
)
BAD_BODIES: dict[str, tuple[str | None, bytes]] = {
    "{} chunked": (JSON, b"{}"),  # sent without Content-Length
    "over 1 MiB": (JSON, OVERSIZED),
    "over 1 MiB, chunked": (JSON, OVERSIZED),
    "text/plain": ("text/plain", b"{}"),
    "no content-type": (None, b"{}"),
    "malformed JSON": ("application/json", b'{"email": '),
    "JSON array": ("application/json", b"[]"),
    "JSON string": ("application/json", b'"x"'),
    "JSON null": ("application/json", b"null"),
    "empty body": ("application/json", b""),
    "not UTF-8": ("application/json", b"\xff\xfe{}"),
    "nested 30000 deep": ("application/json", b"[" * 30_000 + b"]" * 30_000),
    "{} as merge-patch+json": ("application/merge-patch+json", b"{}"),
    "{} with charset": ("application/json; charset=utf-8", b"{}"),
    "form-encoded": ("application/x-www-form-urlencoded", b"a=b"),
    "repeated key": ("application/json", b'{"refresh_token":"a","refresh_token":"b"}'),
}
ODD_REQUESTS = (
    "GET /auth/login",
    "DELETE /users/me/password",
    "PUT /users/me",
    "POST /users",
    "GET /nope",
    "GET /users/",
    "GET /users/me/",
    "OPTIONS /users/me",
    "HEAD /users/me",
    "HEAD /health",
    "GET /health",
    "GET /auth/token",
    "GET /auth/password-reset",
    "PUT /auth/password-reset/confirm",
    "GET /auth/verify",
    "GET /auth/verify/request",
    "GET /users/me?unexpected=1",
    "GET /users//me",
    "POST /auth//login",
    "GET http://testserver/.well-known/jwks.json",
    "HEAD http://testserver/openapi.json",
    "GET http://testserver/docs",
    "GET http://testserver/redoc",
    "GET http://testserver/nope",
)


# Mailed links: the pages they open (the token in the fragment), and which link a rule uses.
RESET_PAGE = "/reset-password"
VERIFY_PAGE = "/verify-email"
PAGES = (RESET_PAGE, VERIFY_PAGE)
# Links that move an account to a new address open the verification page too; the model
# keeps them apart, under the account that asked (not the address's owner, if any).
CHANGE_LINKS = "<change of address>"
CHANGE_SUBJECT = SUBJECTS["confirm_email_change"]
CONFIRMING_PASSWORDS = ("right", "wrong", ABSENT)
LINK_CHOICES = ("latest", "first", "the other kind's", "garbage", "empty")
NEVER_MAILED = "never-mailed-token"  # a well-formed token no twin issued
# Reset requests for addresses no one signs up with (EMAILS never holds them), and malformed.
UNKNOWN_ADDRESSES = ("nobody@example.com", "NOBODY@Example.COM")
MAIL_TIMEOUT = 10.0  # seconds a twin may take to deliver what a request committed
# The mail limit, lower than the default five an hour so that a story reaches it in three
# requests; the model reads the number from the settings.
MAIL_RATE_LIMIT = "2/hour"
OVER_THE_MAIL_LIMIT = 3  # requests in a row


# --- Normalising an answer. ----------------------------------------------------------------

TOKEN_FIELD = re.compile(r'"(access_token|refresh_token)":"([^"\\]*)"')
TIME_FIELD = re.compile(r'"created_at":"([^"\\]*)"')
VOLATILE_CLAIMS = frozenset({"jti", "sid", "iat", "nbf", "exp"})


def describe_token(token: str) -> str:
    """What two twins' tokens must share: header, non-volatile claims, lifetime, claim names."""
    try:
        header_part, claims_part, _signature = token.split(".")
        header = json.loads(_unbase64(header_part))
        claims = json.loads(_unbase64(claims_part))
        lifetime = claims["exp"] - claims["iat"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return "<undecodable token>"
    stable = " ".join(
        f"{k}={claims[k]}" for k in sorted(claims) if k not in VOLATILE_CLAIMS
    ).replace('"', "'")
    heading = " ".join(f"{k}={header[k]}" for k in sorted(header))
    return f"<jwt {heading}; {stable}; ttl={lifetime}; claims={','.join(sorted(claims))}>"


def _unbase64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def time_shape(value: str) -> str:
    """A timestamp's format without its value: ``0000-00-00T00:00:00Z`` keeps the separators
    and the zone suffix (which must agree) and drops the fraction (absent when it is zero)."""
    return re.sub(r"\d", "0", re.sub(r"\.\d+", "", value))


@dataclass(frozen=True)
class Answer:
    """One twin's response, with what legitimately differs between the twins normalised."""

    status: int
    headers: tuple[tuple[str, str], ...]
    text: str  # the raw body, tokens and timestamps normalised; else byte for byte
    json: object  # the same, parsed (None when not JSON), for a readable difference

    @classmethod
    def of(cls, response: httpx2.Response) -> "Answer":
        present = dict(response.headers)
        kept = tuple((name, present[name]) for name in COMPARED_HEADERS if name in present)
        kept += tuple((name, "<present>") for name in PRESENCE_HEADERS if name in present)
        try:
            text = response.content.decode("utf-8")
        except UnicodeDecodeError:
            text = repr(response.content)
        text = TOKEN_FIELD.sub(lambda m: f'"{m[1]}":"{describe_token(m[2])}"', text)
        text = TIME_FIELD.sub(lambda m: f'"created_at":"{time_shape(m[1])}"', text)
        parsed: object = None
        if present.get("content-type", "").startswith("application/json"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = "<invalid JSON>"
        return cls(response.status_code, kept, text, parsed)

    def show(self) -> str:
        return f"{self.status} {dict(self.headers)} {self.text[:500]}"


JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")


def describe_request(
    method: str,
    target: str,
    authorization: str | Mapping[str, str] | None,
    body: bytes | Mapping[str, bytes] | None,
    content_type: str | None,
    chunked: bool,
) -> str:
    """The first twin's request, readable: tokens shown as ``<token>``, long bodies cut."""
    if isinstance(authorization, Mapping):
        authorization = authorization[TWINS[0]]
    shown = body[TWINS[0]] if isinstance(body, Mapping) else body
    text = ""
    if shown is not None:
        printable = JWT.sub("<token>", shown.decode("utf-8", "backslashreplace"))
        text = f" {printable[:120]!r}" + (
            f"... ({len(shown)} bytes)" if len(printable) > 120 else ""
        )
    extras = [f"Content-Type: {content_type}"] if content_type else []
    extras += [f"Authorization: {JWT.sub('<token>', authorization)}"] if authorization else []
    extras += ["Transfer-Encoding: chunked"] if chunked else []
    return f"{method} {target}{text}" + (f" [{'; '.join(extras)}]" if extras else "")


# --- Normalising a mail. ------------------------------------------------------------------

LINK_TOKEN = re.compile(r"#token=[A-Za-z0-9._~-]+")
MESSAGE_ID = re.compile(r"^<[0-9a-f]+@")
# Every header but these must agree: Date is a clock's, Content-Type holds a random MIME
# boundary (its media type is compared below), Message-ID is compared by its shape.
UNCOMPARED_MAIL_HEADERS = frozenset({"date", "content-type", "message-id"})


def describe_mail(message: EmailMessage) -> tuple[object, ...]:
    """What the twins' messages must share: the headers, and each part's type and content
    with the link's token (each twin's own) normalised."""
    headers = tuple(
        (name, str(value))
        for name, value in message.items()
        if name.lower() not in UNCOMPARED_MAIL_HEADERS
    )
    message_id = MESSAGE_ID.sub("<random@", str(message["Message-ID"]))
    parts = tuple(
        (part.get_content_type(), LINK_TOKEN.sub("#token=<token>", str(part.get_content())))
        for part in message.walk()
        if not part.is_multipart()
    )
    return (headers, message.get_content_type(), message_id, parts)


def mailed_link(message: EmailMessage) -> str | None:
    """The page a message links to with a token (``RESET_PAGE``, ``VERIFY_PAGE``), if any."""
    text = message.get_body(preferencelist=("plain",))
    content = str(text.get_content()) if isinstance(text, EmailMessage) else ""
    found = [page for page in PAGES if f"{page}#token=" in content]
    assert len(found) <= 1, f"one message, links of two kinds: {message['Subject']}"
    return found[0] if found else None


def recipient(message: EmailMessage) -> str:
    (address,) = message["To"].addresses
    # An internationalised address travels as raw UTF-8 (SMTPUTF8), which the parser keeps
    # as surrogate escapes: undone, it is the address as the account has it.
    return str(address.addr_spec).encode("utf-8", "surrogateescape").decode("utf-8")


# --- What the machine knows of each account. -------------------------------------------------


def session_of(token: str) -> str | None:
    """The session (``sid``) a token names, or None for one no twin issued."""
    try:
        claims = json.loads(_unbase64(token.split(".")[1]))
    except (ValueError, IndexError, binascii.Error):
        return None
    sid = claims.get("sid") if isinstance(claims, dict) else None
    return sid if isinstance(sid, str) else None


def same_session(one: PerApp, other: PerApp) -> bool:
    """Whether two tokens are of one session (on each twin: its sessions are its own)."""
    return all(session_of(one[app]) == session_of(other[app]) is not None for app in TWINS)


def same_for_both(value: str) -> PerApp:
    return dict.fromkeys(TWINS, value)


@dataclass
class Link:
    """A link one message carried, as each twin mailed it: the tokens differ, by nature."""

    token: PerApp
    email: str  # the address it was mailed to, which the account must still have
    generation: int  # the account's token generation when the link was made
    used: bool = False


@dataclass
class KnownUser:
    """An account both twins created, under the same id. Tokens are per twin, index-aligned:
    the n-th pair issued by one twin corresponds to the n-th issued by the other."""

    id: int
    email: str
    password: str
    # Until a login works (a locked address refuses even the first), a token no twin issued.
    access: PerApp = field(default_factory=lambda: same_for_both("never.issued.access"))
    refresh: PerApp = field(default_factory=lambda: same_for_both("never.issued.refresh"))
    issued: list[tuple[PerApp, PerApp]] = field(default_factory=list)  # (access, refresh)
    # Whether ``access`` should still open /users/me: what the model expects, checked below.
    session_ok: bool = False
    # Whether the address is proved; every User body the twins return must say the same.
    is_verified: bool = False

    def take(self, pair: Mapping[str, httpx2.Response]) -> None:
        """Adopt the token pair both twins just issued."""
        self.access = {name: r.json()["access_token"] for name, r in pair.items()}
        self.refresh = {name: r.json()["refresh_token"] for name, r in pair.items()}
        self.issued.append((self.access, self.refresh))
        self.session_ok = True

    def end_sessions(self) -> None:
        self.session_ok = False


Exchange = dict[str, httpx2.Response]
"""Both twins' responses to one request, by app name."""


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def per_app(make: Callable[[str], object]) -> dict[str, bytes]:
    """A JSON body for each twin, e.g. holding that twin's own token."""
    return {name: _json(make(name)) for name in TWINS}


def settings_for(database: str, mailbox: Mailbox) -> Settings:
    """A twin's settings: its own database, and mail by SMTP to its own mailbox."""
    overrides: dict[str, object] = {
        "mail_backend": "smtp",
        "smtp_host": mailbox.host,
        "smtp_port": mailbox.port,
        "smtp_security": "none",
        "smtp_timeout": 5,
        "mail_rate_limit": MAIL_RATE_LIMIT,
    }
    if RATE_LIMIT:
        overrides.update(rate_limit_enabled=True, rate_limit=RATE_LIMIT)
    return in_process_settings(database, **overrides)


UNSENT = (
    select(func.count())
    .select_from(OutboxMessage)
    .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
)


def wait_for_delivery(engine: Engine, twin: str) -> None:
    """Return once ``twin`` has sent (or dropped) every message its outbox holds.

    FastAPI's ``TestClient`` returns after the background task has run; the Flask twin's pool
    delivers on threads of its own, so this polls its outbox, with a deadline. Waiting for
    arrivals would not do: a reset request for an address with no account sends nothing, and
    the next request (a signup at that address) must not overtake its delivery, which looks
    the address up.
    """
    deadline = time.monotonic() + MAIL_TIMEOUT
    while True:
        with engine.connect() as connection:
            unsent = connection.scalar(UNSENT)
        if not unsent:
            return
        assert time.monotonic() < deadline, f"{twin}: {unsent} unsent after {MAIL_TIMEOUT} s"
        time.sleep(0.002)


class TwinMachine(RuleBasedStateMachine):
    """Every rule sends one request (or a few) to both twins and compares the answers."""

    users = Bundle("users")

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.clients: dict[str, httpx2.Client] = {}
        self.engines: dict[str, Engine] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        try:
            directory = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
            for name, factory in APPS.items():
                url = migrated_sqlite(directory / f"{name}.db")
                # Started before the app, so stopped after it: an app finishes its deliveries.
                self.mailboxes[name] = self.stack.enter_context(Mailbox())
                configured = settings_for(url, self.mailboxes[name])
                self.mail_limit = parse(configured.mail_rate_limit).amount
                self.clients[name] = self.stack.enter_context(factory(configured))
                self.engines[name] = create_engine(url)
                self.stack.callback(self.engines[name].dispose)
        except BaseException:
            self.stack.close()
            raise
        self.known: dict[int, KnownUser] = {}
        self.admin_id = 0
        self.requests = 0
        self.statuses: set[int] = set()
        # Mail: how many of each mailbox's messages were compared; the links each twin mailed,
        # by account and page; those the last request made; and what the mail limit counted,
        # by purpose and address (resets) or account id (verification requests).
        self.mail_read = dict.fromkeys(TWINS, 0)
        self.links: dict[tuple[int, str], list[Link]] = {}
        self.new_links: list[tuple[int, str]] = []
        # The change links the last request mailed: their address, and each twin's token.
        self.new_changes: list[tuple[str, PerApp]] = []
        self.mail_counts: Counter[tuple[str, str]] = Counter()

    def teardown(self) -> None:
        self.stack.close()
        # Coverage, shown by pytest --hypothesis-show-statistics: how long the sequences
        # were, and which answers they reached (a 429 means a lockout was reached).
        event("requests per twin", f"{self.requests // 10 * 10}-{self.requests // 10 * 10 + 9}")
        for status in sorted(self.statuses):
            event(f"status {status} answered")

    # --- Sending. --------------------------------------------------------------------------

    def send(
        self,
        method: str,
        target: str,
        *,
        token: PerApp | None = None,
        authorization: str | Mapping[str, str] | None = None,
        body: bytes | Mapping[str, bytes] | None = None,
        content_type: str | None = None,
        chunked: bool = False,
    ) -> Exchange:
        """The same request to both twins, each with its own token (and body, when a body
        holds a token); the answers must agree, and neither may be a server error."""
        if token is not None:
            authorization = {name: f"Bearer {value}" for name, value in token.items()}
        self.requests += 1
        responses: Exchange = {}
        for name, client in self.clients.items():
            headers = {}
            if authorization is not None:
                given = authorization if isinstance(authorization, str) else authorization[name]
                headers["Authorization"] = given
            if content_type is not None:
                headers["Content-Type"] = content_type
            content = body[name] if isinstance(body, Mapping) else body
            # An iterator is sent with Transfer-Encoding: chunked, without Content-Length.
            sent = iter([content]) if chunked and content is not None else content
            responses[name] = client.request(method, target, content=sent, headers=headers)
        answers = {name: Answer.of(response) for name, response in responses.items()}
        first = answers[TWINS[0]]
        request = describe_request(method, target, authorization, body, content_type, chunked)
        note(f"{request} -> {first.status}")
        self.statuses.add(first.status)
        if any(answer != first for answer in answers.values()):
            for name, answer in answers.items():
                note(f"    {name}: {answer.show()}")
            report = "\n".join(
                [f"the twins differ on {request}"]
                + [f"  {name}: {answer.show()}" for name, answer in answers.items()]
            )
            for answer in answers.values():
                assert answer.status == first.status, report
                assert answer.headers == first.headers, report
                assert answer.json == first.json, report
                assert answer.text == first.text, report
        assert first.status < 500, f"{request}: a server error, on both twins: {first.show()}"
        self.take_mail(request)
        return responses

    def take_mail(self, request: str) -> None:
        """Wait for each twin to deliver what ``request`` committed, require the same messages
        from both, and keep the links in them, each twin's token with its own."""
        mailed: dict[str, list[EmailMessage]] = {}
        for name in TWINS:
            wait_for_delivery(self.engines[name], name)
            messages = self.mailboxes[name].messages()
            mailed[name], self.mail_read[name] = messages[self.mail_read[name] :], len(messages)
        first = mailed[TWINS[0]]
        for message in first:
            note(f"    mailed {message['Subject']!r} to {recipient(message)}")
        shapes = {name: [describe_mail(message) for message in mailed[name]] for name in TWINS}
        if any(shape != shapes[TWINS[0]] for shape in shapes.values()):
            report = "\n".join(f"  {name}: {shape}" for name, shape in shapes.items())
            raise AssertionError(f"the twins mailed differently after {request}:\n{report}")
        self.new_links, self.new_changes = [], []
        for index, message in enumerate(first):
            if (page := mailed_link(message)) is None:
                continue
            if message["Subject"] == CHANGE_SUBJECT:
                token = {name: link_token(mailed[name][index], page) for name in TWINS}
                self.new_changes.append((recipient(message), token))
                continue
            account = self.account_at(recipient(message))
            assert account is not None, f"a link mailed to {recipient(message)}, no one's address"
            token = {name: link_token(mailed[name][index], page) for name in TWINS}
            link = Link(token, email=account.email, generation=account.token_generation)
            self.links.setdefault((account.id, page), []).append(link)
            self.new_links.append((account.id, page))

    def send_json(
        self,
        method: str,
        target: str,
        value: object,
        *,
        token: PerApp | None = None,
    ) -> Exchange:
        return self.send(method, target, token=token, body=_json(value), content_type=JSON)

    @staticmethod
    def status(exchange: Exchange) -> int:
        return exchange[TWINS[0]].status_code  # the same on both, or send() failed

    @staticmethod
    def body(exchange: Exchange) -> Any:
        return exchange[TWINS[0]].json()

    def learn(self, exchange: Exchange) -> None:
        """Keep the model's emails current from an account both twins returned, and hold
        the account's ``is_verified`` to the model's."""
        self.remember(self.body(exchange))

    def remember(self, body: object) -> None:
        if isinstance(body, dict) and body.get("id") in self.known and "email" in body:
            user = self.known[body["id"]]
            user.email = body["email"]
            verified = body.get("is_verified")
            assert verified == user.is_verified, (
                f"user {user.id} is_verified={verified}; the model says {user.is_verified}"
            )

    def stored_user(self, user_id: int) -> Any:
        """The account's row in the first twin's database (the other's is the same)."""
        with self.engines[TWINS[0]].connect() as connection:
            return connection.execute(select(User.__table__).where(User.id == user_id)).first()

    def account_at(self, email: str) -> Any:
        """The account that has ``email`` in the first twin's database, if any."""
        with self.engines[TWINS[0]].connect() as connection:
            return connection.execute(select(User.__table__).where(User.email == email)).first()

    def expect(self, exchange: Exchange, status: int, what: str) -> int:
        """The status the model expects (or a per-client 429, in a rate-limited hunt)."""
        answered = self.status(exchange)
        if not (RATE_LIMIT and answered == 429):
            assert answered == status, f"{what}: {answered}, where the model expects {status}"
        return answered

    def choose_link(self, user_id: int, page: str, which: str) -> tuple[Link | None, PerApp]:
        """The link a rule follows (``LINK_CHOICES``), and each twin's token for it."""
        other = RESET_PAGE if page == VERIFY_PAGE else VERIFY_PAGE
        links = self.links.get((user_id, page), [])
        chosen = {
            "latest": links[-1:],
            "first": links[:1],
            "the other kind's": self.links.get((user_id, other), [])[-1:],
        }.get(which, [])
        if chosen:
            return chosen[0], chosen[0].token
        return None, same_for_both("" if which == "empty" else NEVER_MAILED)

    def link_works(self, user_id: int, page: str, link: Link | None) -> bool:
        """Whether the model expects ``link`` to be taken on ``page``: it is the latest of its
        kind for the account (a new one supersedes it), unused, and the account is active at
        the address it was mailed to. Every link also dies when every session of the account
        ends (a new password, a deactivation: the stored token generation moves on), and when
        the address changes (``kill_older_links``), even if it changes back."""
        links = self.links.get((user_id, page), [])
        if link is None or link.used or not links or link is not links[-1]:
            return False
        stored = self.stored_user(user_id)
        if stored is None or not stored.is_active or stored.email != link.email:
            return False
        return bool(stored.token_generation == link.generation)

    def kill_older_links(self, user_id: int) -> None:
        """An address changed: every link the account had stops working, but the one the
        change itself mailed."""
        for page in (*PAGES, CHANGE_LINKS):
            links = self.links.get((user_id, page), [])
            fresh = links[-1:] if (user_id, page) in self.new_links else []
            for link in links:
                link.used = link.used or link not in fresh

    def verification_mailed(self, address: str) -> bool:
        """Count one verification mail to ``address`` against the limit (signup, a change of
        address: silently, nothing is issued past it); whether it went out."""
        if self.mail_counts["verify_email", address] >= self.mail_limit:
            return False
        self.mail_counts["verify_email", address] += 1
        return True

    def count_verification_request(self, user_id: int, exchange: Exchange) -> None:
        """A verification request answered 202 mailed a link, and the limit counted it."""
        if self.status(exchange) == 202:
            self.mail_counts["verify_email", self.known[user_id].email] += 1
            assert self.new_links == [(user_id, VERIFY_PAGE)], "a 202 mails a link"

    def log_in(self, user: KnownUser) -> Exchange:
        pair = self.send_json(
            "POST", "/auth/login", {"email": user.email, "password": user.password}
        )
        if self.status(pair) == 200:
            user.take(pair)
        return pair

    # --- Accounts and tokens. --------------------------------------------------------------

    @initialize(target=users)
    def first_superuser(self) -> int:
        # An operator's superuser: its address counts as proved from the start.
        admin = KnownUser(id=0, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, is_verified=True)
        assert self.status(self.log_in(admin)) == 200
        me = self.body(self.send("GET", "/users/me", token=admin.access))
        admin.id = self.admin_id = me["id"]
        self.known[admin.id] = admin
        return admin.id

    @initialize(
        target=users,
        email=st.sampled_from(NEW_EMAILS_OK),
        password=st.sampled_from(GOOD_PASSWORDS),
        extra=st.sampled_from(BENIGN_EXTRAS),
    )
    def first_user(self, email: str, password: str, extra: dict[str, object]) -> object:
        """Every sequence starts with an ordinary account next to the superuser."""
        return self.signup(email, password, extra)

    @rule(
        target=users,
        email=st.sampled_from(EMAILS),
        password=st.sampled_from(GOOD_PASSWORDS),
        extra=st.sampled_from(BENIGN_EXTRAS),
    )
    def signup(self, email: str, password: str, extra: dict[str, object]) -> object:
        """Sign up and, when that works, log in (as tests.support.sign_up does)."""
        password = email if password == SAME_AS_EMAIL else password
        created = self.send_json(
            "POST", "/auth/signup", {"email": email, "password": password, **extra}
        )
        if self.status(created) != 201:
            return multiple()
        ids = {name: response.json()["id"] for name, response in created.items()}
        assert len(set(ids.values())) == 1, f"the twins gave the account different ids: {ids}"
        body = self.body(created)
        assert body["id"] not in self.known, f"id {body['id']} given out twice"
        mailed = self.verification_mailed(body["email"])
        assert self.new_links == ([(body["id"], VERIFY_PAGE)] if mailed else []), (
            "a signup mails a verification link, within the address's limit"
        )
        user = KnownUser(id=body["id"], email=body["email"], password=password)
        self.known[user.id] = user
        self.learn(created)  # unverified, as the model's new account
        self.log_in(user)  # 429 when an earlier account of that email was locked
        return user.id

    @rule(
        target=users,
        email=st.sampled_from(EMAILS + BAD_EMAILS),
        password=st.sampled_from(SIGNUP_PASSWORDS),
        extra=st.sampled_from(SIGNUP_EXTRAS),
    )
    def signup_badly(self, email: str, password: str, extra: dict[str, object]) -> object:
        """Bad addresses, refused passwords, fields no one may set: mostly 422."""
        return self.signup(email, password, extra)

    @rule(
        user_id=users,
        password=st.sampled_from(LOGIN_PASSWORDS),
        email_form=st.sampled_from(EMAIL_FORMS),
    )
    def login(self, user_id: int, password: str, email_form: str) -> None:
        user = self.known[user_id]
        email = {
            "stored": user.email,
            "upper-case": user.email.upper(),
            "padded": f"  {user.email} ",
        }[email_form]
        given = {"right": user.password, "wrong": user.password + "!", "empty": ""}[password]
        pair = self.send_json("POST", "/auth/login", {"email": email, "password": given})
        if self.status(pair) == 200:
            user.take(pair)

    @rule(email=st.sampled_from(("nobody@example.com", "NOBODY@EXAMPLE.COM", *BAD_EMAILS)))
    def login_unknown(self, email: str) -> None:
        self.send_json("POST", "/auth/login", {"email": email, "password": "some password"})

    @rule(user_id=users, form=st.sampled_from(TOKEN_FORMS))
    def token_form(self, user_id: int, form: str) -> None:
        """RFC 6749 §4.3's password grant, well and badly formed."""
        user = self.known[user_id]
        fields = [("grant_type", "password"), ("username", user.email), ("password", user.password)]
        if form == "wrong password":
            fields[2] = ("password", "not the password")
        elif form == "upper-case username":
            fields[1] = ("username", user.email.upper())
        elif form == "grant_type=client_credentials":
            fields[0] = ("grant_type", "client_credentials")
        elif form == "no grant_type":
            del fields[0]
        elif form == "no password":
            del fields[2]
        elif form == "empty password":
            fields[2] = ("password", "")
        elif form == "repeated username":
            fields.append(("username", "someone@example.com"))
        elif form == "with scope":
            fields.append(("scope", "read write"))
        if form == "as JSON":
            pair = self.send_json("POST", "/auth/token", dict(fields))
        else:
            form_type = "application/x-www-form-urlencoded"
            body = urlencode(fields).encode()
            pair = self.send("POST", "/auth/token", body=body, content_type=form_type)
        if self.status(pair) == 200:
            user.take(pair)

    @rule(user_id=users, which=st.sampled_from(REFRESH_WITH))
    def refresh(self, user_id: int, which: str) -> None:
        """Rotation; a spent token ("previous", "first") revokes its whole family."""
        user = self.known[user_id]
        token = {
            "current": user.refresh,
            "previous": user.issued[-2][1] if len(user.issued) > 1 else user.refresh,
            "first": user.issued[0][1] if user.issued else user.refresh,
            "garbage": same_for_both("not.a.token"),
            "access token": user.access,
        }[which]
        body = per_app(lambda app: {"refresh_token": token[app]})
        pair = self.send("POST", "/auth/refresh", body=body, content_type=JSON)
        if self.status(pair) == 200:
            user.take(pair)
        elif which != "access token" and same_session(token, user.refresh):
            user.end_sessions()  # a replay in the current session ends it, access token too

    @rule(user_id=users, which=st.sampled_from(LOGOUT_WITH))
    def logout(self, user_id: int, which: str) -> None:
        user = self.known[user_id]
        others = [u for u in self.known.values() if u.id != user_id]
        token = {
            "current": user.refresh,
            "garbage": same_for_both("not.a.token"),
            "another account's": others[-1].refresh if others else user.refresh,
            "no bearer": user.refresh,
        }[which]
        body = per_app(lambda app: {"refresh_token": token[app]})
        bearer = None if which == "no bearer" else user.access
        done = self.send("POST", "/auth/logout", token=bearer, body=body, content_type=JSON)
        if self.status(done) == 204:
            user.end_sessions()  # the access token that asked is denied from now on

    # --- The caller's own account. ---------------------------------------------------------

    @rule(user_id=users, auth=st.sampled_from(list(READ_ME_AUTH)))
    def read_me(self, user_id: int, auth: str) -> None:
        """GET /users/me with the current access token, or with the wrong credentials."""
        user = self.known[user_id]
        previous = user.issued[-2][0] if len(user.issued) > 1 else user.access
        shape = READ_ME_AUTH[auth]
        authorization = None
        if shape is not None:
            authorization = {
                app: shape.format(
                    access=user.access[app], refresh=user.refresh[app], previous=previous[app]
                )
                for app in TWINS
            }
        me = self.send("GET", "/users/me", authorization=authorization)
        if auth == "current" and user.session_ok:
            assert self.status(me) == 200, f"user {user_id}'s session should still work"
            assert self.body(me)["id"] == user_id
        if self.status(me) == 200:
            self.learn(me)

    @rule(user_id=users, forged=st.sampled_from(FORGED))
    def forged_token(self, user_id: int, forged: str) -> None:
        """Tokens made with the test secret rather than issued: one and the same token for
        both twins (they share the secret), so only their verdicts can differ."""
        stored = self.stored_user(user_id)
        generation = stored.token_generation if stored is not None else 0
        changes: dict[str, dict[str, Any]] = {
            "valid": {},
            "other generation": {"generation": generation + 1},
            "refresh typ": {"typ": "rt+jwt", "token_type": "refresh"},
            "no typ": {"headers": {"typ": None}},
            "other audience": {"audience": "someone-else"},
            "other issuer": {"issuer": "someone-else"},
            "no exp": {"drop": ("exp",)},
            "expired": {"lifetime": timedelta(seconds=-60)},
            "not yet valid": {"not_before": timedelta(minutes=5)},
            "sub not a number": {"sub": "one"},
            "sub missing": {"sub": None},
            "unknown user": {"sub": "999"},
            "kid header": {"headers": {"kid": "key-1"}},
        }
        secret = (
            "another-secret-that-is-long-enough-0123456789"
            if forged == "other secret"
            else TEST_SECRET
        )
        user = self.known[user_id]
        options: dict[str, Any] = {"sub": str(user_id), "generation": generation}
        tokens: PerApp = {}
        for app in TWINS:
            # Of each twin's current session: the one thing the twins' tokens do not share.
            session = session_of(user.access[app])
            token = forge(secret, **{**options, "session": session, **changes.get(forged, {})})
            if forged == "alg none":  # python-jose will not sign with "none"; nor should anyone
                unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}')
                token = f"{unsigned.rstrip(b'=').decode()}.{token.split('.')[1]}."
            tokens[app] = token
        me = self.send("GET", "/users/me", token=tokens)
        usable = stored is not None and stored.is_active and user.session_ok
        if forged == "valid" and usable:
            assert self.status(me) == 200, "a valid token of a live session opens /users/me"

    @rule(user_id=users, attempts=st.sampled_from((3, 10)))
    def guess_passwords(self, user_id: int, attempts: int) -> None:
        """Wrong passwords in a row, then the right one: ten lock the account (429)."""
        user = self.known[user_id]
        for attempt in range(attempts):
            wrong = {"email": user.email, "password": f"guess number {attempt}"}
            self.send_json("POST", "/auth/login", wrong)
        self.log_in(user)

    @rule(
        user_id=users,
        full_name=st.sampled_from(NEW_NAMES),
        email=st.sampled_from(NEW_EMAILS),
        current_password=st.sampled_from(CURRENT_PASSWORDS),
    )
    def update_me(
        self, user_id: int, full_name: str | None, email: str, current_password: str
    ) -> None:
        user = self.known[user_id]
        body: dict[str, object] = {}
        if full_name != ABSENT:
            body["full_name"] = full_name
        if email != ABSENT:
            body["email"] = email
        if current_password != ABSENT:
            right = current_password == "right"
            body["current_password"] = user.password if right else "not the password"
        updated = self.send_json("PATCH", "/users/me", body, token=user.access)
        assert self.new_links == [], "asking for a new address mails no verification link"
        if self.status(updated) != 200:
            assert self.new_changes == [], "a refused request mails no change link"
            return
        self.learn(updated)
        assert self.body(updated)["email"] == user.email, "the address stays until confirmed"
        if email == ABSENT:
            assert self.new_changes == [], "a change of name mails nothing"
            return
        address = email.lower()
        changes = self.links.setdefault((user_id, CHANGE_LINKS), [])
        for link in changes:  # only the latest request is the account's wish
            link.used = True
        if address == user.email:  # asking for the address it has takes a change back
            assert self.new_changes == [], "no link to the address the account has"
            return
        # Free or taken, the new address is mailed a link: within its verification budget.
        mailed = self.verification_mailed(address)
        assert [a for a, _ in self.new_changes] == ([address] if mailed else []), (
            "a new address is mailed one change link, within its budget"
        )
        generation = self.stored_user(user_id).token_generation
        for _, token in self.new_changes:
            changes.append(Link(token, email=address, generation=generation))

    @rule(
        user_id=users,
        which=st.sampled_from(LINK_CHOICES),
        password=st.sampled_from(CONFIRMING_PASSWORDS),
    )
    def confirm_email_change(self, user_id: int, which: str, password: str) -> None:
        """Follow a change link with the account's password, another, or none: only the
        first moves the account, and only to an address still free."""
        user = self.known[user_id]
        changes = self.links.get((user_id, CHANGE_LINKS), [])
        chosen = {
            "latest": changes[-1:],
            "first": changes[:1],
            "the other kind's": self.links.get((user_id, RESET_PAGE), [])[-1:],
        }.get(which, [])
        link = chosen[0] if chosen else None
        token = link.token if link else same_for_both("" if which == "empty" else NEVER_MAILED)
        given = {"right": user.password, "wrong": user.password + "!", ABSENT: None}[password]
        body = per_app(
            lambda app: (
                {"token": token[app]} if given is None else {"token": token[app], "password": given}
            )
        )
        # Whether the address has an account before the link is followed (after, it may be
        # this one's).
        taken = link is not None and self.account_at(link.email) is not None
        confirmed = self.send("POST", "/auth/verify", body=body, content_type=JSON)
        works = link is not None and link in changes and self.change_works(user_id, link)
        expected = (
            422
            if which == "empty" or (works and given is None)
            else 200
            if works and password == "right" and not taken
            else 400
        )
        if self.status(confirmed) == 429 and works and given is not None:
            return  # the account is locked: a link is no way around it, and nothing moved
        if self.expect(confirmed, expected, f"a change through the {which} link") == 200:
            assert link is not None
            event("a change of address was confirmed")
            link.used = True
            user.is_verified = True
            self.learn(confirmed)
            assert user.email == link.email
            self.kill_older_links(user_id)

    @rule(user_id=users, email=st.sampled_from((*NEW_EMAILS_OK, "dee@example.com")))
    def move_address(self, user_id: int, email: str) -> None:
        """What an account moving is asked to do: ask, then follow the latest link mailed for
        it with its password."""
        self.update_me(user_id, ABSENT, email, "right")
        self.confirm_email_change(user_id, "latest", "right")

    def change_works(self, user_id: int, link: Link) -> bool:
        """A change link works while it is the account's latest, unused, and the account is
        active with the password it had when it asked (the token generation)."""
        changes = self.links.get((user_id, CHANGE_LINKS), [])
        if link.used or link is not changes[-1]:
            return False
        stored = self.stored_user(user_id)
        return bool(
            stored is not None and stored.is_active and stored.token_generation == link.generation
        )

    @rule(
        user_id=users,
        current=st.sampled_from(("right", "wrong")),
        new=st.sampled_from(NEW_PASSWORDS),
    )
    def change_password(self, user_id: int, current: str, new: str) -> None:
        user = self.known[user_id]
        new = {SAME_AS_EMAIL: user.email, SAME_AS_CURRENT: user.password}.get(new, new)
        given = user.password if current == "right" else "not the password"
        body = {"current_password": given, "new_password": new}
        changed = self.send_json("PUT", "/users/me/password", body, token=user.access)
        if self.status(changed) == 204:
            user.password = new
            user.end_sessions()  # a changed password ends every session

    @rule(user_id=users)
    def delete_me(self, user_id: int) -> None:
        user = self.known[user_id]
        if self.status(self.send("DELETE", "/users/me", token=user.access)) == 204:
            user.end_sessions()

    # --- Administration. -------------------------------------------------------------------

    @rule(actor_id=users, query=st.sampled_from(PAGE_QUERIES))
    def list_users(self, actor_id: int, query: str) -> None:
        target = f"/users?{query}" if query else "/users"
        page = self.send("GET", target, token=self.known[actor_id].access)
        if self.status(page) == 200:
            for item in self.body(page)["items"]:
                self.remember(item)

    @rule(actor_id=users, user_id=users)
    def read_user(self, actor_id: int, user_id: int) -> None:
        self.learn(self.send("GET", f"/users/{user_id}", token=self.known[actor_id].access))

    @rule(actor_id=users, raw_id=st.sampled_from(RAW_IDS))
    def read_user_by_raw_id(self, actor_id: int, raw_id: str) -> None:
        self.send("GET", f"/users/{raw_id}", token=self.known[actor_id].access)

    @rule(actor_id=users, user_id=users, change=st.sampled_from(ADMIN_CHANGES))
    def update_user(self, actor_id: int, user_id: int, change: dict[str, object]) -> None:
        """Promote, demote, deactivate, rename, reset: a superuser's changes to anyone."""
        token = self.known[actor_id].access
        updated = self.send_json("PATCH", f"/users/{user_id}", change, token=token)
        user = self.known[user_id]
        moved = self.status(updated) == 200 and self.body(updated)["email"] != user.email
        vouched = change.get("is_verified") is True
        if moved:
            self.kill_older_links(user_id)
        new_address = self.body(updated)["email"] if moved else None
        mailed = new_address is not None and not vouched and self.verification_mailed(new_address)
        assert self.new_links == ([(user_id, VERIFY_PAGE)] if mailed else []), (
            "an address an administrator sets is mailed a link, unless they vouch for it"
        )
        if self.status(updated) == 200:
            if isinstance(verified := change.get("is_verified"), bool):
                user.is_verified = verified
            if moved:
                user.is_verified = vouched  # a new address is unproved, unless vouched for
            self.learn(updated)
            if isinstance(password := change.get("password"), str):
                user.password = password
                user.end_sessions()
            if change.get("is_active") is False:
                user.end_sessions()  # and reactivation does not bring them back

    @rule(actor_id=users, raw_id=st.sampled_from(BAD_IDS), change=st.sampled_from(ADMIN_CHANGES))
    def update_user_by_raw_id(self, actor_id: int, raw_id: str, change: dict[str, object]) -> None:
        self.send_json("PATCH", f"/users/{raw_id}", change, token=self.known[actor_id].access)

    @rule(actor_id=users, user_id=users)
    def delete_user(self, actor_id: int, user_id: int) -> None:
        token = self.known[actor_id].access
        if self.status(self.send("DELETE", f"/users/{user_id}", token=token)) == 204:
            self.known[user_id].end_sessions()

    @rule(actor_id=users, raw_id=st.sampled_from(BAD_IDS))
    def delete_user_by_raw_id(self, actor_id: int, raw_id: str) -> None:
        self.send("DELETE", f"/users/{raw_id}", token=self.known[actor_id].access)

    # --- Mailed links: a forgotten password, and proving an address. -------------------------

    def ask_for_reset(self, given: str, address: str | None) -> None:
        """POST /auth/password-reset: 202 whoever has the address, until the mail limit is
        used up for ``address`` (the normalised address; None for one the body's schema
        refuses); a link only to an active account."""
        asked = self.send_json("POST", "/auth/password-reset", {"email": given})
        if address is None:
            self.expect(asked, 422, f"a reset for {given!r}")
            return
        count = self.mail_counts["password_reset", address]
        limited = count >= self.mail_limit
        what = f"reset request {count + 1} for {address}"
        if self.expect(asked, 429 if limited else 202, what) == 202:
            self.mail_counts["password_reset", address] += 1
        account = self.account_at(address)
        mails = self.status(asked) == 202 and account is not None and account.is_active
        assert self.new_links == ([(account.id, RESET_PAGE)] if mails else []), (
            f"{what}: a link goes to an active account's address, and only there"
        )

    @rule(
        user_id=users,
        form=st.sampled_from(("stored", "upper-case")),
        times=st.sampled_from((1, OVER_THE_MAIL_LIMIT)),
    )
    def request_reset(self, user_id: int, form: str, times: int) -> None:
        user = self.known[user_id]
        given = user.email.upper() if form == "upper-case" else user.email
        for _ in range(times):
            self.ask_for_reset(given, user.email)

    @rule(email=st.sampled_from((*UNKNOWN_ADDRESSES, "not-an-email", "")))
    def request_reset_unknown(self, email: str) -> None:
        """The same answer and the same limit for an address no account has; no mail."""
        self.ask_for_reset(email, email.lower() if email in UNKNOWN_ADDRESSES else None)

    @rule(user_id=users, new=st.sampled_from(("a brand new passphrase", SAME_AS_CURRENT)))
    def forgot_password(self, user_id: int, new: str) -> None:
        """The whole story: ask for a link, and set a new password through the one mailed
        (``confirm_reset`` follows stale, used and made-up links, and refused passwords)."""
        user = self.known[user_id]
        self.ask_for_reset(user.email, user.email)
        self.confirm_reset(user_id, "latest", new)

    @rule(user_id=users, which=st.sampled_from(LINK_CHOICES), new=st.sampled_from(NEW_PASSWORDS))
    def confirm_reset(self, user_id: int, which: str, new: str) -> None:
        """A new password through a reset link, each twin given the token it mailed: once,
        the latest link only; every session ends and the address counts as proved. A password
        the policy refuses leaves the link as it was."""
        user = self.known[user_id]
        link, token = self.choose_link(user_id, RESET_PAGE, which)
        works = self.link_works(user_id, RESET_PAGE, link)
        password = {SAME_AS_EMAIL: user.email, SAME_AS_CURRENT: user.password}.get(new, new)
        body = per_app(lambda app: {"token": token[app], "new_password": password})
        done = self.send("POST", "/auth/password-reset/confirm", body=body, content_type=JSON)
        if new == TOO_SHORT or which == "empty":
            expected = 422  # by the body's schema, before the token is looked at
        elif not works:
            expected = 400  # whatever the password: an invalid link is refused first
        else:
            expected = 422 if new in REFUSED_PASSWORDS else 204
        if self.expect(done, expected, f"a reset through the {which} link") == 204:
            assert link is not None
            event("a mailed reset link worked")
            link.used = True
            user.password = password
            user.is_verified = True
            user.end_sessions()

    @rule(user_id=users)
    def verify_address(self, user_id: int) -> None:
        """What every new account is asked to do: follow the latest link mailed to it."""
        self.verify_email(user_id, "latest")

    @rule(user_id=users, which=st.sampled_from(LINK_CHOICES))
    def verify_email(self, user_id: int, which: str) -> None:
        """Follow a verification link (a signup's, a new address's, a requested one)."""
        link, token = self.choose_link(user_id, VERIFY_PAGE, which)
        works = self.link_works(user_id, VERIFY_PAGE, link)
        body = per_app(lambda app: {"token": token[app]})
        verified = self.send("POST", "/auth/verify", body=body, content_type=JSON)
        expected = 422 if which == "empty" else 200 if works else 400
        if self.expect(verified, expected, f"a verification through the {which} link") == 200:
            assert link is not None
            assert self.body(verified)["id"] == user_id
            event("a mailed verification link worked")
            link.used = True
            self.known[user_id].is_verified = True
            self.learn(verified)

    @rule(user_id=users, times=st.sampled_from((1, OVER_THE_MAIL_LIMIT)))
    def request_verification(self, user_id: int, times: int) -> None:
        """A new link to one's own address: 409 once it is proved, and limited per account."""
        user = self.known[user_id]
        for _ in range(times):
            asked = self.send("POST", "/auth/verify/request", token=user.access)
            if user.session_ok:
                limited = self.mail_counts["verify_email", user.email] >= self.mail_limit
                expected = 409 if user.is_verified else 429 if limited else 202
                self.expect(asked, expected, f"user {user_id}'s verification request")
            self.count_verification_request(user_id, asked)

    # --- Requests no client should send. ---------------------------------------------------

    @rule(user_id=users, route=st.sampled_from(BODY_ROUTES), kind=st.sampled_from(list(BAD_BODIES)))
    def bad_body(self, user_id: int, route: str, kind: str) -> None:
        """Wrong media types and bodies that are not JSON objects; none changes anything."""
        method, path = route.split(" ", 1)
        content_type, body = BAD_BODIES[kind]
        path = path.replace("{own id}", str(user_id))
        token = self.known[user_id].access
        chunked = "chunked" in kind
        sent = self.send(
            method, path, token=token, body=body, content_type=content_type, chunked=chunked
        )
        if route == "POST /auth/verify/request":  # its body is no part of it
            self.count_verification_request(user_id, sent)

    @rule(
        user_id=users,
        request=st.sampled_from(ODD_REQUESTS),
        body=st.sampled_from(("none", "{}", "over 1 MiB", "over 1 MiB, chunked")),
    )
    def odd_request(self, user_id: int, request: str, body: str) -> None:
        """Methods a route does not allow, paths no route has, routes outside /api/v1; with a
        body or without (one over the limit is a 413 before routing, however it is sent)."""
        method, target = request.split(" ")
        content = {"none": None, "{}": b"{}"}.get(body, OVERSIZED)
        self.send(
            method,
            target,
            token=self.known[user_id].access,
            body=content,
            content_type=None if content is None else JSON,
            chunked="chunked" in body,
        )

    # --- After every step. -----------------------------------------------------------------

    @invariant()
    def first_superuser_still_reads_itself(self) -> None:
        admin = self.known.get(self.admin_id)
        if admin is not None and admin.session_ok:
            me = self.send("GET", "/users/me", token=admin.access)
            assert self.status(me) == 200, "the first superuser's session should still work"

    @invariant()
    def databases_agree(self) -> None:
        """Both twins stored the same thing: accounts, token families, denied access tokens,
        link tokens, mail."""
        states = {name: stored_state(engine) for name, engine in self.engines.items()}
        first = states[TWINS[0]]
        for name, state in states.items():
            assert state == first, f"stored state differs:\n{TWINS[0]}: {first}\n{name}: {state}"


def stored_state(engine: Engine) -> dict[str, object]:
    """What a database holds, without what differs by nature (times, jtis, salts)."""
    with engine.connect() as connection:
        users = [
            (row.id, row.email, row.full_name, row.is_active, row.is_superuser, row.is_verified,
             row.token_generation, row.hashed_password.rsplit("$", 2)[0])
            for row in connection.execute(select(User.__table__).order_by(User.id))
        ]  # fmt: skip
        links = sorted(
            (row.user_id, row.purpose, row.email, row.generation, row.used_at is not None)
            for row in connection.execute(select(OneTimeToken.__table__))
        )
        # Read once every delivery has finished (``wait_for_delivery``): sent, context erased.
        outbox = sorted(
            (row.kind, row.recipient, row.attempts, row.context is None,
             row.sent_at is not None, row.failed_at is not None)
            for row in connection.execute(select(OutboxMessage.__table__))
        )  # fmt: skip
        families: dict[tuple[int, str], list[tuple[bool, bool]]] = {}
        for row in connection.execute(select(RefreshToken.__table__)):
            spent = (row.revoked_at is not None, row.replaced_by is not None)
            families.setdefault((row.user_id, row.family_id), []).append(spent)
        denied = connection.scalar(select(func.count()).select_from(RevokedAccessToken))
    by_user = Counter((user, tuple(sorted(chain))) for (user, _), chain in families.items())
    return {
        "users": users,
        "refresh_families": sorted(by_user.items()),
        "denied_access": denied,
        "link_tokens": links,
        "outbox": outbox,
    }


# The default run is derandomised (see the module docstring) and stores no examples: a failure
# prints the whole shrunk sequence, which is the reproduction.
TestTwins = TwinMachine.TestCase
TestTwins.settings = settings(
    max_examples=int(os.environ.get(EXAMPLES_VARIABLE) or 25),
    stateful_step_count=int(os.environ.get(STEPS_VARIABLE) or 20),
    derandomize=not HUNTING,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
