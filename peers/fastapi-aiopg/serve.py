"""Starts the fastapi-aiopg peer: `python serve.py`, configured by the environment only.

gunicorn's master with WORKERS uvicorn workers, each one asyncio event loop (not uvloop: see
`app.AsyncioUvicornWorker`) with httptools and its own aiopg pool of DB_POOL_SIZE connections
(psycopg2).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The peers are not installed packages: this folder and the shared contract go on the path.
sys.path[:0] = [str(HERE), str(HERE.parent / "common")]
# numpy's BLAS threads do nothing for the workload (elementwise) but would sit in every worker.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bakeoff_contract import config, serving  # noqa: E402

VARIANT = config.Variant(
    name="fastapi-aiopg",
    summary="FastAPI on uvicorn workers under gunicorn, an aiopg pool (psycopg2) per worker",
    workers_default="CPUs available to the process",
    pool_default="4 (4 x WORKERS in all, like actix-deadpool)",
    recycle_meaning="verified runs SELECT 1 on every checkout (aiopg has no checkout hook)",
    default_workers=config.available_cpus,
    default_pool_size=lambda workers: 4,
)


def main() -> None:
    settings = config.startup(VARIANT)
    # Imported after the configuration is read, so that a bad one exits before the framework
    # loads.
    from app import AsyncioUvicornWorker, create_app

    serving.run(
        VARIANT,
        settings,
        load_app=lambda: create_app(VARIANT, settings),
        worker_class=AsyncioUvicornWorker,
        # uvicorn's own default; gunicorn's (2 s) is meant for its sync workers.
        keepalive=5,
    )


if __name__ == "__main__":
    main()
