"""`python -m defendable_witness` runs the witness; `python -m defendable_witness vkey` prints its
C2SP verifier key (type 0x04), for verifiers to pin."""

import asyncio
import logging
import sys

from defendable_runtime import db

from . import store
from .config import load_signer, settings_from_env


async def print_vkey() -> None:
    settings = settings_from_env()
    pool = await db.create_pool(settings.database_url, max_size=1)
    try:
        await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)  # a generated key lives in the schema
        signer = await load_signer(pool, settings.name)
    finally:
        await pool.close()
    print(signer.verifier().vkey)


if sys.argv[1:] == ["vkey"]:
    asyncio.run(print_vkey())
elif sys.argv[1:]:
    sys.exit(f"usage: python -m defendable_witness [vkey]; not {' '.join(sys.argv[1:])!r}")
else:
    from .app import app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s witness %(levelname)s %(name)s: %(message)s")
    asyncio.run(app.run())
