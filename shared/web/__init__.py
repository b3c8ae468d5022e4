"""The HTTP conventions both twins follow, framework-free; for the apps, never the core.

Response headers, request bodies (methods, media type, size), CORS, the client's address,
the docs pages and the OpenAPI contract.
"""
