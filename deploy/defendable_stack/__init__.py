"""Local stack launcher: servers from PyPI packages, the five services, the demo."""
