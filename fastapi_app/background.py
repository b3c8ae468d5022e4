"""Mail after the response, the FastAPI way: ``BackgroundTasks`` says when, the runtime's
``MailPool`` says where (flask_app/background.py hands over to the same pool).

What ``BackgroundTasks`` guarantees: the task runs in this process once the response has
been sent. Where it runs is the catch: an ``async def`` task on the event loop, a plain
``def`` (``MailDelivery.deliver``) in AnyIO's threadpool, the one the sync routes share, a
few threads a worker (app.py). A mail server that answers each SMTP step just inside the
timeout then holds those threads, and login, signup and refresh queue behind the mail. So
the task here only hands the ids to the pool, without blocking, from the event loop; the
sending happens on the pool's own threads. The cost: two more threads a worker, and a
bounded queue whose overflow waits in the outbox for ``authtwin deliver-mail``, as does
whatever a process that stops or dies did not send.
"""

from fastapi import BackgroundTasks
from sqlalchemy.orm import Session

from shared.services.mail_pool import MailPool
from shared.services.outbox import queued_in


def send_mail_after_response(background: BackgroundTasks, session: Session, pool: MailPool) -> None:
    """Hand the messages the request committed to the pool, after the response."""
    if ids := queued_in(session):
        background.add_task(_hand_over, pool, ids)


async def _hand_over(pool: MailPool, ids: list[int]) -> None:
    # async: run on the event loop, not in the threadpool; submit never blocks.
    pool.submit(ids)
