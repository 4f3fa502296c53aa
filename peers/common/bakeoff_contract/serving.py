"""Running a peer under gunicorn, the process manager of every Python peer (what
`core::serving` and `core::shutdown` are to the Rust servers).

gunicorn's master binds the socket, forks WORKERS worker processes that share it and restarts any
that die; the peers differ only in the worker class: uvicorn's event loop for the ASGI peers,
gunicorn's own sync workers for Flask. It is embedded through gunicorn's documented custom
application API (`BaseApplication`), so that serve.py reads the environment exactly as the Rust
servers do before anything starts, and so that two contract rules hold that gunicorn's CLI does
not give: the `listening on http://ADDR` line with the real port (BIND may say port 0), printed
once every worker serves, and SIGINT draining like SIGTERM (gunicorn's SIGINT is a quick stop).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from .config import SHUTDOWN_DEADLINE_SECONDS, Settings, Variant

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Set in the master before the workers are forked, so that every worker inherits them.
_listening_address: str | None = None
_workers_expected = 0
_workers_ready = None  # a multiprocessing.Value counter, shared by the forked workers


def _note_address(arbiter: Arbiter) -> None:
    """gunicorn's `when_ready` hook, in the master once the socket is bound (before any worker
    exists): the real address, port 0 resolved."""
    global _listening_address
    host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
    _listening_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _die_with_master(arbiter: Arbiter, worker: object) -> None:
    """gunicorn's `post_fork` hook, in each new worker: ask Linux for SIGTERM when the master
    dies. gunicorn's sync workers notice a dead master, but uvicorn's do not, and a master
    killed with SIGKILL (a harness cleaning up) would leave them serving the socket forever."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logging.getLogger("bakeoff").warning(
            "prctl(PR_SET_PDEATHSIG) failed: %s", ctypes.get_errno()
        )
    # The master may have died between the fork and the prctl.
    if os.getppid() != arbiter.pid:
        os.kill(os.getpid(), signal.SIGTERM)


def worker_ready() -> None:
    """Called by each worker when it is ready to serve: the FastAPI peers at the end of their
    lifespan's startup (pool open, connections warmed), Flask and Django after opening their
    pools. The last of the first WORKERS workers prints `listening on http://ADDR`, so that the
    line means every worker serves: a request sent after it meets no worker still starting (whose
    startup statements would count against that request, or which a SIGTERM would cut)."""
    if _workers_ready is None or _listening_address is None:
        return
    with _workers_ready.get_lock():
        _workers_ready.value += 1
        if _workers_ready.value == _workers_expected:
            print(f"listening on http://{_listening_address}", flush=True)


class ContractArbiter(Arbiter):
    """gunicorn's master with the contract's signals and exit code."""

    requests_cut = False

    def handle_int(self) -> None:
        # gunicorn stops at once on SIGINT; the contract finishes in-flight requests on SIGINT
        # as on SIGTERM.
        self.handle_term()

    def kill_workers(self, sig: int) -> None:
        # stop() ends with SIGKILL for whatever outlived graceful_timeout: a request was cut.
        if sig == signal.SIGKILL and self.WORKERS:
            self.requests_cut = True
        super().kill_workers(sig)

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        try:
            super().halt(reason, exit_status)
        except SystemExit as exit_request:
            # As the Rust servers: exit code 1 when a request outlived the shutdown deadline.
            if self.requests_cut and exit_request.code in (0, None):
                raise SystemExit(1) from None
            raise


#: Settings of recent gunicorn releases that older ones, which have nothing to set, lack.
_NEWER_SETTINGS = frozenset({"control_socket_disable"})


class PeerApplication(BaseApplication):
    """A peer's app under gunicorn, configured from Settings instead of gunicorn's CLI."""

    def __init__(self, load_app: Callable[[], object], options: dict) -> None:
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            # gunicorn 23, the last for Python 3.9 (the PyPy peer's), has no control socket to
            # turn off.
            if name in _NEWER_SETTINGS and name not in self.cfg.settings:
                continue
            self.cfg.set(name, value)

    def load(self) -> object:
        return self._load_app()

    def run(self) -> None:
        ContractArbiter(self).run()


def run(
    variant: Variant,
    settings: Settings,
    load_app: Callable[[], object],
    worker_class: str | type,
    **options: object,
) -> None:
    """Serves `load_app()` with `settings.workers` processes of `worker_class` until SIGTERM or
    SIGINT; returns never (the master exits 0 after draining)."""
    global _workers_expected, _workers_ready
    _workers_expected = settings.workers
    _workers_ready = multiprocessing.Value("i", 0)
    # The level on the handler too: some libraries set their own loggers' levels (psycopg's is
    # WARNING), which a root level alone does not override.
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setLevel(settings.log_level.upper())
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[log_handler],
    )
    gunicorn_options = {
        "bind": [settings.bind],
        "workers": settings.workers,
        "worker_class": worker_class,
        # The app (and the workload's matrix) is built once in the master and shared by the
        # forked workers; database pools are opened in each worker, after the fork.
        "preload_app": True,
        "when_ready": _note_address,
        "post_fork": _die_with_master,
        "graceful_timeout": SHUTDOWN_DEADLINE_SECONDS,
        # A worker silent for this long is killed. Above the contract's longest wait
        # (/test/*-iobound/60000), so that no legal wait is cut; the CPU endpoints can still be
        # asked for more work than that.
        "timeout": 70,
        "loglevel": settings.log_level,
        "errorlog": "-",
        "accesslog": None,
        "proc_name": variant.name,
        # gunicorn's control socket (new in its recent releases) is for operators; several peers
        # at once would share its default path.
        "control_socket_disable": True,
    }
    gunicorn_options.update(options)
    PeerApplication(load_app, gunicorn_options).run()
