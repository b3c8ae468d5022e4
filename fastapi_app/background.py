"""Mail after the response, the FastAPI way: ``BackgroundTasks`` (flask_app/background.py
is the Flask twin's pool of its own).

What it guarantees: the task runs in this process once the response has been sent, and a
sync function such as ``MailDelivery.deliver`` runs in the threadpool, never on the event
loop. What it does not: it shares the threadpool with the sync routes (a slow SMTP server
holds one of their threads, which is why delivery pauses after a failure), and it is gone if
the process dies first. That is what the outbox is for: the message was committed with the
request, and ``authtwin deliver-mail`` sends whatever a background task did not.
"""

from fastapi import BackgroundTasks
from sqlalchemy.orm import Session

from shared.services.mail_delivery import MailDelivery
from shared.services.outbox import queued_in


def send_mail_after_response(
    background: BackgroundTasks, session: Session, delivery: MailDelivery
) -> None:
    """Hand the messages the request committed to a task that runs after the response."""
    if ids := queued_in(session):
        background.add_task(delivery.deliver, ids)
