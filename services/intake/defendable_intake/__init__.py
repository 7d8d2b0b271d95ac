"""Defendable intake service."""
