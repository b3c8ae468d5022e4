"""Tokens, password hashing and policy, and throttling: the primitives the services combine.

tokens.py and passwords.py are the only importers of python-jose and passlib, and throttle.py
the only user of limits' rate limiter (config.py only parses the rate with it), so swapping
a library is a change to one module.
"""
