"""The words of each mail the service sends, from shared/templates/mail/<kind>/.

Each kind has ``subject.txt``, ``body.txt`` and ``body.html``, the bodies extending the
``layout`` of their type. Only ``.html`` is autoescaped: escaping plain text would show
``&amp;`` to the reader, and nothing interprets it. A name a template uses but the caller
did not give raises (``StrictUndefined``) instead of printing nothing where a link belongs.
"""

from typing import Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

MailKind = Literal[
    "verify_email",
    "password_reset",
    "password_changed",
    "email_changed",
    "signup_attempt",
    "confirm_email_change",
]

# What each kind is given, and nothing else: a name left over from a caller's refactoring is
# refused rather than ignored, and no template can be handed a password by mistake.
CONTEXT_KEYS: dict[MailKind, frozenset[str]] = {
    "verify_email": frozenset({"link", "hours"}),
    "password_reset": frozenset({"link", "minutes"}),
    "password_changed": frozenset({"public_url"}),
    # Sent to the old address; the hint is masked by the caller ("j***@example.com").
    "email_changed": frozenset({"new_email_hint", "public_url"}),
    "signup_attempt": frozenset({"public_url"}),
    # Sent to the address an account asked to move to: the link applies the change.
    "confirm_email_change": frozenset({"link", "hours"}),
}
SERVICE_NAME = "authtwin"

_templates = Environment(
    loader=PackageLoader("shared", "templates/mail"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals["service"] = SERVICE_NAME


def render_mail(kind: MailKind, **context: str | int) -> tuple[str, str, str]:
    """``(subject, text, html)`` of one mail of ``kind``, given exactly its CONTEXT_KEYS.

    Raises ``TypeError`` for a name the kind does not take, and ``jinja2.UndefinedError``
    for one it needs and was not given.
    """
    if unexpected := context.keys() - CONTEXT_KEYS[kind]:
        raise TypeError(f"a {kind} mail takes no {', '.join(sorted(unexpected))}")
    subject = _templates.get_template(f"{kind}/subject.txt").render(context).strip()
    text = _templates.get_template(f"{kind}/body.txt").render(context, subject=subject)
    html = _templates.get_template(f"{kind}/body.html").render(context, subject=subject)
    return subject, text.strip() + "\n", html
