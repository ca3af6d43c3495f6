"""gunicorn settings for the pre-fork example: the master loads app.py once
(preload_app), and before it forks the first worker, when_ready() makes the
whole heap immortal with pyimmortal and freezes the garbage collector, so
that workers that only read the data share its pages with the master.

    gunicorn -c gunicorn.conf.py

Environment:
    PREFORK_IMMORTALIZE=0   skip the hook (the same app, as gunicorn runs it
                            without pyimmortal)
    PREFORK_BIND            address to listen on (default 127.0.0.1:8000)
    PREFORK_WORKERS         number of workers (default 4)
    PREFORK_HEAP_MB         size of the data set (app.py, default 200)
"""

import gc
import os
import time

wsgi_app = "app:application"
preload_app = True
bind = [os.environ.get("PREFORK_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("PREFORK_WORKERS", "4"))
# A full read of 200 MB takes about a second; leave room on a busy machine.
timeout = 120
# gunicorn 25.1+ serves a control socket from a thread of the master, started
# after the first workers are forked. This example needs none, and a master
# without threads is what immortalize_heap() needs on a free-threaded build
# (older gunicorn ignores the setting).
control_socket_disable = True


def when_ready(server):
    """Runs once in the master, after the app is loaded and before the first
    fork (a pre_fork hook would run before every fork)."""
    if os.environ.get("PREFORK_IMMORTALIZE", "1") == "0":
        server.log.info("prefork: PREFORK_IMMORTALIZE=0: heap left as it is")
        return
    import pyimmortal

    gc.collect()  # what is garbage now would otherwise live forever
    start = time.perf_counter()
    try:
        count = pyimmortal.immortalize_heap()
    except (NotImplementedError, RuntimeError) as exc:
        # NotImplementedError: CPython 3.9-3.11 has no immortal objects.
        # RuntimeError: a free-threaded build with other threads running.
        server.log.warning("prefork: pyimmortal.immortalize_heap() failed, workers will copy the pages "
                           "they read: %s: %s", type(exc).__name__, exc)
    else:
        server.log.info("prefork: pyimmortal.immortalize_heap() made %d objects immortal in %.2f s",
                        count, time.perf_counter() - start)
    gc.freeze()
    server.log.info("prefork: gc.freeze(): %d objects frozen", gc.get_freeze_count())
