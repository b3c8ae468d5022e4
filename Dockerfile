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
# deploy/servers.py's command line for the FastAPI twin, one process (docker-compose.yml
# runs both twins' replicas and the migration).
CMD ["uvicorn", "--factory", "fastapi_app:create_app", "--host", "0.0.0.0", "--port", "8000", "--workers", "1", "--backlog", "4096", "--timeout-keep-alive", "75", "--no-server-header", "--no-proxy-headers", "--no-access-log", "--http", "deploy.uvicorn_protocol:LimitedHttpToolsProtocol", "--timeout-graceful-shutdown", "10"]
