"""Defendable's one shared library: canonical JSON, digests, wire types, chain maths.

Pure: no I/O, no clock, no environment. Services import it; it imports no service.
"""
