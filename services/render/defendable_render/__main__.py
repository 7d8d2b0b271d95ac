"""`python -m defendable_render` runs the render service."""

import asyncio
import logging

from .app import app

logging.basicConfig(level=logging.INFO, format="%(asctime)s render %(levelname)s %(name)s: %(message)s")
asyncio.run(app.run())
