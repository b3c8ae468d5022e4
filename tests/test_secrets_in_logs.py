"""No secret reaches a log, least of all when start-up fails and someone pastes the output.

Start-up failures are read by whoever is on call, pasted into tickets and kept by log
collectors: the refusal must say which setting is wrong and why, never its value. The
passwords here are each refused somewhere different: the first superuser's by account
validation (pydantic's errors print the value they refused), the database's and Redis's
travel inside URLs that outage warnings describe.
"""

import logging
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from tests.clients import APPS
from tests.conftest import in_process_settings, migrated_sqlite
from tests.live import free_port, migrate, production_env, start_server, stop_server

pytestmark = pytest.mark.in_process

ROOT = Path(__file__).resolve().parent.parent
# An .env file saved in Latin-1: "für" arrives as the byte 0xFC, not UTF-8, which Python
# reads as a lone surrogate. The policy takes the password (long, not common); account
# validation refuses it, as no UTF-8 can store it.
ADMIN_PASSWORD = "Geheimnis-f\udcfcr-den-Admin-2024"
# What a log would show of it: the parts around the undecodable byte.
ADMIN_PASSWORD_SHOWN = ("Geheimnis-f", "r-den-Admin-2024")
DATABASE_PASSWORD = "Db-Passw0rd-In-The-Url"
REDIS_PASSWORD = "Redis-Passw0rd-In-The-Url"


def shown(*outputs: str) -> str:
    return "\n".join(outputs)


def assert_no_admin_password(output: str) -> None:
    for part in ADMIN_PASSWORD_SHOWN:
        assert part not in output


def test_a_refused_first_superuser_password_is_in_no_error_or_log(
    app_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = in_process_settings(
        migrated_sqlite(tmp_path / "authtwin.db"), first_superuser_password=ADMIN_PASSWORD
    )
    refused_at_start = pytest.raises(ValueError, match="AUTHTWIN_FIRST_SUPERUSER_PASSWORD")
    with caplog.at_level(logging.DEBUG), refused_at_start as refused, APPS[app_name](settings):
        pass
    printed = capfd.readouterr()
    assert_no_admin_password(
        shown("".join(traceback.format_exception(refused.value)), caplog.text, *printed)
    )
    assert "valid string" in str(refused.value)  # which setting (matched above), and why


@pytest.mark.parametrize("app", ["fastapi", "flask"])
def test_a_production_server_refusing_its_first_superuser_prints_no_password(
    app: str, tmp_path: Path
) -> None:
    """uvicorn and gunicorn print the start-up error, chained exceptions included."""
    env = production_env(
        tmp_path / "server.db",
        first_superuser_email="root@example.com",
        first_superuser_password=ADMIN_PASSWORD,
    )
    migrate(env)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = start_server(app, free_port(), env, log, workers=1)
    try:
        server.wait(timeout=60)
    finally:
        stop_server(server)
    output = log_path.read_bytes().decode("utf-8", errors="backslashreplace")
    assert server.returncode != 0, output
    assert_no_admin_password(output)
    assert "AUTHTWIN_FIRST_SUPERUSER_PASSWORD" in output


def test_the_cli_refusing_the_first_superuser_prints_no_password(tmp_path: Path) -> None:
    """`authtwin create-superuser` starts the runtime, which creates the configured one too."""
    env = production_env(
        tmp_path / "cli.db",
        first_superuser_email="root@example.com",
        first_superuser_password=ADMIN_PASSWORD,
    )
    migrate(env)
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "create-superuser", "--email", "ops@example.com",
         "--password-stdin"],
        input=b"another long password\n", env=env, cwd=ROOT, capture_output=True,
        timeout=60, check=False,
    )  # fmt: skip
    output = (done.stdout + done.stderr).decode("utf-8", errors="backslashreplace")
    assert done.returncode != 0, output
    assert_no_admin_password(output)
    assert "AUTHTWIN_FIRST_SUPERUSER_PASSWORD" in output


def test_database_and_redis_passwords_are_in_no_outage_log(
    app_name: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Both stores down (nothing listens on the port): start-up, /health and a login each
    log the outage, naming what failed and the driver's reason, without the URL's password."""
    closed = free_port()
    settings = in_process_settings(
        f"postgresql+psycopg://authtwin:{DATABASE_PASSWORD}@127.0.0.1:{closed}/authtwin",
        redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{closed}/0",
        rate_limit_enabled=True,
    )
    with caplog.at_level(logging.DEBUG), APPS[app_name](settings) as client:
        assert client.get("/health").status_code == 503
        login = {"email": "someone@example.com", "password": "a long password"}
        assert client.post("/auth/login", json=login).status_code == 503
    output = shown(caplog.text, *capfd.readouterr())
    assert "database unreachable at start-up" in output
    assert "rate limiter unavailable" in output
    assert DATABASE_PASSWORD not in output
    assert REDIS_PASSWORD not in output
