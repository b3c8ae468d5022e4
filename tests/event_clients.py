"""Clients of the account events, as an application would write them: an SSE reader on
httpx2's streamed response (the WHATWG parsing rules, which EventSource follows) and the
``websockets`` library's client. Every read has a deadline, so a stream that never ends
fails its test instead of hanging it."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support import bearer

READ_SECONDS = 5  # the longest any test waits for one event or a stream's end


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass
class EventReader:
    """Events off an open ``text/event-stream`` response, one at a time."""

    response: httpx2.Response
    heartbeats: int = 0
    ended_at: float | None = None
    _lines: Iterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self._lines = self.response.iter_lines()

    def next(self) -> ServerEvent | None:
        """The next event, or None once the server ended the stream. Heartbeats keep each
        read short of its timeout: a stream that sends nothing else fails after a while."""
        fields: dict[str, str] = {}
        deadline = time.monotonic() + READ_SECONDS
        for line in self._lines:
            assert time.monotonic() < deadline, "no event, and the stream goes on"
            if line == "":
                if "event" in fields or "data" in fields:
                    return ServerEvent(
                        event=fields.get("event", "message"),
                        data=json.loads(fields.get("data", "null")),
                        id=fields.get("id"),
                    )
                continue
            if line.startswith(":"):
                self.heartbeats += line == ": heartbeat"
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        self.ended_at = time.monotonic()
        return None

    def next_heartbeat(self) -> None:
        """Read on to the next heartbeat; an event before it fails the test."""
        for line in self._lines:
            if line == ": heartbeat":
                self.heartbeats += 1
                return
            assert line == "" or line.startswith(("retry:", ":")), f"not a heartbeat: {line}"
        raise AssertionError("the stream ended")

    def next_event(self) -> ServerEvent:
        event = self.next()
        assert event is not None, "the stream ended"
        return event

    def rest(self) -> list[ServerEvent]:
        """Every event until the server ends the stream."""
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events


def events_url(url: str) -> str:
    return f"{url}/api/v1/users/me/events"


def http_client(source: str | None = None) -> httpx2.Client:
    """A client whose connections come from ``source`` (a loopback address: all of 127/8 is)."""
    transport = httpx2.HTTPTransport(local_address=source) if source else None
    return httpx2.Client(timeout=READ_SECONDS, transport=transport)


@contextmanager
def open_events(
    url: str, token: str, *, last_event_id: str | None = None, source: str | None = None
) -> Iterator[EventReader]:
    """An open stream (its 200 and headers read: the server has subscribed it)."""
    headers = bearer(token)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with (
        http_client(source) as client,
        client.stream("GET", events_url(url), headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        yield EventReader(response)


def opening_status(url: str, token: str, *, source: str | None = None) -> int:
    """The status a stream opens with; the stream, if any, is closed at once."""
    with (
        http_client(source) as client,
        client.stream("GET", events_url(url), headers=bearer(token)) as response,
    ):
        return response.status_code


def socket_url(url: str) -> str:
    return url.replace("http://", "ws://", 1) + "/api/v1/ws"


@contextmanager
def open_socket(
    url: str, *, origin: str | None = None, path: str = "/api/v1/ws", source: str | None = None
) -> Iterator[ClientConnection]:
    headers = {"Origin": origin} if origin else None
    address = url.replace("http://", "ws://", 1) + path
    with connect(
        address,
        additional_headers=headers,
        open_timeout=READ_SECONDS,
        close_timeout=1,
        source_address=(source, 0) if source else None,
    ) as ws:
        yield ws


def authenticate(ws: ClientConnection, token: str, last_event_id: str | None = None) -> None:
    """Send the auth message; the server answers ``ready`` once the stream is subscribed."""
    message: dict[str, Any] = {"type": "auth", "access_token": token}
    if last_event_id is not None:
        message["last_event_id"] = last_event_id
    ws.send(json.dumps(message))
    assert json.loads(ws.recv(timeout=READ_SECONDS)) == {"type": "ready"}


def next_message(ws: ClientConnection) -> dict[str, Any] | None:
    """The next event message (heartbeats skipped), or None once the socket closed. As for a
    stream (``EventReader.next``), heartbeats do not extend the wait: a socket that sends
    nothing else fails after ``READ_SECONDS``, against any server."""
    deadline = time.monotonic() + READ_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no event, and the socket goes on"
        try:
            message: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        except ConnectionClosed:
            return None
        if message != {"type": "heartbeat"}:
            return message


def socket_rest(ws: ClientConnection) -> list[dict[str, Any]]:
    messages = []
    while (message := next_message(ws)) is not None:
        messages.append(message)
    return messages


def close_code(ws: ClientConnection) -> tuple[int | None, str | None]:
    """How the server closed the socket (once it has)."""
    return ws.close_code, ws.close_reason
