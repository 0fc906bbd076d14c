"""Change callbacks: ``orthanc.RegisterOnChangeCallback``.

Orthanc's changes are queued and delivered in order on one thread of pythanc's (``PY-CHANGES``),
so a callback may call the REST API without blocking Orthanc's own thread.
"""

import collections
import threading

from ..core.context import ffi, lib
from ..core.convert import _ctx, text
from ..core.log import log_error, log_exception
from ..workers import pool
from .registry import STORE, ERR_SUCCESS, ERR_PLUGIN, append, sdk_registration, on_reset, on_shutdown

__all__ = ["RegisterOnChangeCallback"]

ORTHANC_STOPPED = 11   # OrthancPluginChangeType_OrthancStopped


class _ChangeThread:
    """The thread that delivers the queued changes to every registered callback, in order."""
    STOP_TIMEOUT = 60.0

    def __init__(self):
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.busy = False
        self.stopping = False
        self.thread = threading.Thread(target=self.run, name="PY-CHANGES", daemon=True)
        self.thread.start()

    def push(self, event):
        with self.cond:
            self.queue.append(event)
            self.cond.notify_all()

    def run(self):
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if not self.queue:
                    return
                event = self.queue.popleft()
                self.busy = True
            try:
                for cb in list(STORE.lists["changes"]):
                    try:
                        cb(*event)
                    except BaseException:
                        log_exception("Python on-change callback")
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()

    def drain(self, timeout):
        """Wait until every queued event has been delivered; True if it was in time."""
        with self.cond:
            return self.cond.wait_for(lambda: not self.queue and not self.busy, timeout)

    def stop(self, timeout):
        ok = self.drain(timeout)
        with self.cond:
            self.stopping = True
            self.queue.clear()
            self.cond.notify_all()
        self.thread.join(1.0)
        return ok


_thread = [None]   # the _ChangeThread of this run, once a change callback is registered


@on_reset
def _forget_thread():
    _thread[0] = None


@on_shutdown
def _stop_thread():
    t = _thread[0]
    if t is not None:
        t.stop(5.0)


def RegisterOnChangeCallback(callback, *, worker=False):
    """Register ``callback(changeType: int, level: int, resourceId: str)`` for Orthanc's changes.

    Changes are queued and delivered in order on one thread (``PY-CHANGES``), so the callback may
    call the REST API.  ``ORTHANC_STOPPED`` is delivered after every pending change, before Orthanc
    stops.  Several callbacks may be registered; each change goes to each, in registration order.

    pythanc: ``worker=True`` runs the callback in a worker process (see ``RegisterRestCallback``);
    changes are still delivered one at a time, in order.
    """
    if worker and callable(callback):
        callback = pool.offload("change", callback)
    append("changes", callback, "Python on-change callback", "RegisterOnChangeCallback")


@sdk_registration("changes", at_start_only="Orthanc 1.10 adds a change callback to a list that it reads "
                  "without a lock while it delivers changes")
def _register():
    _thread[0] = _ChangeThread()
    lib.OrthancPluginRegisterOnChangeCallback(_ctx(), lib.pythanc_OrthancPluginOnChangeCallback)


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginOnChangeCallback(change_type, resource_type, resource_id):
    try:
        t = _thread[0]
        if t is None:
            return ERR_SUCCESS
        t.push((int(change_type), int(resource_type), text(resource_id)))
        if change_type == ORTHANC_STOPPED:  # deliver everything before Orthanc goes on stopping
            if not t.drain(t.STOP_TIMEOUT):
                log_error("pythanc: the on-change callbacks did not finish within %d seconds; "
                          "Orthanc goes on stopping" % t.STOP_TIMEOUT)
        return ERR_SUCCESS
    except BaseException:
        log_exception("Python on-change callback")
        return ERR_PLUGIN
