"""Starts the flask-gunicorn peer: `python serve.py`, configured by the environment only.

gunicorn's master with WORKERS sync workers (one request at a time per process), each with its
own psycopg_pool pool of DB_POOL_SIZE connections.
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
    name="flask-gunicorn",
    summary="Flask under gunicorn sync workers, psycopg 3 with a psycopg_pool pool per worker",
    workers_default="2 x CPUs + 1, gunicorn's rule",
    pool_default="1 (a sync worker runs one request at a time)",
    recycle_meaning="verified runs psycopg_pool's check_connection, an empty query, per checkout",
    default_workers=lambda: 2 * config.available_cpus() + 1,
    default_pool_size=lambda workers: 1,
)


def main() -> None:
    settings = config.startup(VARIANT)
    # Imported after the configuration is read, so that a bad one exits before the framework
    # loads.
    from app import close_pool, create_app, open_pool

    def start_worker(worker) -> None:
        open_pool(worker.wsgi)
        serving.worker_ready()

    serving.run(
        VARIANT,
        settings,
        load_app=lambda: create_app(VARIANT, settings),
        worker_class="sync",
        # Pools are per process and opened after the fork, in the worker.
        post_worker_init=start_worker,
        worker_exit=lambda arbiter, worker: close_pool(worker.wsgi),
    )


if __name__ == "__main__":
    main()
