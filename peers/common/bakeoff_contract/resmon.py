"""`GET /test/resmon` (`core::resmon`): the answering process reading itself from /proc.

Under gunicorn that is the worker process that took the request, not the master; `workers` says
how many such processes there are, `db_pool_size` is each one's pool and `db_recycle` its
connection-check policy.
"""

from __future__ import annotations

import os

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def snapshot(variant: str, workers: int, db_pool_size: int, db_recycle: str) -> dict:
    """The body, in core's field order."""
    with open("/proc/self/stat", "rb") as stat_file:
        stat = stat_file.read()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    # fields[0] is field 3 of proc(5) (state); field N is fields[N - 3].
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    threads = int(fields[17])
    start_ticks = int(fields[19])
    rss_pages = int(fields[21])
    with open("/proc/uptime", "rb") as uptime_file:
        system_uptime = float(uptime_file.read().split()[0])
    return {
        "variant": variant,
        "pid": os.getpid(),
        "threads": threads,
        "rss_bytes": rss_pages * _PAGE_SIZE,
        "cpu_user_seconds": user_ticks / _TICKS_PER_SECOND,
        "cpu_system_seconds": system_ticks / _TICKS_PER_SECOND,
        "uptime_seconds": max(system_uptime - start_ticks / _TICKS_PER_SECOND, 0.0),
        # Every worker process serves the port, so the processes are the workers (PROCESSES in
        # core's terms; gunicorn's master serves nothing and is not counted).
        "processes": workers,
        "workers": workers,
        "db_pool_size": db_pool_size,
        "db_recycle": db_recycle,
    }
