"""Worker processes: Python callbacks that run outside Orthanc's process, on every core.

``"Python": {"Workers": N, "WorkerTimeout": seconds}`` and ``worker=True`` on
``orthanc.RegisterRestCallback``, ``RegisterOnStoredInstanceCallback`` and
``RegisterOnChangeCallback`` (see the README, "Worker processes").

The Orthanc side, here:

* a :class:`Pool` of worker processes, each a fresh interpreter (``sys.executable -m
  pythanc.workers.worker FD``, like ``multiprocessing``'s "spawn": only one socket is inherited,
  never Orthanc's), with one socket pair per worker;
* an offloaded callback is an :class:`Offloaded` object in pythanc's registries: called by the
  usual C entry point, it takes an idle worker (a request holds one worker), sends the request,
  then serves what the worker forwards (``orthanc`` functions, methods of the request's
  ``RestOutput`` or ``DicomInstance``) on the calling thread until the worker says ``done``.
  Waiting releases the GIL (socket calls), so other callbacks run meanwhile;
* a worker that dies (EOF) or does not answer within ``WorkerTimeout`` is killed by its PID and
  replaced; the callback raises :class:`WorkerError` (a REST request answers HTTP 500);
* the shared key-value store (``orthanc.GetSharedValue`` ...) lives here, in Orthanc's process.

The worker side and the wire format are in ``pythanc/workers/worker.py``.
"""

import itertools
import os
import pickle
import socket
import subprocess
import sys
import threading
import time

from ..core.config import DEFAULT_WORKER_TIMEOUT as DEFAULT_TIMEOUT
from ..core.convert import OrthancObject
from ..core import tracebacks
from ..core.log import log_error as _log_error, log_warning as _log_warning
from .worker import Channel, ChannelClosed, ChannelTimeout, exception_reply, callback_key

STOP_GRACE = 3.0   # seconds given to workers to exit on SIGTERM before SIGKILL


class WorkerError(RuntimeError):
    """An offloaded callback could not complete: the worker died, hung, or the callback raised.
    When the callback raised, ``remote_traceback`` is its traceback, formatted by the worker
    (``core.tracebacks``), which the logs show in place of the local frames."""

    def __init__(self, message, remote_traceback=None, remote_where=None):
        super().__init__(message)
        self.remote_traceback = remote_traceback
        self.remote_where = remote_where


# ---------------------------------------------------------------------------------------------
# Configuration and life cycle (called by pythanc/lifecycle/plugin.py)

_state = {"workers": 0, "timeout": DEFAULT_TIMEOUT, "scripts": [], "needed": False, "pool": None,
          "info": None, "module": None, "logging_level": None}
_lock = threading.Lock()


def configure(workers, timeout, scripts, module, logging_level=None):
    """At initialisation, before the scripts run.  ``module`` is the ``orthanc`` module whose
    functions the workers' forwarded calls reach; ``logging_level``: the option
    ``Python.LoggingLevel``, which the workers apply as Orthanc's process does."""
    stop()
    _state.update(workers=workers or 0, timeout=float(timeout or DEFAULT_TIMEOUT),
                  scripts=[os.path.abspath(s) for s in scripts], needed=False, info=None, module=module,
                  logging_level=logging_level)
    with _shared_lock:
        _shared.clear()


def start():
    """After the scripts ran: start the pool if ``Workers`` > 0 or a callback asked for a worker."""
    if _state["workers"] > 0 or _state["needed"]:
        _pool()


def stop():
    """At finalisation: stop every worker (SIGTERM, then SIGKILL after a bound)."""
    with _lock:
        pool = _state["pool"]
        _state["pool"] = None
    if pool is not None:
        pool.stop()


def recycle():
    """A script was reloaded (``Python.Reload``): workers start again with the new version."""
    pool = _state["pool"]
    if pool is not None:
        pool.recycle()


def _pool():
    with _lock:
        pool = _state["pool"]
        if pool is None:
            size = _state["workers"]
            if size <= 0:
                size = os.cpu_count() or 1
                _log_warning('pythanc: a callback was registered with worker=True but "Python.Workers" is '
                             'not set: starting %d worker processes (one per core)' % size)
            pool = _state["pool"] = Pool(size, _state["timeout"], _state["scripts"])
        return pool


# ---------------------------------------------------------------------------------------------
# The callbacks that were registered with worker=True

KINDS = ("rest", "stored", "change", "audit")


class Offloaded:
    """Stands for a callback registered with ``worker=True`` in pythanc's registries: calling it
    runs the callback in a worker process.  ``__module__`` is the callback's (``Python.Reload``
    finds the registrations of a script by it)."""

    def __init__(self, kind, callback, regex=None):
        module = getattr(callback, "__module__", None)
        qualname = getattr(callback, "__qualname__", None)
        if not module or not qualname:
            raise TypeError("worker=True needs a function defined in the script (with __module__ and "
                            "__qualname__), not %r" % (callback,))
        self.kind = kind
        self.key = callback_key(kind, callback, regex)
        self.__wrapped__ = callback
        self.__module__ = module
        self.__qualname__ = qualname
        self.__name__ = getattr(callback, "__name__", qualname)

    def __call__(self, *args, **kwargs):
        pool = _pool()
        if self.kind == "rest":
            output, uri = args
            return pool.run(self.kind, self.key, (uri, kwargs), {"out": output})
        if self.kind == "stored":
            instance, instance_id = args
            return pool.run(self.kind, self.key, (instance_id,), {"inst": instance})
        return pool.run(self.kind, self.key, tuple(args), {})

    def __repr__(self):
        return "<%s.%s in a pythanc worker process>" % (self.__module__, self.__qualname__)


def offload(kind, callback, regex=None):
    """Called by ``Register*(..., worker=True)``: what to register instead of ``callback``."""
    assert kind in KINDS
    o = Offloaded(kind, callback, regex)
    _state["needed"] = True
    return o


# ---------------------------------------------------------------------------------------------
# The shared key-value store (in Orthanc's process; workers reach it through forwarding)

_shared = {}
_shared_lock = threading.Lock()


def GetSharedValue(key, default=None):
    """pythanc: the value stored under ``key`` (a ``str``) by :func:`SetSharedValue` or
    :func:`IncrementSharedValue`, in Orthanc's process or any worker process; ``default`` if none.
    The store lives in Orthanc's process, in memory (lost when Orthanc stops)."""
    if type(key) is not str:
        raise TypeError("argument 'key' must be str, not %s" % type(key).__name__)
    with _shared_lock:
        return _shared.get(key, default)


def SetSharedValue(key, value):
    """pythanc: store ``value`` under ``key`` (a ``str``), seen by Orthanc's process and every worker
    process.  Values read from a worker are copies (pickled): use ``None``, ``bool``, numbers,
    ``str``, ``bytes`` and lists/dicts of them.  ``None`` removes the key."""
    if type(key) is not str:
        raise TypeError("argument 'key' must be str, not %s" % type(key).__name__)
    with _shared_lock:
        if value is None:
            _shared.pop(key, None)
        else:
            _shared[key] = bytes(value) if type(value) is bytearray else value


def IncrementSharedValue(key, delta=1):
    """pythanc: atomically add ``delta`` to the number stored under ``key`` (0 if none); returns the
    new value.  Safe from concurrent callbacks in any process."""
    if type(key) is not str:
        raise TypeError("argument 'key' must be str, not %s" % type(key).__name__)
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise TypeError("argument 'delta' must be a number, not %s" % type(delta).__name__)
    with _shared_lock:
        value = _shared.get(key, 0) + delta
        _shared[key] = value
        return value


def IsWorkerProcess():
    """pythanc: ``True`` in a worker process (see ``"Python": {"Workers": N}``), ``False`` in Orthanc's."""
    return False


# pythanc's additions to the ``orthanc`` module of Orthanc's process (bound by lifecycle/module.py)
ADDITIONS = (GetSharedValue, SetSharedValue, IncrementSharedValue, IsWorkerProcess)


# ---------------------------------------------------------------------------------------------
# Serving a worker's forwarded calls

def _module_info():
    """What a worker needs to build its ``orthanc`` module (names, enums, constants)."""
    if _state["info"] is None:
        mod = _state["module"]
        enums, classes, functions, constants = {}, [], {}, {}
        for name, v in vars(mod).items():
            if name.startswith("_"):
                continue
            if isinstance(v, type):
                if issubclass(v, BaseException):
                    continue
                if issubclass(v, OrthancObject):
                    classes.append(name)
                else:
                    enums[name] = {k: x for k, x in vars(v).items() if not k.startswith("_") and type(x) is int}
            elif callable(v):
                functions[name] = v.__doc__
            elif isinstance(v, (str, int, float, bool)):
                constants[name] = v
        _state["info"] = {"doc": mod.__doc__, "enums": enums, "object_classes": classes,
                          "functions": functions, "constants": constants}
    return _state["info"]


def _dispatch(op, name, args, kwargs, targets):
    if type(name) is not str or name.startswith("_"):
        raise AttributeError("no such function: %r" % (name,))
    if op == "api":
        if name.startswith("Register"):
            raise AttributeError("orthanc.%s cannot be called from a worker process" % name)
        fn = getattr(_state["module"], name, None)
        if fn is None:
            raise AttributeError("module 'orthanc' has no attribute %r" % name)
    else:
        target = targets.get(op)
        if target is None:
            raise AttributeError("no orthanc object %r is available to this call" % op)
        fn = getattr(target, name)
    return fn(*args, **kwargs)


_object_keys = itertools.count(1)   # names of the objects that forwarded calls returned (never reused)


def _serve(w, targets, deadline, until):
    """Serve the worker's forwarded calls until it sends one of the ``until`` messages.  An SDK
    object that a call returns is kept in ``targets`` (so, until the callback or the start-up
    ends) and the worker gets its name, to forward its methods."""
    ch = w.ch
    while True:
        msg = ch.recv(deadline)
        op = msg[0]
        if op in until:
            return msg
        try:
            _, name, args, kwargs = msg
            value = _dispatch(op, name, args, kwargs, targets)
            if isinstance(value, OrthancObject):
                # kept here, in Orthanc's process, for the rest of this callback; the worker gets a
                # proxy whose methods are forwarded to it (a KeysValuesIterator, an Image...)
                key = "obj%d" % next(_object_keys)
                targets[key] = value
                reply = ("obj", type(value).__name__, key)
            else:
                reply = ("ret", value)
        except BaseException as e:
            reply = exception_reply(e)
        try:
            ch.send(reply, deadline)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            ch.send(("exc", "TypeError", ("the result of orthanc.%s cannot be sent to a worker process: %s"
                                          % (msg[1], e),)), deadline)


# ---------------------------------------------------------------------------------------------
# The processes

class _Process:
    """One worker process and the Orthanc end of its socket."""

    def __init__(self, index, generation):
        self.index = index
        self.generation = generation
        mine, theirs = socket.socketpair()
        try:
            env = dict(os.environ)
            env["PYTHANC_WORKER"] = str(index)
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "pythanc.workers.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), close_fds=True, stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self.ch = Channel(mine, bytes_blobs=False)
        self.ch.alive = lambda: self.proc.poll() is None

    def kill(self, close=False):
        """SIGKILL (by our child's PID) and reap.  The socket is shut down (a thread waiting on it
        wakes up); closed only with ``close``, once no thread uses it."""
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
        except Exception:
            pass
        try:
            self.ch.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if close:
            self.ch.close()

    def exit_status(self):
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            return "still running"
        return "signal %d" % -code if code < 0 else "exit code %d" % code


class Pool:
    """``size`` worker processes; a callback holds one for its duration."""

    def __init__(self, size, timeout, scripts):
        self.size = size
        self.timeout = timeout
        self.scripts = list(scripts)
        self.cond = threading.Condition()
        self.idle = []
        self.procs = set()       # every started process (idle or busy)
        self.starting = 0
        self.stopping = False
        self.generation = 0
        self.next_index = 0
        self.last_failure = None
        for _ in range(size):
            self._spawn_async()

    # -- starting ---------------------------------------------------------------------------------
    def _spawn_async(self):
        with self.cond:
            if self.stopping:
                return
            self.starting += 1
            index = self.next_index
            self.next_index += 1
            generation = self.generation
        threading.Thread(target=self._spawn, args=(index, generation), name="PY-WORKER-START",
                         daemon=True).start()

    def _spawn(self, index, generation):
        w = None
        try:
            w = _Process(index, generation)
            with self.cond:
                if self.stopping:
                    raise WorkerError("Orthanc is stopping")
                self.procs.add(w)
            deadline = time.monotonic() + max(self.timeout, 60.0)
            w.ch.send(("init", {"sys_path": list(sys.path), "scripts": self.scripts,
                                "module": _module_info(), "logging_level": _state["logging_level"],
                                "full_tracebacks": tracebacks.full()}), deadline)
            # the scripts run in the worker; meanwhile, serve what they forward
            msg = _serve(w, {}, deadline, ("ready", "fatal"))
            if msg[0] == "fatal":
                raise WorkerError("the script failed in the worker process:\n%s" % msg[1])
            with self.cond:
                self.starting -= 1
                if self.stopping:
                    return
                if w.generation != self.generation:
                    self._discard(w, replace=True)
                    return
                self.idle.append(w)
                self.cond.notify_all()
        except BaseException as e:
            if isinstance(e, ChannelClosed) and w is not None:
                text = "the worker process %d exited during start-up (%s)" % (w.pid, w.exit_status())
            elif isinstance(e, ChannelTimeout):
                text = "the worker process did not start within %.0f s" % max(self.timeout, 60.0)
            else:
                text = str(e) or type(e).__name__
            with self.cond:
                self.starting -= 1
                if w is not None:
                    self.procs.discard(w)
                self.last_failure = text
                stopping = self.stopping
                self.cond.notify_all()
            if w is not None:
                w.kill(True)
            if not stopping:
                _log_error("pythanc: a worker process could not start: %s" % text)

    def _discard(self, w, replace):
        """With ``self.cond`` held: forget ``w``, kill it (outside the lock), maybe start another."""
        self.procs.discard(w)
        threading.Thread(target=w.kill, args=(True,), name="PY-WORKER-KILL", daemon=True).start()
        if replace and not self.stopping:
            self._spawn_async()  # self.cond is reentrant

    # -- using --------------------------------------------------------------------------------------
    def acquire(self):
        deadline = time.monotonic() + self.timeout
        with self.cond:
            while True:
                if self.stopping:
                    raise WorkerError("Orthanc is stopping: no worker process")
                if self.idle:
                    return self.idle.pop()
                if not self.procs and self.starting == 0:
                    raise WorkerError("no worker process is running (%s)"
                                      % (self.last_failure or "none could start"))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkerError("no worker process became free within %.0f s" % self.timeout)
                self.cond.wait(remaining)

    def release(self, w, healthy):
        with self.cond:
            if healthy and not self.stopping and w.generation == self.generation and w in self.procs:
                self.idle.append(w)
                self.cond.notify_all()
            else:
                self._discard(w, replace=not self.stopping)

    def run(self, kind, key, payload, targets):
        w = self.acquire()
        healthy = False
        try:
            deadline = time.monotonic() + self.timeout
            w.ch.send(("call", kind, key, payload), deadline)
            msg = _serve(w, targets, deadline, ("done", "failed"))
            healthy = True
        except ChannelTimeout:
            w.kill()
            raise WorkerError("the worker process %d did not finish the callback within %.0f s "
                              '("Python.WorkerTimeout"): it was killed and is being replaced'
                              % (w.pid, self.timeout)) from None
        except ChannelClosed:
            raise WorkerError("the worker process %d died during the callback (%s): it is being replaced"
                              % (w.pid, w.exit_status())) from None
        finally:
            self.release(w, healthy)
        if msg[-1] is not None:   # a RestOutput.AnswerBuffer deferred by the worker (worker.py)
            _dispatch(*msg[-1], targets)
        if msg[0] == "failed":
            raise WorkerError("in the worker process %d:\n%s" % (w.pid, msg[1]), msg[1],
                              "In the worker process %d" % w.pid)
        return None

    # -- life cycle ---------------------------------------------------------------------------------
    def recycle(self):
        with self.cond:
            self.generation += 1
            old = list(self.idle)
            self.idle = []
            for w in old:
                self._discard(w, replace=True)

    def stop(self):
        with self.cond:
            self.stopping = True
            procs = list(self.procs)
            idle = set(self.idle)
            self.procs.clear()
            self.idle = []
            self.cond.notify_all()
        for w in procs:
            try:
                if w in idle:
                    w.ch.send(("stop",))  # lets the worker flush its output
                else:
                    w.proc.terminate()
            except Exception:
                try:
                    w.proc.terminate()
                except Exception:
                    pass
        deadline = time.monotonic() + STOP_GRACE
        for w in procs:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            w.kill(close=w in idle)  # a busy one is closed by the thread that holds it
