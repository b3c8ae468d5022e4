"""Reading the account mail a target sends to the suite's inbox: which kind a message is,
and waiting for one of a kind.

A message's kind is told by its subject, rendered from the same templates the service uses
(shared/templates/mail/<kind>/subject.txt), so a reworded subject cannot make a test read
the wrong mail. Kinds are told apart rather than counted by position: the Flask twin and a
live server deliver from a pool, so two messages to one address may arrive in either order.
"""

import os
import time
from email.message import EmailMessage

import httpx2

from shared.infrastructure.mail_templates import CONTEXT_KEYS, MailKind, render_mail
from tests.mailbox import Mailbox, link_token

# The subject depends on no caller's value, but rendering needs each name its kind takes.
_PLACEHOLDERS: dict[str, str | int] = {
    "link": "-",
    "hours": 1,
    "minutes": 1,
    "public_url": "-",
    "new_email_hint": "-",
}
SUBJECTS: dict[MailKind, str] = {
    kind: render_mail(kind, **{key: _PLACEHOLDERS[key] for key in keys})[0]
    for kind, keys in CONTEXT_KEYS.items()
}
# How many reset or verification mails one address or account is sent an hour: the
# contract's default, or what a live server was started with (tests/live.py passes its
# environment on).
MAIL_LIMIT = int(os.environ.get("AUTHTWIN_MAIL_RATE_LIMIT", "5/hour").split("/")[0])
LINK_PAGES: dict[MailKind, str] = {
    "password_reset": "/reset-password",
    "verify_email": "/verify-email",
    "confirm_email_change": "/verify-email",
}


def kind_of(message: EmailMessage) -> MailKind:
    (kind,) = [kind for kind, subject in SUBJECTS.items() if subject == message["Subject"]]
    return kind


def kinds_to(inbox: Mailbox, address: str) -> list[MailKind]:
    """The kinds of every message to ``address`` so far, in order of arrival (waiting for
    none: at least 0 have always arrived)."""
    return [kind_of(message) for message in inbox.wait_for(to=address, count=0)]


def wait_for_mail(
    inbox: Mailbox, *, to: str, kind: MailKind, count: int = 1, timeout: float = 10
) -> list[EmailMessage]:
    """Every ``kind`` message to ``to`` so far, once at least ``count`` have arrived."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        # Woken by each new message to ``to``; the deadline bounds the whole wait.
        remaining = max(deadline - time.monotonic(), 0)
        try:
            messages = inbox.wait_for(to=to, count=seen + 1, timeout=remaining)
        except AssertionError:
            arrived = kinds_to(inbox, to)
            raise AssertionError(
                f"{count} {kind} message(s) to {to} expected; arrived: {arrived}"
            ) from None
        matching = [message for message in messages if kind_of(message) == kind]
        if len(matching) >= count:
            return matching
        seen = len(messages)


def link_in(inbox: Mailbox, *, to: str, kind: MailKind, number: int = 1) -> str:
    """The token of the link in the ``number``-th ``kind`` message to ``to``."""
    messages = wait_for_mail(inbox, to=to, kind=kind, count=number)
    return link_token(messages[number - 1], LINK_PAGES[kind])


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def move_address(
    client: httpx2.Client, inbox: Mailbox, *, headers: dict[str, str], password: str, email: str
) -> httpx2.Response:
    """Ask to move the account of ``headers`` to ``email``, then follow the link mailed there
    with the account's ``password``: the link's answer (the account, moved, on success)."""
    asked = client.patch(
        "/users/me", json={"email": email, "current_password": password}, headers=headers
    )
    assert asked.status_code == 200, asked.text
    # Mailed to the address as the service normalises it (tests/test_users_me.py sends upper case).
    token = link_in(inbox, to=email.lower(), kind="confirm_email_change")
    return client.post("/auth/verify", json={"token": token, "password": password})


def request_reset(client: httpx2.Client, email: str) -> httpx2.Response:
    response = client.post("/auth/password-reset", json={"email": email})
    assert response.status_code == 202, response.text
    return response
