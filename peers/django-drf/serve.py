"""Starts the django-drf peer: `python serve.py`, configured by the environment only.

gunicorn's master with WORKERS uvicorn workers (`uvicorn_worker.UvicornWorker`) serving Django's
ASGI application, each worker with its own psycopg pool (Django's `OPTIONS["pool"]`) of
DB_POOL_SIZE connections.
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
    name="django-drf",
    summary="Django REST framework on uvicorn workers under gunicorn, Django's psycopg pool",
    workers_default="2 x CPUs + 1, gunicorn's rule",
    pool_default="4 per worker process",
    recycle_meaning="verified runs psycopg_pool's check_connection, an empty query, per checkout",
    default_workers=lambda: 2 * config.available_cpus() + 1,
    default_pool_size=lambda workers: 4,
)


def load_app(settings: config.Settings):
    """Django's ASGI application, set up once in gunicorn's master (the workers fork from it)."""
    import django
    from django.conf import settings as django_settings
    from django.core.asgi import get_asgi_application

    from bakeoff_contract import workload
    from contactsite.settings import django_settings as project_settings

    django_settings.configure(**project_settings(VARIANT, settings))
    django.setup()
    workload.warm_up()
    return get_asgi_application()


def start_worker(worker) -> None:
    """gunicorn's `post_worker_init`, in each worker: opens its pool in the background (a
    database that is down delays nothing: requests wait for a connection up to
    DB_WAIT_TIMEOUT_MS, then get 503), then reports the worker ready."""
    from django.db import connection

    connection.pool.open(wait=False)
    serving.worker_ready()


def stop_worker(arbiter, worker) -> None:
    from django.db import connection

    connection.pool.close(timeout=1)


def main() -> None:
    settings = config.startup(VARIANT)
    serving.run(
        VARIANT,
        settings,
        load_app=lambda: load_app(settings),
        worker_class="uvicorn_worker.UvicornWorker",
        # uvicorn's own default; gunicorn's (2 s) is meant for its sync workers.
        keepalive=5,
        post_worker_init=start_worker,
        worker_exit=stop_worker,
    )


if __name__ == "__main__":
    main()
