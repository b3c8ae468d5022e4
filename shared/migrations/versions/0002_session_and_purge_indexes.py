"""Indexes for sessions and the purge: live rows by family, family ends, expiry.

The bearer lookup now asks, on every request, whether the token's family (its session) has
a live refresh token; the purge finds dead families by the row that ended each, and expired
rows by ``expires_at``. Partial indexes, so the first two hold only the few rows they are
for, and a long session's pile of spent rows never slows the lookup.

Revision ID: 0002
Revises: 0001
Created: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "revoked_at IS NULL"
ENDED = "revoked_at IS NOT NULL AND replaced_by IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_refresh_tokens_live_family",
        "refresh_tokens",
        ["family_id"],
        postgresql_where=sa.text(LIVE),
        sqlite_where=sa.text(LIVE),
    )
    op.create_index(
        "ix_refresh_tokens_ended_family",
        "refresh_tokens",
        ["family_id"],
        postgresql_where=sa.text(ENDED),
        sqlite_where=sa.text(ENDED),
    )
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_tokens_expires_at"), table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_ended_family", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_live_family", table_name="refresh_tokens")
