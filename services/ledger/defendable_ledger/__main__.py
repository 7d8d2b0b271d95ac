"""`python -m defendable_ledger` runs the ledger service."""

import asyncio
import logging

from .app import app

logging.basicConfig(level=logging.INFO, format="%(asctime)s ledger %(levelname)s %(name)s: %(message)s")
asyncio.run(app.run())
