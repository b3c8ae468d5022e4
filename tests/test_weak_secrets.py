"""No weak signing secret and no cheap password hashing reach a running deployment.

Whoever holds the HS256 secret can mint a token for any account: a service started with
``AUTHTWIN_SECRET_KEY=changethis`` lets anyone who has read a tutorial act as its superuser.
So a secret that is *given* is checked in every environment, development included (a
development setting is one copied line away from a deployment); only a *missing* one is
replaced, in development alone, by a random one. And a deployment is production unless it
says otherwise: forgetting ``AUTHTWIN_ENV`` must not quietly disable the checks.

Production also refuses argon2id parameters below OWASP's minimums: a stolen database hashed
at a few hundred KiB is cracked at GPU speed.
"""

import base64
import os
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.infrastructure.config import Settings
from tests.support import run_python

pytestmark = pytest.mark.in_process

STRONG = secrets.token_urlsafe(32)

# Each caught by one rule: the list of placeholders, the length, repetition, variety.
WEAK_SECRETS = {
    "placeholder": "changethis",
    "placeholder-with-spaces-and-capitals": "  ChangeThis ",
    "placeholder-repeated-to-length": "changethis" * 4,
    "one-character-repeated": "a" * 40,
    "digits-repeated": "0123456789" * 4,
    "repeated-with-a-tail": "s3cr3t-" * 5 + "s3",
    "too-few-distinct-characters": "abcabcabcabcabcabcabcabcabcabcabcabx",
    "short": secrets.token_urlsafe(32)[:31],
    # Found from outside: a placeholder brought to the length with what a person (or a
    # template) adds, or written in look-alikes; a run typed along the keyboard; a key
    # published in a tutorial.
    "placeholder-and-zero-width-spaces": "changethis" + "\u200b" * 8,
    "placeholder-in-full-width-letters": "  "
    + "".join(chr(ord(c) + 0xFEE0) for c in "changethis")
    + "x7Qp2v" * 2,
    "placeholder-and-dots": "changethis" + "." * 22,
    "placeholder-inside": "your-secret-key-change-in-production",
    "placeholder-twice-and-digits": "supersecretkeysupersecretkey1234",
    "placeholder-thrice-and-a-tail": "changethis" * 3 + "12",
    "alphabet-run": "abcdefghijklmnopqrstuvwxyz012345",
    "fastapi-tutorial-key": "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    # Found by a third look from outside: the placeholder in leetspeak, in base64 or hex, a
    # repetition with a character added, a keyboard walk.
    "placeholder-in-leetspeak": "s3cr3t-k3y-f0r-jwt-s1gn1ng-pr0duct10n",
    "placeholder-in-base64": base64.b64encode(b"changethis changethis changethis").decode(),
    "phrase-in-hex": b"a key for production use only".hex(),
    "repetition-and-a-sign": "hunter2" * 5 + "!",
    "keyboard-walk": "qwertyuiop[]asdfghjkl;zxcvbnm,./123",
}

# What the README and the error message tell people to run, and their usual equivalents.
GENERATED_SECRETS = {
    "secrets.token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    "openssl rand -hex 32": lambda: secrets.token_hex(32),
    "openssl rand -base64 32": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    "openssl rand -hex 16": lambda: secrets.token_hex(16),
    "two uuid4s": lambda: f"{uuid.uuid4()}{uuid.uuid4()}",
}

# OWASP Password Storage Cheat Sheet, argon2id: (memory KiB, iterations), parallelism 1.
OWASP_ROWS = [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5)]
BELOW_OWASP = [(1_024, 1), (19_456, 1), (47_103, 1), (7_168, 4), (9_215, 4), (4_096, 20)]


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("secret", WEAK_SECRETS.values(), ids=WEAK_SECRETS.keys())
def test_a_given_weak_secret_is_refused_in_every_environment(env: str, secret: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env=env, secret_key=secret)
    message = str(refused.value)
    assert "AUTHTWIN_SECRET_KEY" in message
    assert secret.strip() not in message  # says why, never what


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("make", GENERATED_SECRETS.values(), ids=GENERATED_SECRETS.keys())
def test_a_generated_secret_is_accepted(env: str, make: object) -> None:
    assert callable(make)
    for _ in range(20):  # random: one lucky draw would prove little
        secret = make()
        assert Settings(env=env, secret_key=secret).signing_key() == secret


def test_without_authtwin_env_settings_are_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("AUTHTWIN_")]:
        monkeypatch.delenv(name)
    assert Settings(secret_key=STRONG).env == "production"
    with pytest.raises(ValidationError, match="AUTHTWIN_SECRET_KEY must be set"):
        Settings()


@pytest.mark.parametrize(("memory_kib", "time_cost"), OWASP_ROWS)
def test_production_accepts_each_owasp_argon2id_row(memory_kib: int, time_cost: int) -> None:
    settings = Settings(
        env="production",
        secret_key=STRONG,
        argon2_memory_kib=memory_kib,
        argon2_time_cost=time_cost,
    )
    assert (settings.argon2_memory_kib, settings.argon2_time_cost) == (memory_kib, time_cost)


@pytest.mark.parametrize(("memory_kib", "time_cost"), BELOW_OWASP)
def test_production_refuses_argon2id_below_owasp(memory_kib: int, time_cost: int) -> None:
    with pytest.raises(ValidationError, match="AUTHTWIN_ARGON2_MEMORY_KIB"):
        Settings(
            env="production",
            secret_key=STRONG,
            argon2_memory_kib=memory_kib,
            argon2_time_cost=time_cost,
        )


def test_development_may_hash_cheaply() -> None:
    """What the in-process suite runs on: thousands of hashes at OWASP's cost would take
    minutes, and the cost itself is not what those tests are about."""
    settings = Settings(
        env="development", secret_key=STRONG, argon2_memory_kib=1024, argon2_time_cost=1
    )
    assert settings.argon2_memory_kib == 1024


def start_app(package: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The app factory the servers call, in a process of its own with only ``env`` set."""
    return run_python(f"import {package}; {package}.create_app()", **env)


# The deployments that went wrong: no AUTHTWIN_ENV at all (the Dockerfile set none), a
# placeholder left in a development configuration, cheap hashing copied into production.
REFUSED_STARTS = {
    "no-env-no-secret": ({}, "AUTHTWIN_SECRET_KEY must be set"),
    "development-placeholder": (
        {"AUTHTWIN_ENV": "development", "AUTHTWIN_SECRET_KEY": "changethis"},
        "AUTHTWIN_SECRET_KEY",
    ),
    "production-cheap-hashing": (
        {
            "AUTHTWIN_ENV": "production",
            "AUTHTWIN_SECRET_KEY": STRONG,
            "AUTHTWIN_ARGON2_MEMORY_KIB": "1024",
            "AUTHTWIN_ARGON2_TIME_COST": "1",
        },
        "AUTHTWIN_ARGON2_MEMORY_KIB",
    ),
}


@pytest.mark.parametrize("package", ["fastapi_app", "flask_app"])
@pytest.mark.parametrize("case", REFUSED_STARTS.values(), ids=REFUSED_STARTS.keys())
def test_both_twins_refuse_to_start(
    package: str, case: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, reason = case
    started = start_app(package, AUTHTWIN_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}", **env)
    assert started.returncode != 0, started.stderr
    assert reason in started.stderr
    assert STRONG not in started.stderr


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (
            {"smtp_host": "smtp.example.com", "smtp_security": "none",
             "smtp_username": "relay", "smtp_password": "a relay password"},
            "in clear",
        ),
        ({"smtp_username": "relay"}, "needs AUTHTWIN_SMTP_PASSWORD"),
        ({"env": "production", "mail_backend": "console"}, "logs reset and verification links"),
    ],
    ids=["login-in-clear", "login-without-password", "console-in-production"],
)  # fmt: skip
def test_mail_settings_that_would_leak_a_credential_are_refused(
    settings: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        Settings.model_validate({"env": "development", "secret_key": STRONG, **settings})


# Links in mail are credentials (a reset link is the account): production sends them
# neither to a relay on another host without TLS nor points them at a plain-http address
# people reach over a network, unless an operator opts out, and the log says so at start-up.
CLEARTEXT = {
    "smtp-in-clear-to-another-host": {"smtp_host": "smtp.example.com", "smtp_security": "none"},
    "smtp-in-clear-to-a-private-address": {"smtp_host": "10.0.0.25", "smtp_security": "none"},
    "http-public-url": {"public_url": "http://auth.example.com"},
    "http-public-url-by-address": {"public_url": "http://192.0.2.7:8000"},
}
LOOPBACK = {
    "smtp-in-clear-on-localhost": {"smtp_host": "localhost", "smtp_security": "none"},
    "smtp-in-clear-on-127.0.0.1": {"smtp_host": "127.0.0.1", "smtp_security": "none"},
    "smtp-in-clear-on-::1": {"smtp_host": "::1", "smtp_security": "none"},
    "http-public-url-on-localhost": {"public_url": "http://localhost:8000"},
    "http-public-url-on-127.0.0.2": {"public_url": "http://127.0.0.2:8000"},
    "http-public-url-on-::1": {"public_url": "http://[::1]:8000"},
    "https-public-url": {"public_url": "https://auth.example.com"},
    "smtp-with-starttls": {"smtp_host": "smtp.example.com", "smtp_security": "starttls"},
}


@pytest.mark.parametrize("settings", CLEARTEXT.values(), ids=CLEARTEXT.keys())
def test_production_refuses_links_in_clear(settings: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="AUTHTWIN_ALLOW_CLEARTEXT"):
        Settings.model_validate({"env": "production", "secret_key": STRONG, **settings})


@pytest.mark.parametrize("settings", LOOPBACK.values(), ids=LOOPBACK.keys())
def test_production_takes_clear_text_that_stays_on_this_host(settings: dict[str, str]) -> None:
    Settings.model_validate({"env": "production", "secret_key": STRONG, **settings})


@pytest.mark.parametrize("settings", CLEARTEXT.values(), ids=CLEARTEXT.keys())
def test_development_and_an_explicit_opt_out_take_links_in_clear(
    settings: dict[str, str],
) -> None:
    Settings.model_validate({"env": "development", "secret_key": STRONG, **settings})
    opted_out = {"env": "production", "secret_key": STRONG, "allow_cleartext": True}
    Settings.model_validate({**opted_out, **settings})


@pytest.mark.parametrize("package", ["fastapi_app", "flask_app"])
def test_the_opt_out_is_logged_at_every_start(package: str, tmp_path: Path) -> None:
    env = {
        "AUTHTWIN_ENV": "production",
        "AUTHTWIN_SECRET_KEY": STRONG,
        "AUTHTWIN_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
        "AUTHTWIN_PUBLIC_URL": "http://auth.example.com",
        "AUTHTWIN_SMTP_HOST": "smtp.example.com",
        "AUTHTWIN_SMTP_SECURITY": "none",
    }
    refused = start_app(package, **env)
    assert refused.returncode != 0
    assert "AUTHTWIN_ALLOW_CLEARTEXT" in refused.stderr
    env["AUTHTWIN_ALLOW_CLEARTEXT"] = "true"
    migrated = run_python("from shared.cli import main; raise SystemExit(main(['migrate']))", **env)
    assert migrated.returncode == 0, migrated.stderr
    started = start_app(package, **env)
    assert started.returncode == 0, started.stderr
    warnings = [line for line in started.stderr.splitlines() if "AUTHTWIN_ALLOW_CLEARTEXT" in line]
    assert len(warnings) == 2, started.stderr
    assert any("http://auth.example.com" in line for line in warnings)
    assert any("smtp.example.com" in line for line in warnings)
