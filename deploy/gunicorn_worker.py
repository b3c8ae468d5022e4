"""gunicorn's ``gthread`` worker, refusing new connections from the moment it stops.

On SIGTERM gunicorn's arbiter closes its copy of the listening socket, but each worker
keeps its own until it has drained the connections it holds (up to ``--graceful-timeout``):
the kernel goes on completing connections nobody will accept, clients send their requests
on them, and at the worker's exit they are reset, so a client cannot know whether its POST
ran. Closing the worker's copy as soon as it stops accepting closes the socket itself once
every worker has: a new client is refused at once, before it sent anything, and can retry
elsewhere. (deploy/servers.py passes it as ``--worker-class``, a documented extension
point; tests/test_server_hardening.py pins the behaviour.)
"""

from gunicorn.workers.gthread import ThreadWorker


class DrainingThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no types
    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        # gthread disables accepting when it stops, and also while it holds as many
        # connections as --worker-connections allows: only the first closes the socket.
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()  # gthread's run() closes them again at its end: a no-op
