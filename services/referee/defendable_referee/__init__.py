"""Defendable referee service."""
