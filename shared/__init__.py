"""authtwin's framework-free core: settings, database, schemas, security and services.

Nothing in this package imports a web framework; both apps translate HTTP into calls to it.
"""
