"""Whether a given HS256 secret could be guessed: the rules Settings applies to every one.

Whoever holds the secret can sign a token for any account, so these catch the ways people
end up with a guessable one: a template's placeholder, kept or dressed up (padded to the
length, written in look-alike letters, with invisible characters); filler typed to reach
the length; a key published in a tutorial; a phrase dressed as a key (leetspeak, hex,
base64). They are not an entropy meter, and cannot stop a
determined choice of a weak secret: generate it, don't choose it.
"""

import base64
import itertools
import re
import unicodedata

MIN_SECRET_BYTES = 32
# Compared with the secret's letters and digits alone, NFKC-normalised and casefolded, so
# "Change-This!!" and the same word in full-width letters are "changethis". Contained
# anywhere, not only equal: filler around a placeholder adds length, not secrecy.
# Digits and signs read as the letters they stand for ("s3cr3t", "p@ssw0rd") are compared
# both ways. Keyboard walks ("qwerty", "1qaz2wsx") are typed, not drawn.
PLACEHOLDER_WORDS = (
    "changethis",
    "changeme",
    "secret",
    "password",
    "placeholder",
    "replaceme",
    "example",
    "insecure",
    "qwerty",
    "asdfgh",
    "zxcvbn",
    "1qaz2wsx",
)
LEETSPEAK = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o",
                           "5": "s", "$": "s", "7": "t", "+": "t"})  # fmt: skip
# Keys printed in documentation that people copy: FastAPI's OAuth2/JWT tutorial.
PUBLISHED_SECRETS = frozenset({"09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7"})
# A generated secret shows far more: token_urlsafe(32) some 30 of its 43 characters, and even
# 32 hex digits (`openssl rand -hex 16`, the shortest accepted) fewer than 8 less than once in
# 25 million draws. Fewer is a typed string such as "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab".
MIN_SECRET_DISTINCT_CHARACTERS = 8
# Eight characters in a row, the same or consecutive ("........", "abcdefgh", "87654321"):
# typed, not drawn. 64 random hex digits hold such a run about once in six million.
MAX_RUN = 8


def secret_key_problem(secret: str) -> str | None:
    """Why a given HS256 secret is refused, or None. The answer never quotes the secret."""
    folded = unicodedata.normalize("NFKC", secret).strip().casefold()
    if folded in PUBLISHED_SECRETS:
        return "is a key published in documentation"
    if _contains_placeholder(folded):
        return "contains a well-known placeholder"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"must be at least {MIN_SECRET_BYTES} bytes"
    if not folded.isprintable():
        return "contains invisible or control characters"
    if _encodes_text(secret.strip()):
        return "is readable text written in hex or base64, not random bytes"
    # A character or two added to a repetition ("hunter2" * 5 + "!") is still a repetition.
    if any(_repeats(folded[: len(folded) - added]) for added in range(3)):
        return "repeats a shorter string"
    if len(set(folded)) < MIN_SECRET_DISTINCT_CHARACTERS:
        return f"has fewer than {MIN_SECRET_DISTINCT_CHARACTERS} distinct characters"
    if _longest_run(folded) >= MAX_RUN:
        return f"has {MAX_RUN} or more characters in a row that are the same or consecutive"
    return None


def _contains_placeholder(folded: str) -> bool:
    """A placeholder word among the letters and digits, as written or read as leetspeak."""
    spellings = {folded, folded.translate(LEETSPEAK)}
    alphanumeric = {re.sub(r"[\W_]", "", spelling) for spelling in spellings}
    return any(word in text for word in PLACEHOLDER_WORDS for text in alphanumeric)


def _encodes_text(secret: str) -> bool:
    """Whether ``secret`` is hex or base64 of printable ASCII ("Y2hhbmdldGhpcw=="): random
    bytes, as generated, are printable one time in 10^13 for 32 of them."""
    for decode in (bytes.fromhex, base64.b64decode, base64.urlsafe_b64decode):
        try:
            decoded = decode(secret)
        except ValueError:
            continue
        if len(decoded) >= 8 and all(32 <= byte < 127 for byte in decoded):
            return True
    return False


def _repeats(text: str) -> bool:
    """Whether ``text`` is one unit over and over, a part of it allowed at the end ("ab" * 20,
    "changethis" * 4, "s3cr3t-" * 5 + "s3"): shifted by at most half its length, it matches
    itself. Its length then says nothing of how hard it is to guess."""
    return any(text[shift:] == text[:-shift] for shift in range(1, len(text) // 2 + 1))


def _longest_run(text: str) -> int:
    """The most characters in a row whose code points step by the same 0, +1 or -1."""
    longest = run = 1
    step = None
    for before, now in itertools.pairwise(text):
        difference = ord(now) - ord(before)
        run = run + 1 if difference == step and abs(difference) <= 1 else 2
        step = difference
        longest = max(longest, run if abs(difference) <= 1 else 1)
    return longest
