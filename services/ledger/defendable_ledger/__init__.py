"""Defendable ledger service."""
