"""docker-compose.yml is the topology tests/test_cluster.py runs, in containers.

No Docker engine here, so the file is read rather than run: its replicas must run the
production command lines of deploy/servers.py (which the cluster, the live tests and the
benchmark run), its nginx the template the cluster renders, with every placeholder given,
and its wiring the cluster's: a migration before any replica, nothing but nginx published,
and X-Forwarded-For trusted from nginx alone.
"""

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from deploy import nginx
from deploy.cluster import REPLICA_WORKERS
from deploy.servers import command
from tests.conftest import ConfiguredApi, _missing
from tests.private_services import missing_binaries, private_redis, wait_until
from tests.support import PASSWORD, sign_up

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
PORTS = {"fastapi": 8000, "flask": 5000}
REPLICAS = [f"{app}-{n}" for app in PORTS for n in (1, 2)]


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    found: dict[str, Any] = loaded["services"]
    return found


def in_container(argv: list[str]) -> list[str]:
    """deploy/servers.py's command as the image runs it: the server's own script, and every
    interface of the container rather than the host's loopback."""
    assert argv[:2] == [sys.executable, "-m"]
    return [arg.replace("127.0.0.1", "0.0.0.0") for arg in argv[2:]]  # noqa: S104


def test_the_replicas_run_the_production_command_lines() -> None:
    for name in REPLICAS:
        app = name.split("-")[0]
        expected = in_container(command(app, PORTS[app], REPLICA_WORKERS))
        assert shlex.split(services()[name]["command"]) == expected, name


def test_nginx_fills_in_every_placeholder_of_the_clusters_template() -> None:
    proxy = services()["nginx"]
    assert "./deploy/nginx.conf.template:/etc/authtwin/nginx.conf.template:ro" in proxy["volumes"]
    script = proxy["command"][-1]
    # `$$` is compose's escape for a literal `$`: envsubst is given `${RUN_DIR} ...`.
    assert set(re.findall(r"\$\$\{(\w+)\}", script)) == nginx.PLACEHOLDERS
    values = {name: str(value) for name, value in proxy["environment"].items()}
    assert set(values) == nginx.PLACEHOLDERS
    for app, port in PORTS.items():
        assert values[f"{app.upper()}_PORT"] == str(port)
        servers = nginx.upstream_servers(f"{app}-{n}:{port}" for n in (1, 2))
        assert values[f"{app.upper()}_SERVERS"] == servers
    nginx.render(values)  # every placeholder filled, none left


def test_replicas_wait_for_the_migration_and_only_nginx_is_published() -> None:
    every = services()
    proxy_address = every["nginx"]["networks"]["backend"]["ipv4_address"]
    for name in REPLICAS:
        replica = every[name]
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "ports" not in replica, name
        assert replica["environment"]["AUTHTWIN_TRUSTED_PROXIES"] == f"{proxy_address}/32"
    assert all(port.startswith("127.0.0.1:") for port in every["nginx"]["ports"])


DOCKERFILE = COMPOSE.with_name("Dockerfile")


def dockerfile_env() -> dict[str, str]:
    """The image's ``ENV name=value ...`` lines (the only form the Dockerfile uses)."""
    found: dict[str, str] = {}
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                found[name] = value
    return found


def test_the_image_and_every_service_of_it_run_production() -> None:
    """An image run without compose (``docker run``, another orchestrator) must not start in
    development: it would migrate by itself and, without a secret, sign with a random one."""
    assert dockerfile_env().get("AUTHTWIN_ENV") == "production"
    every = services()
    for name in [*REPLICAS, "migrate"]:
        assert every[name]["environment"]["AUTHTWIN_ENV"] == "production", name


def compose_redis_options() -> tuple[str, ...]:
    """The arguments compose gives ``redis-server`` (its data directory is the volume's)."""
    argv = services()["redis"]["command"]
    assert argv[0] == "redis-server"
    return tuple(argv[1:])


def test_redis_keeps_its_data_on_a_volume() -> None:
    redis = services()["redis"]
    assert "redis-data:/data" in redis.get("volumes", [])
    assert "redis-data" in yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["volumes"]


def test_a_lockout_outlives_a_restart_of_compose_s_redis(configured: ConfiguredApi) -> None:
    """The lockout lives in Redis: a Redis restarted without its data would let a locked
    account's guesser start again. Played on a private redis-server given compose's own
    arguments, killed and started again on the same directory."""
    if reason := missing_binaries():
        _missing("a private Redis server", reason)
    with private_redis(compose_redis_options()) as server:
        api = configured(redis_url=server.url, login_max_failures=3)
        account = sign_up(api.client)
        for _ in range(3):
            guess = {"email": account.email, "password": "a guess"}
            assert api.client.post("/auth/login", json=guess).status_code == 401
        right = {"email": account.email, "password": PASSWORD}
        assert api.client.post("/auth/login", json=right).status_code == 429

        server.stop()
        server.start()
        wait_until(
            lambda: api.client.post("/auth/login", json=right).status_code != 503,
            seconds=10,
            what="the app reaching the restarted Redis",
        )
        assert api.client.post("/auth/login", json=right).status_code == 429
