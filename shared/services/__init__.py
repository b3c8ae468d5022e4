"""Use cases, as objects built once per app that hold their collaborators.

``AuthService`` and ``UserService`` take the request's SQLAlchemy ``Session`` and its
validated input as keyword arguments, raise ``shared.domain.errors``, own their transaction
(they commit) and know nothing of HTTP; both apps call the very same methods.
"""
