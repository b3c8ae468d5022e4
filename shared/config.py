"""Settings, read from the environment (prefix ``AUTHTWIN_``) once per app and passed in."""

import logging
import secrets
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger("authtwin")

MIN_SECRET_BYTES = 32
# Values seen in tutorials and .env templates; a deployment that kept one has no secret at all.
PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "change-me", "changeme", "secret", "your-secret-key", "supersecret"}
)


class Settings(BaseSettings):
    """Everything an app needs to know about its deployment; built once, never global."""

    model_config = SettingsConfigDict(env_prefix="AUTHTWIN_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    secret_key: SecretStr | None = None
    database_url: str = "sqlite:///./authtwin.db"
    # Per-process pool; size it to the process's concurrency (threads, or in-flight requests).
    db_pool_size: int = Field(default=20, ge=1, le=500)
    create_tables: bool = True

    jwt_issuer: str = "authtwin"
    jwt_audience: str = "authtwin-api"
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    refresh_token_days: int = Field(default=14, ge=1, le=90)

    # OWASP Password Storage Cheat Sheet's argon2id minimum: m=19 MiB, t=2, p=1.
    argon2_memory_kib: int = Field(default=19_456, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)

    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None

    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    @model_validator(mode="after")
    def _require_real_secret_outside_development(self) -> "Settings":
        """Refuse to build production settings whose tokens anyone could forge."""
        if self.env == "development":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if not key:
            raise ValueError("AUTHTWIN_SECRET_KEY must be set outside development")
        if key.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("AUTHTWIN_SECRET_KEY is a well-known placeholder; generate one")
        if len(key.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"AUTHTWIN_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self

    def signing_key(self) -> str:
        """The HS256 key; in development a random one, so tokens die with the process."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        logger.warning(
            "AUTHTWIN_SECRET_KEY is not set: using a random key; tokens will not survive "
            "a restart and are not shared between worker processes"
        )
        return secrets.token_urlsafe(MIN_SECRET_BYTES)
