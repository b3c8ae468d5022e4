# One image for both twins; docker-compose.yml picks the server command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN useradd --create-home --uid 10001 authtwin
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY fastapi_app ./fastapi_app
COPY flask_app ./flask_app
RUN pip install --no-cache-dir ".[fastapi,flask]"
USER authtwin
EXPOSE 8000
CMD ["uvicorn", "--factory", "fastapi_app:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-server-header", "--no-proxy-headers"]
