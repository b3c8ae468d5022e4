"""The servers the project starts (tests/live.py, bench/, docker-compose.yml) share nothing.

gunicorn 25 and later open a control socket, by default at ``$HOME/.gunicorn/gunicorn.ctl``:
one path for every gunicorn of the user, so starting one deletes the socket of another that
is running (a live run beside a benchmark, two checkouts, CI beside a developer). The
production command turns it off: nothing here uses gunicorn's control interface.
"""

from pathlib import Path

import pytest

from tests.live import production_env, serve

pytestmark = pytest.mark.in_process  # it starts a server of its own


def test_gunicorn_opens_no_control_socket_shared_with_other_servers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**production_env(tmp_path / "server.db"), "HOME": str(home)}
    with serve("flask", env, tmp_path):
        made = sorted(str(path.relative_to(home)) for path in home.rglob("*"))
    assert made == []
