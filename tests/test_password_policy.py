"""The password policy on its own: length in code points, the common list, no composition rules.

It needs no HTTP, so it runs once, not per target.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from shared.security.password_policy import (
    COMMON_PASSWORDS_SOURCE,
    PasswordPolicy,
    common_passwords,
)

pytestmark = pytest.mark.in_process

ROOT = Path(__file__).resolve().parent.parent
# Nothing about it is special except that it is on no list: checked below, not assumed.
UNCOMMON = "violet kettle under the pier"


@pytest.fixture(scope="module")
def policy() -> PasswordPolicy:
    return PasswordPolicy(min_length=8)


def test_the_common_list_holds_at_least_ten_thousand_well_known_passwords() -> None:
    listed = common_passwords()
    assert len(listed) >= 10_000
    assert {"password", "123456789", "qwertyuiop", "iloveyou", "trustno1"} <= listed
    assert UNCOMMON not in listed
    assert "zxcvbn 4.5.0" in COMMON_PASSWORDS_SOURCE


def test_the_common_list_file_names_its_source_and_holds_no_comments_as_entries() -> None:
    text = (ROOT / "shared" / "data" / "common-passwords.txt").read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("zxcvbn 4.5.0" in line for line in header)
    assert any("MIT" in line for line in header)
    assert not any(entry.startswith("#") for entry in common_passwords())
    assert "" not in common_passwords()


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
    assert policy.problem("密" * 64) is None
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
