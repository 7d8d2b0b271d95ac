"""`python -m defendable_referee` runs the referee service."""

import asyncio
import logging

from .app import app

logging.basicConfig(level=logging.INFO, format="%(asctime)s referee %(levelname)s %(name)s: %(message)s")
asyncio.run(app.run())
