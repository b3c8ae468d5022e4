"""The HTTP conventions both twins follow, framework-free: for the apps, and the runtime that
builds their CORS policy; no layer of the core imports it.

Response headers, request bodies (methods, media type, size), CORS, the client's address,
the docs pages and the OpenAPI contract.
"""
