"""Defendable witness: cosigns the ledger's checkpoints (C2SP tlog-witness), from its own key and storage."""
