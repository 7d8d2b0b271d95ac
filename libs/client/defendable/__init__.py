"""Defendable's Python client: `from defendable.client import Client, AsyncClient`."""
