"""The framework-free core on its own: settings, password policy, start-up, the CLI.

These need no HTTP, so they run once, not per target.
"""

import os
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.pool import QueuePool

from shared.domain.models import User
from shared.infrastructure.config import Settings
from shared.runtime import Runtime
from shared.security.passwords import PasswordHasher
from tests.conftest import TEST_SECRET
from tests.support import run_python

pytestmark = pytest.mark.in_process

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    defaults = Settings(env="development")
    return PasswordHasher(
        memory_kib=defaults.argon2_memory_kib,
        time_cost=defaults.argon2_time_cost,
        parallelism=defaults.argon2_parallelism,
        legacy_bcrypt_rounds=4,
    )


def test_new_hashes_are_argon2id_at_owasp_parameters(hasher: PasswordHasher) -> None:
    hashed = hasher.hash("a fine password")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify("a fine password", hashed).ok
    assert not hasher.verify("another password", hashed).ok


def test_bcrypt_hashes_verify_and_ask_to_be_upgraded(hasher: PasswordHasher) -> None:
    legacy = bcrypt.hashpw(b"legacy password", bcrypt.gensalt(rounds=4)).decode()
    verification = hasher.verify("legacy password", legacy)
    assert verification.ok
    assert verification.new_hash is not None
    assert verification.new_hash.startswith("$argon2id$")
    assert not hasher.verify("wrong password", legacy).ok


def test_without_legacy_rounds_a_bcrypt_hash_is_refused() -> None:
    """bcrypt is accepted only where the operator says such hashes are stored: each accepted
    scheme adds its work to every failed login (security/passwords.py)."""
    hasher = PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1)
    legacy = bcrypt.hashpw(b"legacy password", bcrypt.gensalt(rounds=4)).decode()
    assert not hasher.verify("legacy password", legacy).ok
    hasher.close()


def test_passwords_over_72_bytes_fail_cleanly_against_bcrypt(hasher: PasswordHasher) -> None:
    legacy = bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(rounds=4)).decode()
    assert not hasher.verify("x" * 73, legacy).ok  # bcrypt would have truncated: refuse
    assert not hasher.verify("é" * 40, legacy).ok  # 80 bytes in UTF-8


def test_a_corrupt_stored_hash_fails_closed(hasher: PasswordHasher) -> None:
    assert not hasher.verify("anything", "not-a-hash").ok


def test_passwords_are_unicode_normalised(hasher: PasswordHasher) -> None:
    composed, decomposed = "caf\u00e9 au lait", "cafe\u0301 au lait"
    assert hasher.verify(decomposed, hasher.hash(composed)).ok


def test_login_upgrades_a_bcrypt_hash_in_the_database(tmp_path: Path) -> None:
    settings = Settings(
        env="development",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        secret_key=TEST_SECRET,
        legacy_bcrypt_rounds=4,
    )
    runtime = Runtime.build(settings)
    runtime.prepare()
    legacy = bcrypt.hashpw(b"legacy password", bcrypt.gensalt(rounds=4)).decode()
    with runtime.sessions() as session:
        session.add(User(email="old@example.com", hashed_password=legacy))
        session.commit()
        runtime.auth.login(
            session=session,
            email="old@example.com",
            password="legacy password",
            client_ip="192.0.2.1",
        )
    with runtime.sessions() as session:
        stored = session.scalars(select(User.hashed_password)).one()
    assert stored.startswith("$argon2id$")
    runtime.dispose()


@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "must be set"), ("changethis", "placeholder"), ("short-key-9Xq2", "at least 32 bytes")],
)
def test_production_settings_refuse_a_weak_secret(secret: str | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(env="production", secret_key=secret)


def test_development_generates_a_secret_when_none_is_set() -> None:
    key = Settings(env="development").signing_key()
    assert len(key) >= 32


@pytest.mark.parametrize("package", ["fastapi_app", "flask_app"])
@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "must be set outside development"), ("changeme", "well-known placeholder"),
     ("x" * 31, "must be at least 32 bytes")],
    ids=["missing", "placeholder", "short"],
)  # fmt: skip
def test_apps_refuse_to_start_in_production_with_a_weak_secret(
    package: str, secret: str | None, message: str
) -> None:
    env = {"AUTHTWIN_ENV": "production"}
    if secret is not None:
        env["AUTHTWIN_SECRET_KEY"] = secret
    result = run_python(f"import {package}; {package}.create_app()", **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert secret is None or secret not in result.stderr  # the message names no secret


def test_cli_creates_a_superuser_idempotently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    command = "from shared.cli import main; raise SystemExit(main())"
    for _ in range(2):
        result = subprocess.run(  # noqa: S603 — our own interpreter, fixed code
            [sys.executable, "-c", command, "create-superuser", "--email", "Root@Example.com",
             "--password-stdin"],
            input="a long enough password\n",
            env={**os.environ, "AUTHTWIN_ENV": "development", "AUTHTWIN_DATABASE_URL": url},
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "superuser root@example.com" in result.stdout
    runtime = Runtime.build(Settings(database_url=url, secret_key=TEST_SECRET))
    with runtime.sessions() as session:
        users = session.scalars(select(User)).all()
    assert [(u.email, u.is_superuser) for u in users] == [("root@example.com", True)]
    runtime.dispose()


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short", "at least 8"), ("password123", "too common"), ("a@example.com", "email"),
     ("12341234", "repeated"), ("abcdefgh", "consecutive"), (" " * 8, "invisible")],
)  # fmt: skip
def test_cli_refuses_a_password_the_api_would(tmp_path: Path, password: str, reason: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "create-superuser", "--email", "a@example.com",
         "--password-stdin"],
        input=f"{password}\n",
        env={**os.environ, "AUTHTWIN_ENV": "development",
             "AUTHTWIN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert reason in result.stderr


def boot_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings with a first superuser, on a SQLite file of the test's own."""
    values: dict[str, object] = {
        "env": "development",  # migrates at start-up, and may hash cheaply
        "database_url": f"sqlite:///{tmp_path / 'boot.sqlite'}",
        "secret_key": TEST_SECRET,
        "first_superuser_email": "boss@example.com",
        "first_superuser_password": "boss password here",
        "argon2_memory_kib": 1024,
        "argon2_time_cost": 1,
    }
    return Settings.model_validate({**values, **overrides})


def test_first_superuser_at_start_up_is_idempotent(tmp_path: Path) -> None:
    settings = boot_settings(tmp_path)
    for _ in range(2):
        runtime = Runtime.build(settings)
        runtime.prepare()
        runtime.dispose()
    runtime = Runtime.build(settings)
    with runtime.sessions() as session:
        users = session.scalars(select(User)).all()
    runtime.dispose()
    assert [(u.email, u.is_superuser) for u in users] == [("boss@example.com", True)]


def test_start_up_never_promotes_an_existing_account(tmp_path: Path) -> None:
    """Had the first superuser been deleted and its address signed up by someone else, a
    restart must not make that someone a superuser (nor undo a deactivation)."""
    settings = boot_settings(tmp_path)
    runtime = Runtime.build(settings.model_copy(update={"first_superuser_email": None}))
    runtime.prepare()
    with runtime.sessions() as session:
        session.add(User(email="boss@example.com", hashed_password="x", is_active=False))
        session.commit()
    runtime.dispose()
    runtime = Runtime.build(settings)
    runtime.prepare()
    with runtime.sessions() as session:
        user = session.scalars(select(User)).one()
    runtime.dispose()
    assert (user.is_superuser, user.is_active, user.hashed_password) == (False, False, "x")


@pytest.mark.parametrize(
    ("password", "reason"),
    [("password123", "too common"), ("Password123 ", "too common"), ("99999999", "repeated"),
     ("87654321", "consecutive"), ("\u200b" * 8, "invisible")],
)  # fmt: skip
def test_start_up_refuses_a_weak_first_superuser_password(
    tmp_path: Path, password: str, reason: str
) -> None:
    settings = boot_settings(tmp_path, first_superuser_password=password)
    runtime = Runtime.build(settings)
    with pytest.raises(ValueError, match=reason):
        runtime.prepare()
    runtime.dispose()


def test_start_up_leaves_no_connection_for_forked_workers_to_share(tmp_path: Path) -> None:
    """gunicorn --preload runs start-up in its master process and then forks the workers: a
    connection left in the pool would be one socket shared by all of them (on PostgreSQL,
    about one request in forty then failed with a protocol error)."""
    runtime = Runtime.build(boot_settings(tmp_path))
    runtime.prepare()
    pool = runtime.engine.pool
    assert isinstance(pool, QueuePool)  # the write engine's pool: connections are kept
    pooled = pool.checkedin()
    runtime.dispose()
    assert pooled == 0
