"""The PostgreSQL read path: a restart is not an outage, and any libpq URL works.

Pooled connections the server closed are replaced.

The read pools skip SQLAlchemy's pre-ping (a round trip on every request; see
shared/infrastructure/db.py) and retry a read once when its connection turns out dead. Here the
server ends every connection of the test's database, as a restart or an idle timeout would,
and the next requests must still succeed. SQLite has no server to lose.
"""

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from tests.clients import APPS
from tests.conftest import in_process_settings
from tests.support import sign_up

pytestmark = pytest.mark.in_process  # it reaches into the database server


def end_every_other_connection(engine: Engine) -> int:
    with engine.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    engine.dispose()  # the fixture's own pooled connections were among them
    return int(ended)


@pytest.mark.parametrize("app", APPS)
def test_requests_after_the_server_dropped_every_connection_succeed(
    app: str,
    database_for: Callable[[str], str],
    postgres_engine: Engine,
    redis_url: str,
) -> None:
    settings = in_process_settings(
        database_for("postgresql"),
        redis_url=redis_url,
        redis_key_prefix=f"authtwin-test-{uuid.uuid4().hex}",
    )
    with APPS[app](settings) as client:
        account = sign_up(client)
        assert client.get("/users/me", headers=account.headers).status_code == 200
        assert client.get("/health").status_code == 200

        assert end_every_other_connection(postgres_engine) > 0

        me = client.get("/users/me", headers=account.headers)
        assert me.status_code == 200, me.text
        assert me.json()["email"] == account.email
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("app", APPS)
def test_a_postgresql_url_with_libpq_options_serves_every_request(
    app: str, database_for: Callable[[str], str], redis_url: str
) -> None:
    # asyncpg, FastAPI's read driver, refuses libpq's options; such a URL must still work.
    url = database_for("postgresql") + "?application_name=authtwin-test&sslmode=disable"
    settings = in_process_settings(
        url, redis_url=redis_url, redis_key_prefix=f"authtwin-test-{uuid.uuid4().hex}"
    )
    with APPS[app](settings) as client:
        account = sign_up(client)
        me = client.get("/users/me", headers=account.headers)
        assert me.status_code == 200, me.text
        assert client.get("/health").status_code == 200
