"""Use cases: ``AuthService``, ``UserService`` and ``AdminService`` (with the ``TokenStore``
they share), built once per app and holding their collaborators; and the two reads every
request may make, ``identity`` (token → user) and ``health``, plain functions over a read
engine.

The services take the request's SQLAlchemy ``Session`` and its validated input as keyword
arguments, raise ``shared.domain.errors``, own their transaction
(they commit) and know nothing of HTTP; both apps call the very same methods.
"""
