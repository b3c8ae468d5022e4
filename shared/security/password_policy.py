"""Which passwords a user may choose: length and a blocklist, never composition rules.

NIST SP 800-63B §3.1.1.2 and OWASP ASVS v5 chapter 6 both say the same: require a minimum
length, check new passwords against values known to be commonly used or compromised, against
context-specific words (the service's name, the user's own email) and against repetitive or
sequential characters, and impose no rules about character classes, which push people
towards ``Password1!`` and add nothing.

Lengths are counted in code points of the NFKC form, which is what shared/security/passwords.py
hashes, so the password checked here is the password stored. The comparisons (blocklist,
name, email, repetition, runs) look at a looser form, :func:`_comparable`, so that a space
or a capital added to a refused password does not make it acceptable; that form is never
stored.
"""

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from itertools import pairwise

SERVICE_NAME = "authtwin"
# A floor, not a default: the common list leaves out shorter entries (they fail on length
# first), so a lower minimum would let through every short common password.
MIN_LENGTH_FLOOR = 8
MAX_LENGTH = 128  # shared/domain/schemas.py's limit too; repeated so the policy holds on its own.

COMMON_PASSWORDS_SOURCE = (
    "the 30,000 most common passwords from Mark Burnett's 10 million leaked passwords, "
    "as ranked by the zxcvbn 4.5.0 PyPI package (MIT); entries of 8+ characters kept"
)

REPEATED = "Password must not be a few characters repeated, like aaaaaaaa or 12341234"
SEQUENTIAL = "Password must not be a run of consecutive characters, like abcdefgh or 87654321"
INVISIBLE = "Password must not be only spaces or invisible characters"
CONTROL = "Password must not contain control characters such as tab, newline or NUL"


@cache
def common_passwords() -> frozenset[str]:
    """The blocklist in its comparable form, read on first use rather than at import."""
    return _listed("common-passwords.txt")


@cache
def common_short_passwords() -> frozenset[str]:
    """The same corpus's entries of 4 to 7 characters: bases, not passwords (too short)."""
    return _listed("common-short-passwords.txt")


def _listed(name: str) -> frozenset[str]:
    text = (files("shared") / "data" / name).read_text(encoding="utf-8")
    return frozenset(
        _comparable(line) for line in text.splitlines() if line and not line.startswith("#")
    )


def _comparable(value: str) -> str:
    """``value`` as compared with what is refused: NFKC, casefolded, without whitespace or
    invisible characters (:func:`_is_invisible`).

    ``Password1 ``, ``PASSWORD1``, ``pass word1`` and ``password1`` with a zero-width space
    are guessed as soon as ``password1`` is (the common list holds no entry with a space, so
    removing spaces, rather than collapsing them, is what lets ``i love you`` match
    ``iloveyou``). Only for comparing: the stored password keeps every character typed.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return "".join(char for char in folded if not (char.isspace() or _is_invisible(char)))


# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt): characters a
# renderer shows as nothing, whatever their category. Not only format characters (Cf): the
# Hangul fillers are letters (Lo), the combining grapheme joiner a mark (Mn), the variation
# selectors marks too; "pass\u034fword1" is "password1" to whoever reads it.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip
# Drawn as a blank though a symbol (So), and not default-ignorable: the braille blank.
BLANK_SYMBOLS = frozenset({"\u2800"})
_INVISIBLE = BLANK_SYMBOLS | frozenset(
    chr(point) for first, last in DEFAULT_IGNORABLE for point in range(first, last + 1)
)


def _is_invisible(char: str) -> bool:
    """Present, not seen: a format character (Cf), a default-ignorable one, a blank symbol."""
    # ASCII has none, and the common lists are ASCII: reading them stays quick.
    return not char.isascii() and (char in _INVISIBLE or unicodedata.category(char) == "Cf")


def _is_control(char: str) -> bool:
    # Cc: C0 and C1 controls, DEL; NUL, tab and newline among them.
    return unicodedata.category(char) == "Cc"


def _shortest_period(value: str) -> int:
    """The length of the shortest ``unit`` such that ``value`` is ``unit`` repeated, the last
    time perhaps cut short (``abcabcab``: 3). The KMP failure function: linear time."""
    border = [0] * len(value)
    for i in range(1, len(value)):
        k = border[i - 1]
        while k and value[i] != value[k]:
            k = border[k - 1]
        border[i] = k + (value[i] == value[k])
    return len(value) - border[-1] if value else 0


# How many digits or signs added before or after a refused password still leave it refused.
MAX_ADDED = 4
# Digits and signs read as the letters they stand for: "p@$$w0rd" is "password".
LEETSPEAK = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o",
                           "5": "s", "$": "s", "7": "t", "+": "t"})  # fmt: skip


def _bases(candidate: str) -> set[str]:
    """``candidate`` without up to ``MAX_ADDED`` digits or signs at its start, its end, or
    both (``!Password1``, ``Password1!``, ``123password``): the first variations any guessing
    tool tries on a word, and what people add when a site refuses the plain one."""
    lead = min(_non_letters_leading(candidate), MAX_ADDED)
    trail = min(_non_letters_leading(candidate[::-1]), MAX_ADDED)
    return {
        candidate[start : len(candidate) - end]
        for start in range(lead + 1)
        for end in range(trail + 1)
        if start + end < len(candidate)
    }


def _non_letters_leading(text: str) -> int:
    return next((index for index, char in enumerate(text) if char.isalpha()), len(text))


def _common_variant(candidate: str) -> bool:
    """A common password, short ones included, with digits or signs added (:func:`_bases`),
    in leetspeak, or backwards."""
    listed = common_passwords()
    if candidate.translate(LEETSPEAK) in listed or candidate[::-1] in listed:
        return True
    return any(base in listed or base in common_short_passwords() for base in _bases(candidate))


def _is_run(value: str) -> bool:
    """Each character the one after (or each the one before) the previous: ``abcdefgh``."""
    steps = {ord(b) - ord(a) for a, b in pairwise(value)}
    return len(value) >= 3 and steps in ({1}, {-1})  # two characters are a pair, not a run


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
        # NIST asks that every printable character and the space be accepted; control
        # characters are neither. They cannot be typed into a password field (tab moves
        # focus, a newline submits the form), so whoever sets one cannot log in with it, and
        # NUL ends the string in C libraries: bcrypt refuses it, other stores truncate there.
        if any(_is_control(char) for char in normalised):
            return CONTROL
        candidate = _comparable(normalised)
        if not candidate:  # eight spaces, or zero-width spaces: a minimum met by nothing
            return INVISIBLE
        bases = _bases(candidate)  # itself, and without digits or signs added around it
        if SERVICE_NAME in bases:
            return "Password must not be the name of this service"
        if email is not None:
            address = _comparable(email)
            # The local part alone is as guessable as the address: it is the usual username.
            if bases & {address, address.rpartition("@")[0]}:
                return "Password must not be your email address"
        if candidate in common_passwords():
            return "This password is too common; choose another"
        if (pattern := self._pattern(candidate)) is not None:
            return pattern  # before the variants: "12341234" is a repeat, not "1234" and more
        if _common_variant(candidate):
            return "This password is too common; choose another"
        return None

    def _pattern(self, candidate: str) -> str | None:
        """NIST's "repetitive or sequential characters", read narrowly on purpose.

        Refused: the whole password is a unit shorter than the minimum length, repeated
        (``aaaaaaaa``, ``12341234``, ``abcabcab``), or a common password repeated
        (``passwordpassword``), or one run of consecutive code points (``abcdefgh``,
        ``87654321``): the length is there, the guessing work is not. Allowed: a passphrase
        that contains such a run (``my pin was 12345678, no more``), and a unit that would
        pass on its own said several times, which is no weaker than the unit.
        """
        period = _shortest_period(candidate)
        if 2 * period <= len(candidate):  # the unit at least twice
            if period < self.min_length:
                return REPEATED
            if candidate[:period] in common_passwords():
                return "This password is too common; choose another"
        if _is_run(candidate):
            return SEQUENTIAL
        return None
