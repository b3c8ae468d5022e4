"""Flask's ceiling on this machine: one view, no hooks, no database.

Served exactly as the twin is (same server, same workers), it tells how many requests per
second the framework and server alone can answer; the twin's routes are judged against it.
"""

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__, static_folder=None)

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"message": "hello"}

    return app
