# One image for both twins; docker-compose.yml picks the server command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Production whoever runs the image (docker run, compose, another orchestrator): a secret is
# required, the schema is `authtwin migrate`'s job, hashing at OWASP's cost at least.
ENV AUTHTWIN_ENV=production
WORKDIR /app
RUN useradd --create-home --uid 10001 authtwin
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY fastapi_app ./fastapi_app
COPY flask_app ./flask_app
# The servers' hardening modules (deploy/servers.py imports them from the working directory).
COPY deploy ./deploy
RUN pip install --no-cache-dir ".[fastapi,flask]"
USER authtwin
EXPOSE 8000
# deploy/servers.py's command line for the FastAPI twin, one worker (docker-compose.yml
# runs both twins' replicas and the migration).
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "1", "--worker-class", "deploy.uvicorn_worker.AuthtwinUvicornWorker", "--backlog", "4096", "--keep-alive", "75", "--timeout", "120", "--graceful-timeout", "10", "--no-control-socket", "fastapi_app:create_app()"]
