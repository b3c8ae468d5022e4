"""Tokens, password hashing and policy, and throttling: the primitives the services combine.

Each is the only importer of its library (python-jose, passlib, limits), so swapping one is a
change to one module.
"""
