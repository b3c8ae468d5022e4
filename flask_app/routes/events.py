"""Account events: ``GET /users/me/events`` (server-sent events) and ``/ws`` (a WebSocket).

Both carry one user's events until the credential that opened them ends (services/
event_streams.py decides what is sent and when; streams.py carries it out in this thread).
The socket is flask-sock's (simple-websocket underneath), which works under gunicorn's
threaded worker, where the Flask twin runs.
"""

import threading

from flask import Blueprint, Response, g, request
from flask.typing import ResponseReturnValue
from flask_sock import Sock
from simple_websocket import Server
from wsproto.utilities import RemoteProtocolError

from flask_app.deps import (
    get_access_claims,
    get_client_ip,
    get_current_user,
    get_event_streams,
    get_runtime,
)
from flask_app.streams import (
    authenticate_socket,
    check_socket_handshake,
    check_socket_origin,
    end_connection,
    event_source_response,
    handshake_abandoned,
    handshake_refused,
    refuse_socket,
    release_socket_place,
    serve_socket,
    take_socket_place,
)
from shared.domain import errors
from shared.web.event_frames import EVENT_STREAM_HEADERS

bp = Blueprint("events", __name__)
sock = Sock()  # holds nothing: routes are registered on the blueprint (bp=bp)
# Before flask-sock's handshake: what uvicorn checks, then what the FastAPI twin checks
# before accepting.
bp.before_request(check_socket_handshake)
bp.before_request(check_socket_origin)
bp.before_request(take_socket_place)
bp.teardown_request(release_socket_place)
bp.register_error_handler(RemoteProtocolError, handshake_refused)
bp.register_error_handler(ConnectionError, handshake_abandoned)


@bp.get("/users/me/events")
def account_events() -> ResponseReturnValue:
    claims = get_access_claims()
    get_current_user()
    if request.method == "HEAD":  # what a stream would start with, and no stream
        return Response(headers=EVENT_STREAM_HEADERS)
    woken = threading.Event()
    streams = get_event_streams()
    stream = streams.open(
        claims,
        place=streams.take_place(get_client_ip()),
        last_event_id=request.headers.get("Last-Event-ID"),
        wake=woken.set,
    )
    return event_source_response(stream, streams, woken, request.environ)


@bp.get("/ws")
def account_socket_without_upgrade() -> ResponseReturnValue:
    raise errors.UpgradeRequired


@sock.route("/ws", bp=bp)  # type: ignore[untyped-decorator]  # flask-sock has no types
def account_socket(ws: Server) -> None:
    runtime = get_runtime()
    try:
        authenticated = authenticate_socket(
            ws, runtime.read_engine, runtime.tokens, runtime.settings.events_auth_seconds
        )
        if authenticated is None:
            return
        claims, last_event_id = authenticated
        streams = get_event_streams()
        try:
            stream = streams.open(
                claims, place=g.socket_place, last_event_id=last_event_id, wake=ws.event.set
            )
        except Exception as exc:
            refuse_socket(ws, exc)
            return
        serve_socket(ws, stream, streams, request.environ)
    finally:
        end_connection(ws)  # however the socket closed (simple-websocket's 1009, say)
