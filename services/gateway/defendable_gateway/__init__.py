"""Defendable gateway service."""
