"""What the service mails about an account, and the links in it: the hooks the use cases
call (fastapi-users' ``on_after_register``, ``on_after_forgot_password``), each writing one
outbox message in the caller's transaction.
"""

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.domain.models import OutboxMessage, User
from shared.infrastructure.mail import OutgoingMail
from shared.infrastructure.mail_templates import MailKind, render_mail
from shared.security.sealing import Seal
from shared.security.throttle import Throttle
from shared.services.one_time_tokens import OneTimeTokens
from shared.services.outbox import enqueue

# The pages each twin serves for the links (routes/pages.py). The token goes in the
# fragment, which browsers never send: not to our server's log, nor in a Referer.
RESET_PAGE = "/reset-password"
VERIFY_PAGE = "/verify-email"


class AccountMail:
    def __init__(
        self, *, tokens: OneTimeTokens, throttle: Throttle, public_url: str, seal: Seal
    ) -> None:
        self._tokens = tokens
        # Every context is stored sealed: a waiting link is of no use to whoever reads the
        # table (security/sealing.py).
        self._seal = seal
        self._throttle = throttle
        self._public_url = public_url
        self._domain = urlsplit(public_url).hostname or "localhost"

    def verification(
        self,
        session: Session,
        user: User,
        *,
        counted: bool = False,
        client_ip: str | None = None,
    ) -> None:
        """A link proving ``user.email`` is theirs; any earlier one stops working.

        Limited silently, unless the caller ``counted`` it already (and told the client with
        a 429): signing up, deleting and signing up again, or moving an account between its
        own address and someone else's, must not flood that mailbox. Past the limit nothing
        is issued, so the link already mailed keeps working.
        """
        if counted or self.may_send_verification(user.email, client_ip=client_ip):
            token = self._tokens.issue(session=session, user=user, purpose="verify_email")
            self.verification_link(session, user.email, token)

    def may_send_verification(self, email: str, *, client_ip: str | None) -> bool:
        """Count one verification mail to ``email``: False once over the limit.

        Asked for by ``client_ip`` (a signup, a change of address): that client's budget for
        the address, under the address's ceiling, so strangers asking for it spend their own.
        Without one (an administrator's change of address): the address's budget.
        """
        if client_ip is None:
            return self._throttle.allow_mail("verify_email", email)
        return self._throttle.allow_link_mail("verify_email", email, client_ip=client_ip)

    def verification_link(self, session: Session, email: str, token: str) -> None:
        """Mail ``token``'s link to ``email`` (counted by the caller)."""
        hours = int(self._tokens.lifetime("verify_email").total_seconds() // 3600)
        link = f"{self._public_url}{VERIFY_PAGE}#token={token}"
        self._add(session, "verify_email", email, {"link": link, "hours": hours})

    def email_change(self, session: Session, user: User, email: str, *, client_ip: str) -> None:
        """A link to ``email`` that moves ``user``'s account there, once followed with the
        account's password (``EmailChanges.confirm``); an earlier such link stops working.

        Written alike whether ``email`` is free or taken: what the request does must not
        tell which addresses have accounts. The owner of a taken address is told someone
        asked, and the link fails if followed. Counted on the asking client's verification
        budget for the address, under the address's ceiling, silently, like the signup's
        link: past it nothing is issued.
        """
        if self.may_send_verification(email, client_ip=client_ip):
            token = self._tokens.issue(
                session=session, user=user, purpose="change_email", email=email
            )
            hours = int(self._tokens.lifetime("change_email").total_seconds() // 3600)
            link = f"{self._public_url}{VERIFY_PAGE}#token={token}"
            self._add(session, "confirm_email_change", email, {"link": link, "hours": hours})

    def password_reset_requested(self, session: Session, email: str) -> None:
        """A reset request for an address, whoever owns it (if anyone): see ``prepare``."""
        self._add(session, "password_reset", email, None)

    def password_changed(self, session: Session, user: User) -> None:
        self._add(session, "password_changed", user.email, {"public_url": self._public_url})

    def email_changed(self, session: Session, user: User, *, old_email: str) -> None:
        """A notice to the address the account had: if someone else changed it, its owner
        hears of it where the attacker cannot delete the message. Limited per address,
        silently, like the verification link."""
        if not self._throttle.allow_mail("email_changed", old_email):
            return
        context = {"new_email_hint": mask(user.email), "public_url": self._public_url}
        self._add(session, "email_changed", old_email, context)

    def signup_attempt(self, session: Session, email: str) -> None:
        """Someone tried to sign up with an address that has an account: its owner is told,
        the one signing up is not (OWASP Authentication cheat sheet). Limited per address,
        silently: a 429 only for taken addresses would tell which are taken."""
        if self._throttle.allow_mail("signup_attempt", email):
            self._add(session, "signup_attempt", email, {"public_url": self._public_url})

    def prepare(self, session: Session, message: OutboxMessage) -> bool:
        """Give a reset request its link, in the caller's transaction; False when the
        address has no active account, and there is nothing to send.

        The account is looked up here, when the message is delivered after the response,
        not by the request: the request then does the same work (one row) for every
        address, and neither its answer nor its time tells whether one has an account
        (OWASP Forgot Password cheat sheet: no quick exit).
        """
        if message.context is not None:
            return True
        user = session.scalar(select(User).where(User.email == message.recipient))
        if user is None or not user.is_active:
            return False
        token = self._tokens.issue(session=session, user=user, purpose="password_reset")
        minutes = int(self._tokens.lifetime("password_reset").total_seconds() // 60)
        link = f"{self._public_url}{RESET_PAGE}#token={token}"
        context: dict[str, str | int] = {"link": link, "minutes": minutes}
        message.context = self._sealed(message.kind, message.recipient, context)
        return True

    def render(self, message: OutboxMessage) -> OutgoingMail:
        """The mail ``message`` stands for; ``UnreadableSeal`` if its context was sealed
        with another key or altered."""
        context = {}
        if message.context is not None:
            bound_to = _bound_to(message.kind, message.recipient)
            context = json.loads(self._seal.open(message.context, bound_to=bound_to))
        subject, text, html = render_mail(message.kind, **context)  # type: ignore[arg-type]
        return OutgoingMail(
            to=message.recipient,
            subject=subject,
            text=text,
            html=html,
            message_id=message.message_id,
        )

    def _add(
        self,
        session: Session,
        kind: MailKind,
        recipient: str,
        context: Mapping[str, str | int] | None,
    ) -> None:
        sealed = None if context is None else self._sealed(kind, recipient, context)
        enqueue(session, kind=kind, recipient=recipient, context=sealed, domain=self._domain)

    def _sealed(self, kind: str, recipient: str, context: Mapping[str, str | int]) -> str:
        return self._seal.seal(json.dumps(dict(context)), bound_to=_bound_to(kind, recipient))


def _bound_to(kind: str, recipient: str) -> str:
    """What a sealed context opens for: its own message's kind and address, no other."""
    return f"{kind}\n{recipient}"


def mask(email: str) -> str:
    """``j***@example.com``: enough for the owner to recognise, not to hand out the address."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
