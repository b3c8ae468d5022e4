"""How the twins are run in production: server command lines, the proxy, a local cluster."""
