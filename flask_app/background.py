"""Mail after the response, the Flask way: WSGI has no background tasks (a view returns, the
server sends, the thread takes the next request), so the app owns a small pool of its own
(fastapi_app/background.py is FastAPI's ``BackgroundTasks``).

What it guarantees: sending never holds a request thread, and at most ``MAX_PENDING``
deliveries wait, so an SMTP outage cannot grow memory. The pool is started by the factory
(its threads on first use, after gunicorn has forked) and stopped at exit, when it finishes
what it was given. What it does not: survive the process. A message it never sent (the
process died, the queue was full) is still in the outbox, for ``authtwin deliver-mail``.
"""

import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, current_app

from flask_app.deps import get_mail_delivery, get_session
from shared.services.mail_delivery import MailDelivery
from shared.services.outbox import queued_in

logger = logging.getLogger("authtwin.mail")
WORKERS = 2
MAX_PENDING = 1000
EXTENSION = "authtwin.mail_worker"


class MailWorker:
    """A bounded thread pool that delivers outbox messages."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="authtwin-mail")
        self._slots = threading.BoundedSemaphore(MAX_PENDING)

    def submit(self, delivery: MailDelivery, ids: list[int]) -> None:
        if not self._slots.acquire(blocking=False):
            logger.warning("mail queue full: %s message(s) left to the worker", len(ids))
            return
        future = self._pool.submit(delivery.deliver, ids)
        future.add_done_callback(lambda _: self._slots.release())

    def shutdown(self) -> None:
        """Finish what was submitted, then stop the threads."""
        self._pool.shutdown(wait=True)


def install_mail_worker(app: Flask) -> MailWorker:
    worker = MailWorker()
    app.extensions[EXTENSION] = worker
    # Stopped when the app is collected, or at interpreter exit (a gunicorn worker's too):
    # weakref.finalize runs at exit what has not run yet.
    weakref.finalize(app, worker.shutdown)
    return worker


def send_mail_after_response() -> None:
    """Hand the messages the request committed to the app's pool."""
    if ids := queued_in(get_session()):
        worker: MailWorker = current_app.extensions[EXTENSION]
        worker.submit(get_mail_delivery(), ids)
