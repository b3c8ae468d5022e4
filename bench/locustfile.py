"""The seeds' load test: Locust users arriving at 100 a second until 2000 are active.

Each user is someone who logged in earlier (a token pair minted by bench/seed.py) and now
reads their profile, pausing one to five seconds between requests, and now and then
refreshes their tokens. A connection error or a status >= 400 is a failure.

Run by ``python -m bench``; by hand:
    BENCH_TOKENS=pairs.txt locust -f bench/locustfile.py --headless -u 2000 -r 100 ...
"""

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser


def _pairs() -> Iterator[tuple[str, str]]:
    lines = Path(os.environ["BENCH_TOKENS"]).read_text().split()
    pairs = [tuple(line.split(",", 1)) for line in lines]
    return itertools.cycle([(access, refresh) for access, refresh in pairs])


PAIRS = _pairs()


class ReturningUser(FastHttpUser):
    wait_time = between(1, 5)

    def on_start(self) -> None:
        self.access, self.refresh_token = next(PAIRS)

    @task(10)
    def read_profile(self) -> None:
        self.client.get(
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {self.access}"},
            name="GET /users/me",
        )

    @task(1)
    def refresh(self) -> None:
        with self.client.post(
            "/api/v1/auth/refresh",
            json={"refresh_token": self.refresh_token},
            name="POST /auth/refresh",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                pair = response.json()
                self.access, self.refresh_token = pair["access_token"], pair["refresh_token"]
                response.success()
            else:
                response.failure(f"refresh answered {response.status_code}")
