"""Authentication events are logged, structured, and never with a secret in them
(OWASP Logging Cheat Sheet; ASVS v5 16.2.1, 16.3.1, 16.2.5).

In-process only: the test reads the apps' log records as they are emitted.
"""

import json
import logging

import pytest

from shared.infrastructure.logs import JsonFormatter
from tests.conftest import ConfiguredApi
from tests.support import Account, bearer, log_in, sign_up, unique_email

WRONG = "a-wrong-password-123"
NEW = "a new password for the log test"
TYPED_PASSWORD = "Tr0ub4dor&3-Secret"


def tokens_of(pair: dict[str, str]) -> list[str]:
    return [pair["access_token"], pair["refresh_token"]]


def auth_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "authtwin.audit"]


def test_auth_events_are_structured_and_free_of_secrets(
    configured: ConfiguredApi, caplog: pytest.LogCaptureFixture
) -> None:
    client = configured(login_max_failures=3).client
    secrets: list[str] = [WRONG, NEW, TYPED_PASSWORD, TYPED_PASSWORD.casefold()]
    with caplog.at_level(logging.INFO, logger="authtwin"):
        user: Account = sign_up(client)
        secrets += [user.password, user.access_token, user.refresh_token]
        client.post("/auth/login", json={"email": user.email, "password": WRONG})
        form = {"grant_type": "password", "username": user.email, "password": user.password}
        secrets += tokens_of(client.post("/auth/token", data=form).json())
        pair = client.post("/auth/refresh", json={"refresh_token": user.refresh_token}).json()
        secrets += tokens_of(pair)
        client.post("/auth/refresh", json={"refresh_token": user.refresh_token})  # a replay
        second = log_in(client, user.email, user.password)
        secrets += tokens_of(second)
        client.post("/auth/logout", json={"refresh_token": second["refresh_token"]},
                    headers=bearer(second["access_token"]))  # fmt: skip
        third = log_in(client, user.email, user.password)
        change = {"current_password": user.password, "new_password": NEW}
        client.put("/users/me/password", json=change, headers=bearer(third["access_token"]))
        # A password typed into the username box: counted, but not logged as "who".
        typo = {"grant_type": "password", "username": TYPED_PASSWORD, "password": WRONG}
        client.post("/auth/token", data=typo)
        stranger = unique_email()
        for _ in range(4):
            client.post("/auth/login", json={"email": stranger, "password": WRONG})

    records = auth_records(caplog)
    seen = {(r.auth["event"], r.auth["outcome"], r.auth.get("reason")) for r in records}  # type: ignore[attr-defined]
    assert seen >= {
        ("signup", "success", None),
        ("login", "failure", "credentials"),
        ("login", "success", None),
        ("refresh", "success", None),
        ("refresh", "failure", "reuse"),
        ("logout", "success", None),
        ("password_change", "success", None),
        ("login", "failure", "locked"),
    }
    formatter = JsonFormatter()
    anonymous = [r for r in records if not {"user_id", "email"} & set(r.auth)]  # type: ignore[attr-defined]
    assert len(anonymous) == 1  # the typed password; every other record says who
    for record in records:
        fields = record.auth  # type: ignore[attr-defined]
        assert fields["client_ip"] == "127.0.0.1"
        line = formatter.format(record)
        assert json.loads(line)["event"] == fields["event"]
        for secret in secrets:
            assert str(secret) not in line
            assert str(secret) not in str(record.__dict__)
    # A failure for an unknown account names the address tried, for the investigator.
    assert any(r.auth.get("email") == stranger for r in records)  # type: ignore[attr-defined]


def test_a_rate_limited_request_is_logged(
    configured: ConfiguredApi, caplog: pytest.LogCaptureFixture
) -> None:
    client = configured(rate_limit="1/minute", rate_limit_enabled=True).client
    with caplog.at_level(logging.INFO, logger="authtwin"):
        for _ in range(2):
            client.post("/auth/login", json={"email": unique_email(), "password": WRONG})
    limited = [r for r in auth_records(caplog) if r.auth.get("reason") == "rate_limited"]  # type: ignore[attr-defined]
    assert [r.auth["event"] for r in limited] == ["login"]  # type: ignore[attr-defined]
