"""One token, one spelling: JWS compact serialisation is base64url without padding, and
nothing else (RFC 7515 §2, §7.1, appendix C).

A lenient decoder maps many strings to the same signed bytes: padding added, characters of
the other base64 alphabet, characters it skips, or the unused low bits of the last
character set. Each of those strings would pass signature verification, so anything keyed
on the token's text (a cache, a denylist, a rate limit, a log search) would see a different
token where there is one. Every path that reads a token refuses them: the bearer, the
refresh body and the logout body.
"""

from collections.abc import Callable

import httpx2
import pytest

from tests.support import Account, assert_unauthorized, bearer, log_in

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TRY_FOR_A_DASH = 40  # logins until a signature holds '-' or '_' (each ~3 in 4 do)


def with_signature(token: str, change: Callable[[str], str]) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{change(signature)}"


def trailing_bits_set(signature: str) -> str:
    """The last character's unused low bit set: the same bytes to a lenient decoder.

    An HS256 signature is 32 bytes, 43 characters: 258 bits for 256, so the last character's
    two low bits carry nothing and must be zero; an RS256 one has four spare bits.
    """
    last = ALPHABET.index(signature[-1])
    assert last & 1 == 0, "an issued signature is canonical"
    return signature[:-1] + ALPHABET[last | 1]


def standard_alphabet(signature: str) -> str:
    """'-' and '_' spelled as in plain base64 ('+', '/'), which Python's decoder maps to the
    same values."""
    return signature.replace("-", "+").replace("_", "/")


VARIANTS: dict[str, Callable[[str], str]] = {
    "padding": lambda token: token + "=",
    "padding-two": lambda token: token + "==",
    "trailing-bits": lambda token: with_signature(token, trailing_bits_set),
    "standard-alphabet": lambda token: with_signature(token, standard_alphabet),
    "tab-inside": lambda token: with_signature(token, lambda s: s[:10] + "\t" + s[10:]),
    "space-inside": lambda token: with_signature(token, lambda s: s[:10] + " " + s[10:]),
    "skipped-character": lambda token: with_signature(token, lambda s: s[:10] + "!" + s[10:]),
    "stray-dot": lambda token: with_signature(token, lambda s: s[:10] + "." + s[10:]),
    "padded-payload": lambda token: token.replace(".", "=.", 2),
}
# Sent in an Authorization header, which cannot carry a line break.
BODY_ONLY: dict[str, Callable[[str], str]] = {
    "newline-inside": lambda token: with_signature(token, lambda s: s[:10] + "\n" + s[10:]),
}


def dashed(client: httpx2.Client, user: Account, kind: str) -> str:
    """A token of ``user`` whose signature holds a '-' or '_', so that spelling them '+' or
    '/' changes the text; logins until one does (each misses with odds of about 1 in 4)."""
    for _ in range(TRY_FOR_A_DASH):
        token: str = log_in(client, user.email, user.password)[kind]
        if {"-", "_"} & set(token.split(".")[2]):
            return token
    raise AssertionError(f"no signature with '-' or '_' in {TRY_FOR_A_DASH} logins")


def issued(client: httpx2.Client, user: Account, kind: str, variant: str) -> str:
    if variant == "standard-alphabet":
        return dashed(client, user, kind)
    token: str = log_in(client, user.email, user.password)[kind]
    return token


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_non_canonical_access_token_is_401(
    client: httpx2.Client, user: Account, variant: str
) -> None:
    token = issued(client, user, "access_token", variant)
    assert client.get("/users/me", headers=bearer(token)).status_code == 200  # the control
    response = client.get("/users/me", headers=bearer(VARIANTS[variant](token)))
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("variant", list(VARIANTS | BODY_ONLY))
def test_a_non_canonical_refresh_token_is_401(
    client: httpx2.Client, user: Account, variant: str
) -> None:
    token = issued(client, user, "refresh_token", variant)
    changed = (VARIANTS | BODY_ONLY)[variant](token)
    assert_unauthorized(client.post("/auth/refresh", json={"refresh_token": changed}))
    # Refused before the store was asked: the token itself is still unspent.
    assert client.post("/auth/refresh", json={"refresh_token": token}).status_code == 200


@pytest.mark.parametrize("variant", list(VARIANTS | BODY_ONLY))
def test_a_non_canonical_refresh_token_does_not_log_out(
    client: httpx2.Client, user: Account, variant: str
) -> None:
    tokens = log_in(client, user.email, user.password)
    refresh = tokens["refresh_token"]
    if variant == "standard-alphabet":
        refresh = dashed(client, user, "refresh_token")
    changed = (VARIANTS | BODY_ONLY)[variant](refresh)
    response = client.post(
        "/auth/logout", json={"refresh_token": changed}, headers=bearer(tokens["access_token"])
    )
    assert_unauthorized(response)
    assert client.post("/auth/refresh", json={"refresh_token": refresh}).status_code == 200


# Bytes a header may carry (obs-text) that Python's str.strip() takes for whitespace: NBSP
# and NEL. Stripped, they would make "<token>\xa0" a second spelling of the same token.
NON_ASCII_SPACES = {
    "nbsp-after": "{token}\xa0",
    "nbsp-before": "\xa0{token}",
    "nel-after": "{token}\x85",
}


# Live only: the in-process clients cannot send these bytes as a server receives them
# (httpx2's WSGI transport decodes header values as ASCII; the ASGI one re-encodes them).
@pytest.mark.live
@pytest.mark.parametrize("spelling", list(NON_ASCII_SPACES))
def test_an_access_token_padded_with_non_ascii_whitespace_is_401(
    client: httpx2.Client, user: Account, spelling: str
) -> None:
    token = log_in(client, user.email, user.password)["access_token"]
    value = "Bearer " + NON_ASCII_SPACES[spelling].format(token=token)
    response = client.get("/users/me", headers={b"Authorization": value.encode("latin-1")})
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
