"""Differential testing of the twins: one random story, told to both apps, gets one answer.

The contract suite checks each twin against what its authors thought to test. Here hypothesis
writes the stories: a ``RuleBasedStateMachine`` draws sequences of operations (sign up, log
in, the OAuth2 form, refresh and reuse, logout, profile and password changes, administration,
malformed requests), performs each on the FastAPI app and on the Flask app, in process, each
on an empty SQLite database of its own, and requires the same answer from both: status, the
headers that carry meaning, and the body byte for byte once the values that differ by nature
(tokens, timestamps) are normalised. After every step the two databases must hold the same
state too. Any difference is a bug in one twin; hypothesis shrinks it to a short sequence and
prints it, with a ``note`` of every request sent and both answers where they differ.

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
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
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
from sqlalchemy import Engine, create_engine, func, select

from shared.domain.models import RefreshToken, RevokedAccessToken, User
from shared.infrastructure.config import Settings
from tests.clients import APPS
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    TEST_SECRET,
    in_process_settings,
    migrated_sqlite,
)
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
    "GET /users/me?unexpected=1",
    "GET /users//me",
    "POST /auth//login",
    "GET http://testserver/.well-known/jwks.json",
    "HEAD http://testserver/openapi.json",
    "GET http://testserver/docs",
    "GET http://testserver/redoc",
    "GET http://testserver/nope",
)


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


def settings_for(database: str) -> Settings:
    if RATE_LIMIT:
        return in_process_settings(database, rate_limit_enabled=True, rate_limit=RATE_LIMIT)
    return in_process_settings(database)


class TwinMachine(RuleBasedStateMachine):
    """Every rule sends one request (or a few) to both twins and compares the answers."""

    users = Bundle("users")

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.clients: dict[str, httpx2.Client] = {}
        self.engines: dict[str, Engine] = {}
        try:
            directory = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
            for name, factory in APPS.items():
                url = migrated_sqlite(directory / f"{name}.db")
                self.clients[name] = self.stack.enter_context(factory(settings_for(url)))
                self.engines[name] = create_engine(url)
                self.stack.callback(self.engines[name].dispose)
        except BaseException:
            self.stack.close()
            raise
        self.known: dict[int, KnownUser] = {}
        self.admin_id = 0
        self.requests = 0
        self.statuses: set[int] = set()

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
        return responses

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
        """Keep the model's emails current from an account both twins returned."""
        body = self.body(exchange)
        if isinstance(body, dict) and body.get("id") in self.known and "email" in body:
            self.known[body["id"]].email = body["email"]

    def stored_user(self, user_id: int) -> Any:
        """The account's row in the first twin's database (the other's is the same)."""
        with self.engines[TWINS[0]].connect() as connection:
            return connection.execute(select(User.__table__).where(User.id == user_id)).first()

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
        admin = KnownUser(id=0, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
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
        user = KnownUser(id=body["id"], email=body["email"], password=password)
        self.known[user.id] = user
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
        if self.status(updated) == 200:
            self.learn(updated)

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
        self.send("GET", target, token=self.known[actor_id].access)

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
        if self.status(updated) == 200:
            self.learn(updated)
            user = self.known[user_id]
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

    # --- Requests no client should send. ---------------------------------------------------

    @rule(user_id=users, route=st.sampled_from(BODY_ROUTES), kind=st.sampled_from(list(BAD_BODIES)))
    def bad_body(self, user_id: int, route: str, kind: str) -> None:
        """Wrong media types and bodies that are not JSON objects; none changes anything."""
        method, path = route.split(" ", 1)
        content_type, body = BAD_BODIES[kind]
        path = path.replace("{own id}", str(user_id))
        token = self.known[user_id].access
        chunked = "chunked" in kind
        self.send(method, path, token=token, body=body, content_type=content_type, chunked=chunked)

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
        """Both twins stored the same thing: accounts, token families, denied access tokens."""
        states = {name: stored_state(engine) for name, engine in self.engines.items()}
        first = states[TWINS[0]]
        for name, state in states.items():
            assert state == first, f"stored state differs:\n{TWINS[0]}: {first}\n{name}: {state}"


def stored_state(engine: Engine) -> dict[str, object]:
    """What a database holds, without what differs by nature (times, jtis, salts)."""
    with engine.connect() as connection:
        users = [
            (row.id, row.email, row.full_name, row.is_active, row.is_superuser,
             row.token_generation, row.hashed_password.rsplit("$", 2)[0])
            for row in connection.execute(select(User.__table__).order_by(User.id))
        ]  # fmt: skip
        families: dict[tuple[int, str], list[tuple[bool, bool]]] = {}
        for row in connection.execute(select(RefreshToken.__table__)):
            spent = (row.revoked_at is not None, row.replaced_by is not None)
            families.setdefault((row.user_id, row.family_id), []).append(spent)
        denied = connection.scalar(select(func.count()).select_from(RevokedAccessToken))
    by_user = Counter((user, tuple(sorted(chain))) for (user, _), chain in families.items())
    return {"users": users, "refresh_families": sorted(by_user.items()), "denied_access": denied}


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
