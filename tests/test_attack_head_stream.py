"""Attack: HEAD on the event stream, from a client that keeps its connection alive.

README and test_events.py::test_head_answers_as_the_stream_would_and_opens_none promise that
HEAD answers the stream's headers and opens no stream. That test's client closes its
connection after each HEAD, which ends whatever the server opened. A client that keeps the
connection alive (any pooling client: a browser, a monitor, httpx) finds out otherwise if the
server opened a stream anyway: the user's stream place is taken, and the next request on that
connection waits behind a response that never ends.
"""

import httpx2

from tests.conftest import ServedFactory
from tests.event_clients import READ_SECONDS, events_url, open_events
from tests.support import sign_up


def test_a_head_on_a_kept_alive_connection_opens_no_stream_and_leaves_it_usable(
    served: ServedFactory,
) -> None:
    server = served(events_max_streams_per_user=1)
    user = sign_up(server.api.client)
    with httpx2.Client(base_url=server.url, timeout=READ_SECONDS) as client:
        head = client.head(events_url(server.url), headers=user.headers)
        assert head.status_code == 200
        assert head.headers["content-type"] == "text/event-stream; charset=utf-8"
        # The connection stays open in the client's pool: no stream holds the user's one place.
        with open_events(server.url, user.access_token):
            pass
        # And the pooled connection answers the next request.
        me = client.get("/api/v1/users/me", headers=user.headers)
        assert me.status_code == 200, me.text
