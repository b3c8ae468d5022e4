"""The threads that send mail after a response, apart from the threads that answer requests.

A request only hands the ids it committed to ``MailPool.submit``, which never blocks: a mail
server that takes its time holds one of these threads, never a request's. Both twins use it
(fastapi_app/background.py, flask_app/background.py). Its bounds: ``WORKERS`` threads, and
at most ``MAX_PENDING`` handovers waiting, so an SMTP outage cannot grow memory; what does
not fit stays in the outbox for ``authtwin deliver-mail``.

Stopping (a server's SIGTERM) claims nothing new: what waits in the queue stays in the outbox,
a send under way has ``STOP_GRACE_SECONDS`` to finish, and a message still unsent then is let
go at once (``MailDelivery.release_unsent``) rather than held for a lease by a process about
to exit. The threads are daemons, so that exit does not wait for a slow mail server either.
"""

import logging
import queue
import threading
import time

from shared.services.mail_delivery import MailDelivery

logger = logging.getLogger("authtwin.mail")
WORKERS = 2
MAX_PENDING = 1000
# Part of a server's graceful shutdown (deploy/servers.py; deploy/uvicorn_worker.py leaves it
# room after the drain): a send that ends by then is marked sent; the rest is released for
# the next sender.
STOP_GRACE_SECONDS = 3.0


class MailPool:
    def __init__(self, *, delivery: MailDelivery, workers: int = WORKERS) -> None:
        self._delivery = delivery
        self._workers = workers
        self._queue: queue.Queue[list[int] | None] = queue.Queue(maxsize=MAX_PENDING)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, ids: list[int]) -> None:
        """Queue ``ids`` for delivery; never blocks, and never raises for a full queue."""
        with self._lock:
            if self._stopped:
                return  # in the outbox, for the next sender
            # Started on first use: after gunicorn has forked, never in the master.
            while len(self._threads) < self._workers:
                self._threads.append(self._start_thread(len(self._threads)))
        try:
            self._queue.put_nowait(ids)
        except queue.Full:
            logger.warning("mail queue full: %s message(s) left to the worker", len(ids))

    def shutdown(self, *, grace: float = STOP_GRACE_SECONDS) -> None:
        """Claim nothing new, give the sends under way ``grace`` seconds, let go of the rest."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            threads = list(self._threads)
        self._delivery.stop()
        self._drop_queued()
        for _ in threads:
            self._queue.put(None)  # room enough: the queue was just emptied
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))
        self._delivery.release_unsent()

    def _start_thread(self, number: int) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"authtwin-mail-{number}", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while (ids := self._queue.get()) is not None:
            self._delivery.deliver(ids)  # never raises: it logs what went wrong

    def _drop_queued(self) -> None:
        """Empty the queue: its messages stay in the outbox, unclaimed."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
