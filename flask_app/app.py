"""Application factory: settings in, a configured Flask app out; no import-time state."""

from flask import Flask

from flask_app.background import stop_mail_pool_at_exit
from flask_app.deps import close_session
from flask_app.errors import install_error_handlers
from flask_app.middleware import install_middleware
from flask_app.routes import api_bp, docs, pages, well_known
from flask_app.validation import install_validation
from shared.infrastructure.config import Settings
from shared.runtime import Runtime
from shared.web.event_frames import MAX_SOCKET_MESSAGE_BYTES


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    runtime = Runtime.build(settings)
    # WSGI has no lifespan: start-up work runs here, in the factory, once per process.
    runtime.prepare()

    app = Flask(__name__, static_folder=None)  # an API: no static files
    # No implicit OPTIONS answers: FastAPI has none, and CORS is a deliberate choice, not a default.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    # /users//me is a 404, as in FastAPI; Werkzeug would redirect it to /users/me. (A trailing
    # slash needs no setting: Werkzeug redirects only to rules that end in one, and none does.)
    app.url_map.merge_slashes = False
    app.extensions["authtwin"] = runtime
    # flask-sock's sockets (routes/events.py): uvicorn's --ws-max-size on the FastAPI side.
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": MAX_SOCKET_MESSAGE_BYTES}

    install_middleware(app)
    install_error_handlers(app)
    install_validation(app)  # what FastAPI does by itself: parse and validate, serialise
    stop_mail_pool_at_exit(app)  # FastAPI's lifespan does it there: see background.py
    app.teardown_appcontext(close_session)  # FastAPI's get_session closes its own session
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(well_known.bp)  # at the root, where RFC 8615 puts it
    app.register_blueprint(docs.bp)
    app.register_blueprint(pages.bp)  # at the root, where the mailed links point
    return app
