"""Which passwords a user may choose: length and a blocklist, never composition rules.

NIST SP 800-63B §3.1.1.2 and OWASP ASVS v5 chapter 6 both say the same: require a minimum
length, check new passwords against values known to be commonly used or compromised and
against context-specific words (the service's name, the user's own email), and impose no
rules about character classes, which push people towards ``Password1!`` and add nothing.

Lengths are counted in code points of the NFKC form, which is what shared/security/passwords.py
hashes, so the password checked here is the password stored.
"""

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

SERVICE_NAME = "authtwin"
# A floor, not a default: the common list leaves out shorter entries (they fail on length
# first), so a lower minimum would let through every short common password.
MIN_LENGTH_FLOOR = 8
MAX_LENGTH = 128  # shared/domain/schemas.py's limit too; repeated so the policy holds on its own.

COMMON_PASSWORDS_SOURCE = (
    "the 30,000 most common passwords from Mark Burnett's 10 million leaked passwords, "
    "as ranked by the zxcvbn 4.5.0 PyPI package (MIT); entries of 8+ characters kept"
)


@cache
def common_passwords() -> frozenset[str]:
    """The casefolded blocklist, read on first use rather than at import."""
    text = (files("shared") / "data" / "common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        _comparable(line) for line in text.splitlines() if line and not line.startswith("#")
    )


def _comparable(value: str) -> str:
    return unicodedata.normalize("NFKC", value).casefold()


@dataclass(frozen=True, kw_only=True)
class PasswordPolicy:
    min_length: int

    def __post_init__(self) -> None:
        if not MIN_LENGTH_FLOOR <= self.min_length <= MAX_LENGTH:
            raise ValueError(
                f"min_length must be between {MIN_LENGTH_FLOOR} and {MAX_LENGTH}, "
                f"not {self.min_length}"
            )

    def problem(self, password: str, *, email: str | None = None) -> str | None:
        """Why this password may not be chosen, or None if it may."""
        normalised = unicodedata.normalize("NFKC", password)
        if len(normalised) < self.min_length:
            return f"Password must be at least {self.min_length} characters"
        if len(normalised) > MAX_LENGTH:
            return f"Password must be at most {MAX_LENGTH} characters"
        candidate = normalised.casefold()
        if candidate == SERVICE_NAME:
            return "Password must not be the name of this service"
        if email is not None:
            address = _comparable(email)
            # The local part alone is as guessable as the address: it is the usual username.
            if candidate in {address, address.rpartition("@")[0]}:
                return "Password must not be your email address"
        if candidate in common_passwords():
            return "This password is too common; choose another"
        return None
