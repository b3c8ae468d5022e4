"""nginx in front of the replicas: deploy/nginx.conf.template, rendered and run as a process
of our own (its own prefix, pid file and temporary files under a run directory), never the
system's nginx or anything under /etc/nginx.

docker-compose.yml renders the same template with ``envsubst``, listing PLACEHOLDERS.
"""

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
# Every ${NAME} the template holds; deploy/cluster.py and docker-compose.yml give them all.
PLACEHOLDERS = frozenset(
    {
        "RUN_DIR",
        "LOAD_MODULES",
        "CLEAR_SERVER_HEADER",
        "LISTEN_ADDRESS",
        "FASTAPI_PORT",
        "FLASK_PORT",
        "FASTAPI_SERVERS",
        "FLASK_SERVERS",
    }
)
# Debian's libnginx-mod-http-headers-more-filter: the only way to send no Server header at
# all (server_tokens off still sends "Server: nginx"). Optional: without it, the banner stays.
HEADERS_MORE = Path("/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def executable() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def render(values: Mapping[str, str]) -> str:
    """The template with every placeholder filled: all of them, and nothing else."""
    if set(values) != PLACEHOLDERS:
        raise ValueError(
            f"nginx placeholders: expected {sorted(PLACEHOLDERS)}, got {sorted(values)}"
        )
    template = TEMPLATE.read_text(encoding="utf-8")
    found = set(_PLACEHOLDER.findall(template))
    if found != PLACEHOLDERS:  # the template and this module disagree: a bug, say so
        raise ValueError(f"the template holds {sorted(found)}, PLACEHOLDERS says otherwise")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def local_values(
    run_dir: Path, ports: Mapping[str, int], upstreams: Mapping[str, Iterable[str]]
) -> dict[str, str]:
    """The placeholders for a cluster on loopback: ``ports`` and ``upstreams`` by twin."""
    banner = HEADERS_MORE.exists()
    return {
        "RUN_DIR": str(run_dir),
        "LOAD_MODULES": f"load_module {HEADERS_MORE};" if banner else "",
        "CLEAR_SERVER_HEADER": "more_clear_headers Server;" if banner else "",
        "LISTEN_ADDRESS": "127.0.0.1",
        "FASTAPI_PORT": str(ports["fastapi"]),
        "FLASK_PORT": str(ports["flask"]),
        "FASTAPI_SERVERS": upstream_servers(upstreams["fastapi"]),
        "FLASK_SERVERS": upstream_servers(upstreams["flask"]),
    }


def upstream_servers(addresses: Iterable[str]) -> str:
    """An upstream block's ``server`` lines. ``max_fails=0``: nginx never sets a replica aside
    for failing. Its default (one failure: out for 10 s) let any client do that: a request
    whose body a replica answers without reading (a 415) can end in a reset while nginx is
    still sending it, and two such requests left the Flask twin with no replica, all 502s.
    A replica that is really down refuses the connection at once, and nginx goes on to the
    next: a refused connection sent nothing, so this holds for every method (for PUT and
    DELETE through the template's @no_resend_retry; a request a replica received is resent
    only if it is a GET or HEAD)."""
    return " ".join(f"server {address} max_fails=0;" for address in addresses)


def command(config: Path, *, test: bool = False) -> list[str]:
    """nginx on ``config``, with the config's directory as its prefix (relative paths, and the
    error log before the config is read, stay there: ``-e stderr``)."""
    flags = ["-t"] if test else []
    return [executable(), *flags, "-p", str(config.parent), "-c", str(config), "-e", "stderr"]


def write_config(run_dir: Path, values: Mapping[str, str]) -> Path:
    """The rendered config in ``run_dir``, which nginx's workers (an unprivileged user when
    started as root) must be able to enter to reach their temporary files."""
    run_dir.chmod(0o755)
    config = run_dir / "nginx.conf"
    config.write_text(render(values), encoding="utf-8")
    return config


def check(config: Path) -> None:
    """``nginx -t``: refuse to start on a config nginx refuses, with its reason."""
    result = subprocess.run(command(config, test=True), capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise RuntimeError(f"nginx -t refused {config}:\n{result.stderr}")


def start(config: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """nginx in the foreground (``daemon off``), in a process group of its own."""
    return subprocess.Popen(  # noqa: S603 — the system's nginx binary on our own config
        command(config), stdout=log, stderr=log, start_new_session=True
    )
