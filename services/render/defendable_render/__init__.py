"""Defendable render service."""
