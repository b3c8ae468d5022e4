"""FastAPI's ceiling on this machine: one ``async def`` route, no middleware, no database.

Served exactly as the twin is (same server, same workers), it tells how many requests per
second the framework and server alone can answer; the twin's routes are judged against it.
"""

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"message": "hello"}

    return app
