"""Alembic's migration environment: env.py, the template of a new revision, and versions/.

Not imported by the service: Alembic loads these files from their directory, run through
shared/infrastructure/migrations.py (``authtwin migrate``, or start-up in development).
"""
