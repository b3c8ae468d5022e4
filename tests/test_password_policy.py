"""The password policy on its own: length in code points, the common list, repeats and runs,
invisible and control characters, no composition rules.

It needs no HTTP, so it runs once, not per target.
"""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.security.password_policy import (
    COMMON_PASSWORDS_SOURCE,
    PasswordPolicy,
    common_passwords,
    common_short_passwords,
)

pytestmark = pytest.mark.in_process

ROOT = Path(__file__).resolve().parent.parent
# Nothing about it is special except that it is on no list: checked below, not assumed.
UNCOMMON = "violet kettle under the pier"
IDEOGRAPHS = "零一二三四五六七八九十百千万亿兆甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳"  # 32, none repeated
# The reasons a user reads. NIST SP 800-63B §3.1.1.2 names "repetitive or sequential
# characters" among the values to refuse; spaces or invisible characters alone are a length
# with nothing in it.
REPEATED = "Password must not be a few characters repeated, like aaaaaaaa or 12341234"
SEQUENTIAL = "Password must not be a run of consecutive characters, like abcdefgh or 87654321"
INVISIBLE = "Password must not be only spaces or invisible characters"
CONTROL = "Password must not contain control characters such as tab, newline or NUL"
COMMON = "This password is too common; choose another"


@pytest.fixture(scope="module")
def policy() -> PasswordPolicy:
    return PasswordPolicy(min_length=8)


def test_the_common_list_holds_at_least_ten_thousand_well_known_passwords() -> None:
    listed = common_passwords()
    assert len(listed) >= 10_000
    assert {"password", "123456789", "qwertyuiop", "iloveyou", "trustno1"} <= listed
    assert UNCOMMON not in listed
    assert "zxcvbn 4.5.0" in COMMON_PASSWORDS_SOURCE


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("common-passwords.txt", common_passwords),
        ("common-short-passwords.txt", common_short_passwords),
    ],
)
def test_each_common_list_file_names_its_source_and_holds_no_comments_as_entries(
    name: str, listed: Callable[[], frozenset[str]]
) -> None:
    text = (ROOT / "shared" / "data" / name).read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("zxcvbn 4.5.0" in line for line in header)
    assert any("MIT" in line for line in header)
    assert not any(entry.startswith("#") for entry in listed())
    assert "" not in listed()
    assert len(listed()) >= 10_000


def test_the_common_list_is_read_on_first_use_not_at_import() -> None:
    probe = (
        "import shared.security.password_policy as p\n"
        "before = p.common_passwords.cache_info().currsize\n"
        "p.PasswordPolicy(min_length=8).problem('password')\n"
        "print(before, p.common_passwords.cache_info().currsize)\n"
    )
    result = subprocess.run(  # noqa: S603  (our own interpreter, fixed arguments)
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["0", "1"]


@pytest.mark.parametrize("password", ["password", "PassWord123", "QWERTYUIOP", "Trustno1"])
def test_common_passwords_are_rejected_case_insensitively(
    policy: PasswordPolicy, password: str
) -> None:
    assert password.lower() in common_passwords()
    assert policy.problem(password) == "This password is too common; choose another"


def test_a_common_password_in_full_width_characters_is_still_common(
    policy: PasswordPolicy,
) -> None:
    # NFKC folds full-width letters to ASCII, as the hasher does: the same password stored.
    full_width = "".join(chr(ord(letter) + 0xFEE0) for letter in "password")
    assert full_width == "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44"
    assert policy.problem(full_width) == "This password is too common; choose another"


@pytest.mark.parametrize("password", ["Alice.Smith@Example.COM", "ALICE.SMITH"])
def test_the_email_and_its_local_part_are_rejected_case_insensitively(
    policy: PasswordPolicy, password: str
) -> None:
    email = "alice.smith@example.com"
    assert policy.problem(password, email=email) == "Password must not be your email address"
    assert policy.problem(password) is None  # rejected for being the email, not for itself


def test_a_password_that_only_contains_the_email_is_allowed(policy: PasswordPolicy) -> None:
    assert policy.problem("alice.smith and friends", email="alice.smith@example.com") is None


def test_the_service_name_is_rejected_case_insensitively(policy: PasswordPolicy) -> None:
    assert policy.problem("AuthTwin") == "Password must not be the name of this service"


def test_the_minimum_length_is_configurable() -> None:
    strict = PasswordPolicy(min_length=12)
    assert strict.problem("violetkettl") == "Password must be at least 12 characters"
    assert strict.problem("violetkettle") is None
    assert PasswordPolicy(min_length=8).problem("violetkettl") is None


@pytest.mark.parametrize("min_length", [0, 7, 129])
def test_a_minimum_outside_eight_to_128_is_refused(min_length: int) -> None:
    with pytest.raises(ValueError, match="min_length"):
        PasswordPolicy(min_length=min_length)


def test_sixty_four_multibyte_characters_are_accepted(policy: PasswordPolicy) -> None:
    sixty_four = "".join(numeral + "密" for numeral in IDEOGRAPHS)
    assert len(sixty_four) == 64
    assert policy.problem(sixty_four) is None
    assert policy.problem("🔑密码パスワード" * 8) is None


def test_length_is_counted_in_code_points_not_bytes(policy: PasswordPolicy) -> None:
    eight, seven = "密码很长很长很长", "密码很长很长很"
    assert len(eight.encode()) == 24
    assert policy.problem(eight) is None
    assert policy.problem(seven) == "Password must be at least 8 characters"


def test_length_is_counted_after_nfkc_normalisation(policy: PasswordPolicy) -> None:
    # Eight code points as typed, seven once the decomposed é is composed (as it is hashed).
    decomposed = "cafe\u0301abc"
    assert len(decomposed) == 8
    assert policy.problem(decomposed) == "Password must be at least 8 characters"


def test_there_are_no_composition_rules(policy: PasswordPolicy) -> None:
    passphrase = "correct horse battery staple zebra"
    assert passphrase not in common_passwords()
    assert policy.problem(passphrase) is None
    assert policy.problem("violetkettle") is None  # lower case letters only
    assert policy.problem("40298617") is None  # digits only


def test_128_code_points_are_accepted_and_129_refused(policy: PasswordPolicy) -> None:
    assert policy.problem("x" * 127 + "密") is None
    assert policy.problem("x" * 128 + "密") == "Password must be at most 128 characters"


@pytest.mark.parametrize(
    "password", ["aaaaaaaa", "99999999", "12341234", "abcabcab", "XyXyXyXy", "aaaa aaaa", "🔑" * 8]
)
def test_a_few_characters_repeated_are_refused(policy: PasswordPolicy, password: str) -> None:
    assert policy.problem(password) == REPEATED


@pytest.mark.parametrize(
    "password", ["abcdefgh", "87654321", "zyxwvuts", "LMNOPQRS", "abc defgh", "αβγδεζηθ"]
)
def test_a_run_of_consecutive_characters_is_refused(policy: PasswordPolicy, password: str) -> None:
    assert password.casefold() not in common_passwords()  # refused for the run, not the list
    assert policy.problem(password) == SEQUENTIAL


def test_a_repeated_unit_as_long_as_the_minimum_is_not_a_repetition(
    policy: PasswordPolicy,
) -> None:
    # Repeating a string that would pass on its own adds to it: what the rule refuses is a
    # repetition that reaches the minimum length on its own (the NIST rule's aim).
    assert policy.problem("horse battery staple " * 3) is None
    assert PasswordPolicy(min_length=12).problem("violetkettle" * 2) is None
    assert PasswordPolicy(min_length=12).problem("kettle" * 2) == REPEATED


def test_a_passphrase_containing_a_run_or_a_repeat_is_allowed(policy: PasswordPolicy) -> None:
    assert policy.problem("my pin was 12345678, no more") is None
    assert policy.problem("aaaaaaaa said the pier") is None
    assert policy.problem("abcdefgz") is None  # almost a run is not a run


@pytest.mark.parametrize(
    "password",
    [" " * 8, "\u200b" * 8, "\ufeff" * 8, "\u3000" * 8, " \u200b" * 4, "\u2028" * 8, "\u00ad" * 8],
    ids=["spaces", "zero-width-space", "bom", "ideographic-space", "mixed", "line-sep", "shy"],
)
def test_spaces_or_invisible_characters_alone_are_refused(
    policy: PasswordPolicy, password: str
) -> None:
    assert policy.problem(password) == INVISIBLE


@pytest.mark.parametrize(
    "password", ["\x00" * 8, "pass\x00word, long enough", "tab\tseparated words", "two\nlines ok"]
)
def test_control_characters_are_refused_anywhere(policy: PasswordPolicy, password: str) -> None:
    assert policy.problem(password) == CONTROL


def test_invisible_characters_inside_a_visible_password_are_allowed(
    policy: PasswordPolicy,
) -> None:
    # U+200D joins emoji into one picture: part of what people type on phones.
    assert policy.problem("family \U0001f468\u200d\U0001f469\u200d\U0001f467 photo") is None


@pytest.mark.parametrize(
    "password",
    ["Password1 ", " password1", "PASSWORD1\u3000", "pass word1", "i love you", "iloveyou\u200b"],
)
def test_the_common_list_is_matched_ignoring_spaces_case_and_invisible_characters(
    policy: PasswordPolicy, password: str
) -> None:
    assert password not in common_passwords()
    assert policy.problem(password) == COMMON


@pytest.mark.parametrize("password", ["passwordpassword", "iloveyou iloveyou", "Trustno1trustno1"])
def test_a_common_password_repeated_is_still_common(policy: PasswordPolicy, password: str) -> None:
    assert policy.problem(password) == COMMON


def test_the_service_name_and_email_are_matched_ignoring_spaces(policy: PasswordPolicy) -> None:
    assert policy.problem(" Auth Twin  ") == "Password must not be the name of this service"
    email = "alice.smith@example.com"
    assert policy.problem("alice.smith ", email=email) == "Password must not be your email address"


# Found from outside: blank on screen, yet neither whitespace nor a format character.
BLANK_LOOKING = {
    "hangul-fillers-and-braille-blanks": "\u3164 \u2800 \u115f \u1160 \uffa0",
    "braille-blanks": "\u2800 " * 4,
    "variation-selectors": "\ufe0f\ufe0e" * 4,
}


@pytest.mark.parametrize("password", BLANK_LOOKING.values(), ids=BLANK_LOOKING.keys())
def test_characters_that_render_as_nothing_alone_are_refused(
    policy: PasswordPolicy, password: str
) -> None:
    assert policy.problem(password) == INVISIBLE


@pytest.mark.parametrize(
    "password",
    ["pass\u034fword1", "password\ufe0f1", "ilove\u3164you", "trust\u2800no1"],
    ids=["combining-grapheme-joiner", "variation-selector", "hangul-filler", "braille-blank"],
)
def test_a_common_password_with_a_mark_that_renders_as_nothing_is_still_common(
    policy: PasswordPolicy, password: str
) -> None:
    assert policy.problem(password) == "This password is too common; choose another"


@pytest.mark.parametrize("password", ["Password1!", "iloveyou!!", "trustno1234", "qwertyuiop!?"])
def test_a_common_password_with_a_few_digits_or_signs_added_is_still_common(
    policy: PasswordPolicy, password: str
) -> None:
    assert policy.problem(password) == "This password is too common; choose another"


# The most common passwords of all are shorter than the minimum, so the common list leaves
# them out; a few signs added reach the length without adding any guessing work (attack 3).
@pytest.mark.parametrize("password", ["123456!!", "qwerty!!", "abc123!!", "111111!!", "1234567!"])
def test_a_short_common_password_with_signs_added_to_reach_the_minimum_is_still_common(
    policy: PasswordPolicy, password: str
) -> None:
    assert policy.problem(password) == "This password is too common; choose another"


def test_a_password_that_only_ends_like_a_common_one_is_allowed(policy: PasswordPolicy) -> None:
    assert policy.problem("my own password1 is long") is None
    assert policy.problem("Password1!is-mine") is None


# Found by a third look from outside: the variations a guessing tool tries first.
VARIANTS = {
    "signs-before": "!Password1",
    "digits-before": "123password",
    "both-sides": "!iloveyou!",
    "leetspeak": "p@$$w0rd",
    "backwards": "1drowssap",
    "short-common-and-signs": "qwerty!!",
}


@pytest.mark.parametrize("password", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_first_variations_of_a_common_password_are_still_common(
    policy: PasswordPolicy, password: str
) -> None:
    assert policy.problem(password) == COMMON


def test_the_service_name_and_email_with_digits_added_are_refused(policy: PasswordPolicy) -> None:
    assert policy.problem("Authtwin2024") == "Password must not be the name of this service"
    assert policy.problem("!!alice.smith", email="alice.smith@example.com") == (
        "Password must not be your email address"
    )


def test_a_passphrase_with_digits_and_signs_is_still_allowed(policy: PasswordPolicy) -> None:
    assert policy.problem("2 cats, 1 dog & a parrot!") is None
    assert policy.problem("Tr0ub4dor&3-horse") is None
