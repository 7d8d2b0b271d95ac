"""The `defendable` command line."""
