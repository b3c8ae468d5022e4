"""authtwin's framework-free core: everything both twins share, laid out by role.

- ``infrastructure``: settings, the database engines and sessions, logs; no domain.
- ``domain``: the tables, the contract's models and the errors: the service's vocabulary.
- ``security``: tokens, password hashing and policy, throttling, over that vocabulary.
- ``services``: the use cases, as objects that hold the security pieces they need.
- ``web``: what both twins follow over HTTP (headers, bodies, CORS, client address, docs,
  the OpenAPI contract). Only the apps, and the runtime that builds their CORS policy,
  import it.
- ``runtime``: builds all of it for one app; ``cli``: the ``authtwin`` command.
- ``migrations``: Alembic's environment and the schema's revisions. No module imports it:
  Alembic loads it from its directory, run by ``infrastructure/migrations.py``.

Each layer imports only those listed before it (``web`` imports none of them), and nothing
here imports a web framework; tests/test_layout.py holds both rules.
"""
