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


ADMIN_RESET = "an administrator's reset password"


def admin_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.auth for r in auth_records(caplog) if "actor_id" in r.auth]  # type: ignore[attr-defined]


def test_admin_actions_and_refusals_are_audited(
    configured: ConfiguredApi, caplog: pytest.LogCaptureFixture
) -> None:
    """Who changed whose privileges, and who tried to without them (ASVS v5 16.3.2, 16.3.3)."""
    api = configured()
    client = api.client
    assert api.admin_email
    assert api.admin_password
    admin_tokens = log_in(client, api.admin_email, api.admin_password)
    admin = client.get("/users/me", headers=bearer(admin_tokens["access_token"])).json()
    as_admin = bearer(admin_tokens["access_token"])
    member, outsider = sign_up(client), sign_up(client)
    new_email = unique_email("moved")
    secrets = [api.admin_password, admin_tokens["access_token"], ADMIN_RESET]
    secrets += [member.password, member.access_token, outsider.password, outsider.access_token]
    changes = [
        {"is_superuser": True},
        {"is_superuser": False},
        {"is_active": False},
        {"is_active": True},
        {"password": ADMIN_RESET},
        {"email": new_email},  # leaves the address unverified
        {"is_verified": True},
        {"full_name": "Renamed by an administrator"},
    ]
    with caplog.at_level(logging.INFO, logger="authtwin"):
        for change in changes:
            response = client.patch(f"/users/{member.id}", json=change, headers=as_admin)
            assert response.status_code == 200, response.text
        weak_reset = client.patch(f"/users/{member.id}", json={"password": "aaaaaaaa"},
                                  headers=as_admin)  # fmt: skip
        assert weak_reset.status_code == 422
        nobody = 2_000_000_000
        assert client.patch(f"/users/{nobody}", json={}, headers=as_admin).status_code == 404
        assert client.delete(f"/users/{nobody}", headers=as_admin).status_code == 404
        refused = [
            client.get("/users", headers=outsider.headers),
            client.get(f"/users/{member.id}", headers=outsider.headers),
            client.patch(
                f"/users/{member.id}", json={"is_superuser": True}, headers=outsider.headers
            ),
            client.delete(f"/users/{member.id}", headers=outsider.headers),
            client.delete(f"/users/{admin['id']}", headers=as_admin),  # themself
            client.patch(f"/users/{admin['id']}", json={"is_superuser": False}, headers=as_admin),
        ]
        assert [response.status_code for response in refused] == [403] * len(refused)
        assert client.delete(f"/users/{member.id}", headers=as_admin).status_code == 204
        own_change = {"email": unique_email("own"), "current_password": outsider.password}
        assert client.patch("/users/me", json=own_change, headers=outsider.headers).is_success

    records = admin_records(caplog)
    by_admin = [(r["event"], r["outcome"], r["target_id"]) for r in records
                if r["actor_id"] == admin["id"]]  # fmt: skip
    assert by_admin == [
        ("promote", "success", member.id),
        ("demote", "success", member.id),
        ("deactivate", "success", member.id),
        ("reactivate", "success", member.id),
        ("password_reset", "success", member.id),
        ("email_change", "success", member.id),
        ("verify", "success", member.id),
        ("name_change", "success", member.id),
        ("password_reset", "failure", member.id),
        ("update_user", "failure", nobody),
        ("delete_user", "failure", nobody),
        ("delete_user", "failure", admin["id"]),
        ("demote", "failure", admin["id"]),
        ("delete_user", "success", member.id),
    ]
    by_outsider = [r for r in records if r["actor_id"] == outsider.id]
    assert [(r["outcome"], r["reason"]) for r in by_outsider] == [("failure", "forbidden")] * 4
    assert [r.get("target_id") for r in by_outsider] == [None, member.id, None, None]
    resources = [r.get("resource") for r in by_outsider]
    assert resources == ["GET /api/v1/users", None, f"PATCH /api/v1/users/{member.id}",
                         f"DELETE /api/v1/users/{member.id}"]  # fmt: skip
    assert {r["client_ip"] for r in records} == {"127.0.0.1"}
    own = [r.auth for r in auth_records(caplog) if "actor_id" not in r.auth]  # type: ignore[attr-defined]
    # Asked for, not made: the change waits for the link mailed to the new address.
    assert [r for r in own if r["event"].startswith("email_change")] == [
        {
            "event": "email_change_request",
            "outcome": "success",
            "client_ip": "127.0.0.1",
            "user_id": outsider.id,
        }
    ]
    formatter = JsonFormatter()
    for record in auth_records(caplog):
        line = formatter.format(record)
        for secret in secrets:
            assert secret not in line
            assert secret not in str(record.__dict__)


def test_every_account_deletion_and_refused_own_change_is_audited(
    configured: ConfiguredApi, caplog: pytest.LogCaptureFixture
) -> None:
    """ASVS v5 16.3.1: deleting an account is an audit event whichever route does it, as is a
    superuser's attempt to change their own credentials by the administrative route."""
    api = configured()
    client = api.client
    assert api.admin_email
    assert api.admin_password
    admin_tokens = log_in(client, api.admin_email, api.admin_password)
    admin = client.get("/users/me", headers=bearer(admin_tokens["access_token"])).json()
    as_admin = bearer(admin_tokens["access_token"])
    member, second = sign_up(client), sign_up(client)
    promote = client.patch(f"/users/{second.id}", json={"is_superuser": True}, headers=as_admin)
    assert promote.status_code == 200
    with caplog.at_level(logging.INFO, logger="authtwin"):
        own = {"password": ADMIN_RESET, "is_verified": True}
        assert (
            client.patch(f"/users/{second.id}", json=own, headers=second.headers).status_code == 403
        )
        assert client.delete("/users/me", headers=member.headers).status_code == 204
        assert client.delete("/users/me", headers=second.headers).status_code == 204
        assert client.delete("/users/me", headers=as_admin).status_code == 403  # the last one

    records = [r.auth for r in auth_records(caplog)]  # type: ignore[attr-defined]
    by_second = [r for r in records if r.get("actor_id") == second.id]
    refused = [(r["event"], r["outcome"], r.get("reason")) for r in by_second]
    assert refused == [("password_reset", "failure", "self"), ("verify", "failure", "self")]
    deletions = [r for r in records if r["event"] == "account_delete"]
    assert deletions == [
        {"event": "account_delete", "outcome": "success", "client_ip": "127.0.0.1",
         "user_id": member.id},
        {"event": "account_delete", "outcome": "success", "client_ip": "127.0.0.1",
         "user_id": second.id},
        {"event": "account_delete", "outcome": "failure", "client_ip": "127.0.0.1",
         "user_id": admin["id"], "reason": "last_superuser"},
    ]  # fmt: skip
