"""Use cases: plain functions over a SQLAlchemy ``Session`` that raise ``shared.errors``.

Each owns its transaction (it commits), takes keyword-only arguments, and knows nothing of
HTTP; both apps call the very same functions.
"""
