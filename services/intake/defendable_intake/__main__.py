"""`python -m defendable_intake` runs the intake service."""

import asyncio
import logging

from .app import app

logging.basicConfig(level=logging.INFO, format="%(asctime)s intake %(levelname)s %(name)s: %(message)s")
asyncio.run(app.run())
