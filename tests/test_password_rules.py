"""Choosing a password (NIST SP 800-63B §3.1.1.2, OWASP ASVS v5 6.2.x), on every endpoint
that sets one: signup, password change and an administrator's reset.

At least 8 characters (configurable upwards), at most 128, counted in code points; no
composition rules; refused when it is a common (breached) password or the email address,
each with a reason the user can act on.
"""

import httpx2
import pytest

from tests.conftest import ConfiguredApi
from tests.support import PASSWORD, Account, assert_validation_error, log_in, unique_email

COMMON = ["password1", "Password1", "qwertyuiop", "iloveyou", "1234567890", "PASSWORD123"]
# NIST SP 800-63B §3.1.1.2's other refusals, and the words each reason uses. Every one of
# them was accepted, and stored, before: eight characters are there, the guessing work is not.
WEAK = {
    "aaaaaaaa": "repeated",
    "12341234": "repeated",
    "abcdefgh": "consecutive",
    "87654321": "consecutive",
    " " * 8: "invisible",
    "\u200b" * 8: "invisible",  # zero-width spaces: eight characters, nothing to see
    "\x00" * 8: "control characters",
    "pass\x00word is long": "control characters",
    "Password1 ": "too common",  # a trailing space, or a capital, does not make it uncommon
    " i love you ": "too common",
    "\u3164 \u2800 \u115f \u1160 \uffa0": "invisible",  # fillers and blanks: nothing drawn
    "pass\u034fword1": "too common",  # a joiner that renders as nothing
    "Password1!": "too common",  # the first variation a guessing tool tries
}
IDEOGRAPHS = "零一二三四五六七八九十百千万亿兆甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳"  # none repeated


def refusal(response: httpx2.Response, field: str) -> str:
    """The reason given for refusing the password in ``field``."""
    assert_validation_error(response, ["body", field])
    [error] = [e for e in response.json()["detail"] if e["loc"] == ["body", field]]
    assert error["type"] == "password_policy"
    message: str = error["msg"]
    return message


@pytest.mark.parametrize("password", COMMON)
def test_signup_refuses_a_common_password_with_a_reason(
    client: httpx2.Client, password: str
) -> None:
    email = unique_email()
    response = client.post("/auth/signup", json={"email": email, "password": password})
    assert "too common" in refusal(response, "password")
    # Nothing was written: the address is still free.
    ok = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert ok.status_code == 201


@pytest.mark.parametrize("variant", ["same", "upper", "local-part"])
def test_signup_refuses_the_email_as_password(client: httpx2.Client, variant: str) -> None:
    email = unique_email("someone-long")
    password = {"same": email, "upper": email.upper(), "local-part": email.split("@")[0]}
    response = client.post("/auth/signup", json={"email": email, "password": password[variant]})
    assert "email" in refusal(response, "password")


def test_a_password_change_refuses_a_common_password(client: httpx2.Client, user: Account) -> None:
    response = client.put(
        "/users/me/password",
        json={"current_password": user.password, "new_password": "password123"},
        headers=user.headers,
    )
    assert "too common" in refusal(response, "new_password")
    assert log_in(client, user.email, user.password)  # the old password still works


def test_a_password_change_refuses_the_email(client: httpx2.Client, user: Account) -> None:
    response = client.put(
        "/users/me/password",
        json={"current_password": user.password, "new_password": user.email},
        headers=user.headers,
    )
    assert "email" in refusal(response, "new_password")


def test_an_admin_reset_refuses_a_common_password(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    response = client.patch(
        f"/users/{user.id}", json={"password": "iloveyou"}, headers=admin.headers
    )
    assert "too common" in refusal(response, "password")
    assert log_in(client, user.email, user.password)


def test_sixty_four_multibyte_characters_work_end_to_end(client: httpx2.Client) -> None:
    email = unique_email()
    password = "".join(numeral + "🔑" for numeral in IDEOGRAPHS)  # no unit repeated
    assert (len(password), len(password.encode())) == (64, 224)
    assert (
        client.post("/auth/signup", json={"email": email, "password": password}).status_code == 201
    )
    tokens = log_in(client, email, password)
    change = client.put(
        "/users/me/password",
        json={"current_password": password, "new_password": password[::-1]},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert change.status_code == 204
    assert log_in(client, email, password[::-1])


def test_length_is_counted_in_code_points_not_bytes(client: httpx2.Client) -> None:
    seven = "密码安全口令字"  # 21 bytes, 7 characters
    response = client.post("/auth/signup", json={"email": unique_email(), "password": seven})
    assert_validation_error(response, ["body", "password"])
    eight = seven + "串"
    ok = client.post("/auth/signup", json={"email": unique_email(), "password": eight})
    assert ok.status_code == 201


@pytest.mark.parametrize(("length", "status"), [(128, 201), (129, 422)])
def test_the_maximum_is_128_characters(client: httpx2.Client, length: int, status: int) -> None:
    password = ("horse battery staple " * 7)[:length]
    response = client.post("/auth/signup", json={"email": unique_email(), "password": password})
    assert response.status_code == status, response.text


def test_no_composition_rules(client: httpx2.Client) -> None:
    for password in ("lowercase only words here", "ALLCAPSWORDSHERE", "73910582"):
        response = client.post("/auth/signup", json={"email": unique_email(), "password": password})
        assert response.status_code == 201, (password, response.text)


def test_the_minimum_length_is_configurable(configured: ConfiguredApi) -> None:
    client = configured(password_min_length=12).client
    short = client.post("/auth/signup", json={"email": unique_email(), "password": "elevenchars"})
    assert "at least 12" in refusal(short, "password")
    ok = client.post("/auth/signup", json={"email": unique_email(), "password": "twelve chars"})
    assert ok.status_code == 201


def refusals(response: httpx2.Response, field: str, password: str) -> str:
    assert response.status_code == 422, (password, response.text)
    return refusal(response, field)


def test_signup_refuses_repeats_runs_invisible_and_padded_common_passwords(
    client: httpx2.Client,
) -> None:
    for password, reason in WEAK.items():
        email = unique_email()
        response = client.post("/auth/signup", json={"email": email, "password": password})
        assert reason in refusals(response, "password", password), password


def test_a_password_change_refuses_repeats_runs_invisible_and_padded_common_passwords(
    client: httpx2.Client, user: Account
) -> None:
    for password, reason in WEAK.items():
        response = client.put(
            "/users/me/password",
            json={"current_password": user.password, "new_password": password},
            headers=user.headers,
        )
        assert reason in refusals(response, "new_password", password), password
    assert log_in(client, user.email, user.password)  # the old password still works


def test_an_admin_reset_refuses_repeats_runs_invisible_and_padded_common_passwords(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    for password, reason in WEAK.items():
        response = client.patch(
            f"/users/{user.id}", json={"password": password}, headers=admin.headers
        )
        assert reason in refusals(response, "password", password), password
    assert log_in(client, user.email, user.password)


def test_a_password_with_spaces_is_stored_as_typed(client: httpx2.Client) -> None:
    # The spaces are ignored when comparing with the common list, not when storing.
    email, password = unique_email(), "  violet kettle under the pier  "
    response = client.post("/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    assert log_in(client, email, password)
    stripped = client.post("/auth/login", json={"email": email, "password": password.strip()})
    assert stripped.status_code == 401
