"""uvicorn's httptools protocol with gunicorn's limits on a request head, deadlines for the
head and the body, and the application told when the server stops (deploy/uvicorn_worker.py
names it).

uvicorn with httptools sets no limit: a single header of any size is read whole, so a few such
requests at once take a worker's memory and leave ``/health`` unanswered. uvicorn's own limit,
``--h11-max-incomplete-event-size``, exists only on its h11 protocol, a parser in pure Python,
and answers 400 in plain text. This subclass keeps httptools and applies the limits gunicorn
applies to the Flask twin (deploy/servers.py), with gunicorn's statuses: 414 for a request line
over ``LIMIT_REQUEST_LINE``, 431 for a header line over ``LIMIT_REQUEST_FIELD_SIZE`` or more
than ``LIMIT_REQUEST_FIELDS`` headers. It also stops reading a head once it is longer than
those limits allow in all, so memory stays bounded while httptools is still assembling a
header. Its answers are the contract's JSON, and so is uvicorn's 400 for a request it cannot
parse, and its 408 for a head not complete within ``REQUEST_HEAD_SECONDS``, or a body within
``REQUEST_BODY_SECONDS`` of its head.

It extends ``connection_made``, ``connection_lost``, ``data_received``, ``shutdown``, five of
httptools' callbacks, and replaces ``send_400_response``, where uvicorn answers a request it
cannot parse: uvicorn's protocol is not a documented API, so tests/test_server_hardening.py
and tests/test_stream_shutdown.py pin the behaviour.
"""

import asyncio
import json
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from deploy.servers import (
    LIMIT_REQUEST_FIELD_SIZE,
    LIMIT_REQUEST_FIELDS,
    LIMIT_REQUEST_LINE,
    REQUEST_BODY_SECONDS,
    REQUEST_HEAD_SECONDS,
)
from shared.web.server_stop import SERVER_STOP_KEY, ServerStop

# The most a head can take within the limits: the request line, every header line and its
# CRLF, the blank line. Counted on the bytes received, so a header httptools is still
# assembling counts too.
MAX_HEAD_BYTES = LIMIT_REQUEST_LINE + LIMIT_REQUEST_FIELDS * (LIMIT_REQUEST_FIELD_SIZE + 2) + 4


class HeadTooLarge(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes: int | None = 0  # None once the head is complete
        self.refusal = HTTPStatus.BAD_REQUEST  # the status of a head httptools rejects
        self.server_stop = ServerStop()
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_deadline()
        self.stop_body_deadline()
        super().connection_lost(exc)

    def start_head_deadline(self) -> None:
        """A head not complete within ``REQUEST_HEAD_SECONDS`` of its first byte (of the
        connection, for the first) is answered 408 and its connection closed: uvicorn has no
        such deadline, and a client that trickles its head, or sends nothing, would hold its
        connection for ever. (Between requests, uvicorn's keep-alive timeout applies.)"""
        self.stop_head_deadline()
        self.head_timer = self.loop.call_later(
            REQUEST_HEAD_SECONDS, self.refuse, HTTPStatus.REQUEST_TIMEOUT
        )

    def stop_head_deadline(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def start_body_deadline(self) -> None:
        """A body not complete within ``REQUEST_BODY_SECONDS`` of its head is answered 408
        (or, once the application has begun its answer, cut) and its connection closed: a
        client trickling its body would otherwise hold its connection, and the request that
        waits for the body, for ever. The application sees its client leave."""
        self.stop_body_deadline()
        self.body_timer = self.loop.call_later(REQUEST_BODY_SECONDS, self.body_timed_out)

    def stop_body_deadline(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def body_timed_out(self) -> None:
        self.body_timer = None
        if self.cycle is not None and not self.cycle.response_started:
            self.refuse(HTTPStatus.REQUEST_TIMEOUT)
        else:
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The application's word that the server is stopping (shared/web/server_stop.py):
        # an event stream it serves on this connection then ends at once, with its last word,
        # instead of holding the shutdown for the whole grace period and being cut.
        extensions = self.scope.setdefault("extensions", {})
        extensions[SERVER_STOP_KEY] = self.server_stop  # type: ignore[assignment]

    def shutdown(self) -> None:
        self.server_stop.stop()
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self.head_bytes == 0 and self.head_timer is None:
            self.start_head_deadline()  # the next request's head starts
        if self.head_bytes is not None:
            # May count a body that came in the same read as its head: a read is at most
            # 256 KiB (asyncio and uvloop), under MAX_HEAD_BYTES, and the count restarts
            # with the next request, so a head within the limits is never refused.
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return
        # httptools wraps an exception raised in a callback in HttpParserCallbackError,
        # which the base class answers with send_400_response: the refusal is sent there.
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        # gunicorn measures the request line, "GET /path HTTP/1.1"
        if (
            len(self.parser.get_method()) + len(self.url) + len(" HTTP/1.1") + 1
            > LIMIT_REQUEST_LINE
        ):
            raise self.refused(HTTPStatus.REQUEST_URI_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        # gunicorn measures the line with its CRLF, "Name: value\r\n"
        if len(name) + len(value) + 4 > LIMIT_REQUEST_FIELD_SIZE:
            raise self.refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        if len(self.headers) >= LIMIT_REQUEST_FIELDS:
            raise self.refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        self.stop_head_deadline()
        super().on_headers_complete()
        # Not for a WebSocket: its protocol has taken the connection, and no cycle began.
        if self.cycle is not None and self.cycle.scope is self.scope:
            self.start_body_deadline()

    def on_message_complete(self) -> None:
        self.stop_body_deadline()
        super().on_message_complete()
        self.head_bytes = 0  # the next request's head starts

    def refused(self, status: HTTPStatus) -> HeadTooLarge:
        self.refusal = status
        return HeadTooLarge(status)

    def send_400_response(self, msg: str) -> None:
        self.refuse(self.refusal)

    def refuse(self, status: HTTPStatus) -> None:
        """``{"detail": <reason phrase>}`` with ``status``, and the connection closed."""
        if self.transport.is_closing():
            return
        body = json.dumps({"detail": status.phrase}, separators=(",", ":")).encode()
        head = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()
