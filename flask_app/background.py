"""Mail after the response, the Flask way: WSGI has no background tasks (a view returns, the
server sends, the thread takes the next request), so the request hands its messages to the
runtime's ``MailPool``, threads apart from gunicorn's (fastapi_app/background.py reaches the
same pool through ``BackgroundTasks``).

What it guarantees: sending never holds a request thread, and the pool's queue is bounded
(services/mail_pool.py). The pool's threads start on first use, after gunicorn has forked;
it is stopped at exit, when it claims nothing more and lets go of what it had not sent.
What it does not: survive the process. A message it never sent (the process died, the
queue was full) is still in the outbox, for ``authtwin deliver-mail``.
"""

import weakref

from flask import Flask

from flask_app.deps import get_mail_pool, get_session
from shared.runtime import Runtime
from shared.services.outbox import queued_in


def stop_mail_pool_at_exit(app: Flask) -> None:
    """WSGI has no lifespan: the pool is stopped when the app is collected, or at the
    process's exit (a gunicorn worker's too), which is when ``weakref.finalize`` runs what
    has not run yet. FastAPI's lifespan stops it after the last request instead."""
    runtime: Runtime = app.extensions["authtwin"]
    weakref.finalize(app, runtime.mail_pool.shutdown)


def send_mail_after_response() -> None:
    """Hand the messages the request committed to the pool."""
    if ids := queued_in(get_session()):
        get_mail_pool().submit(ids)
