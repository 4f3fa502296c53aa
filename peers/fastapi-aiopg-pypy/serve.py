"""Starts the fastapi-aiopg-pypy peer: `pypy3 serve.py` (the PyPy environment's Python),
configured by the environment only.

fastapi-aiopg's application (`../fastapi-aiopg/app.py`, the same module) under PyPy: gunicorn's
master with WORKERS uvicorn workers, each one asyncio event loop (as under CPython) with h11
(httptools has no PyPy build) and its own aiopg pool of DB_POOL_SIZE connections. psycopg2 is a C
extension PyPy cannot load well; psycopg2cffi, its cffi port, is registered under psycopg2's name
before anything imports it.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE.parent / "fastapi-aiopg"
# The peers are not installed packages: the CPython peer's folder (its app.py) and the shared
# contract go on the path.
sys.path[:0] = [str(APP), str(HERE.parent / "common")]
# numpy's BLAS threads do nothing for the workload (elementwise) but would sit in every worker.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bakeoff_contract import config, serving  # noqa: E402

VARIANT = config.Variant(
    name="fastapi-aiopg-pypy",
    summary="fastapi-aiopg's app under PyPy: FastAPI on uvicorn workers, aiopg over psycopg2cffi",
    workers_default="CPUs available to the process",
    pool_default="4 (4 x WORKERS in all, like actix-deadpool)",
    recycle_meaning="verified runs SELECT 1 on every checkout (aiopg has no checkout hook)",
    default_workers=config.available_cpus,
    default_pool_size=lambda workers: 4,
)


def main() -> None:
    settings = config.startup(VARIANT)
    # Imported after the configuration is read, so that a bad one exits before the framework
    # loads; psycopg2cffi first, so that aiopg's `import psycopg2` finds it.
    from psycopg2cffi import compat

    compat.register()
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
