"""Local stack launcher: servers from PyPI packages, the services and the witness, the demo."""
