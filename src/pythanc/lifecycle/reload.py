"""``"Python": {"Reload": true}``: run a script again when its file changes, without restarting Orthanc.

A thread polls the scripts' modification times (once a second).  When one changes, the callbacks
that the script registered (those whose ``__module__`` is the script's module) are taken out, and
the new version is run.  If it fails (syntax error, exception), what it registered is removed,
the previous callbacks are put back, and the reason is logged: the previous version keeps running.

Orthanc cannot unregister a REST route: a route that the new version no longer has answers 404.
"""

import os
import threading

from ..callbacks import registry
from ..core.log import log_error, log_warning
from ..core.tracebacks import format_exception
from ..workers import pool
from .scripts import exec_script

_state = {"thread": None, "stop": None}
POLL_SECONDS = 1.0


def _mtime(path):
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def reload_script(name, path):
    """Run ``path`` again as module ``name``; True if the new version is in place."""
    try:
        with open(path, "rb") as f:
            compile(f.read(), path, "exec")
    except BaseException:
        log_error("pythanc: not reloading %s, it does not compile; the previous version keeps "
                  "running:\n%s" % (path, format_exception()))
        return False
    saved = registry.take_owned(name)
    try:
        exec_script(name, path)
    except BaseException:
        registry.take_owned(name)  # drop what the failed version registered
        registry.put_back(saved)
        log_error("pythanc: reloading %s failed; the previous version keeps running:\n%s"
                  % (path, format_exception()))
        return False
    log_warning("pythanc: reloaded %s" % path)
    pool.recycle()  # worker processes start again with the new version
    return True


def _run(paths, stop):
    seen = {name: _mtime(p) for name, p in paths.items()}
    while not stop.wait(POLL_SECONDS):
        for name, path in paths.items():
            m = _mtime(path)
            if m is not None and m != seen[name]:
                seen[name] = m
                try:
                    reload_script(name, path)
                except BaseException:
                    pass


def start(paths):
    stop()
    ev = threading.Event()
    t = threading.Thread(target=_run, args=(paths, ev), name="PY-RELOAD", daemon=True)
    _state.update(thread=t, stop=ev)
    t.start()


def stop():
    ev, t = _state["stop"], _state["thread"]
    if ev is not None:
        ev.set()
        t.join(5)
    _state.update(thread=None, stop=None)
