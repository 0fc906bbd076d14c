"""Callbacks: the ``orthanc.Register*`` functions and the C entry points that call the user.

Each C entry point is an ``@ffi.def_extern`` function named ``pythanc_<SDK callback type>``.
It catches everything: an exception in a user callback is logged with its traceback and turned
into the SDK's error for that callback; nothing propagates into Orthanc.

Several registrations of one kind are allowed; they are called in registration order.
"""

import collections
import functools
import re
import threading

from _pythanc_cffi import ffi, lib

from . import _convert, _workers
from ._convert import STATE, Borrowed, text, data, _ctx, _str, OrthancException

ERR_SUCCESS = 0
ERR_PLUGIN = 1          # OrthancPluginErrorCode_Plugin: "Error encountered within the plugin engine"
ERR_UNKNOWN_RESOURCE = 17
ERR_NOT_IMPLEMENTED = 2

METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE"}


def _log_exception(what):
    from ._plugin import log_exception
    log_exception(what)


def _log_error(msg):
    from ._plugin import log_error
    log_error(msg)


def _c_entry(what, error):
    """Decorator that makes ``fn`` the C entry point of its name (``@ffi.def_extern``): whatever it
    raises is logged with its traceback as an error of ``what`` (in Orthanc's log), and ``error``
    (a number, or ``NULL`` for a pointer) is returned to Orthanc, so that nothing escapes into C."""
    def decorate(fn):
        @functools.wraps(fn)
        def entry(*args):
            try:
                return fn(*args)
            except BaseException:
                _log_exception(what)
                return error
        return ffi.def_extern(error=error)(entry)   # cffi's error value, should even the logging fail
    return decorate


def _api():
    from ._plugin import orthanc_module
    return orthanc_module()


def _check_callable(fn, description):
    if not callable(fn):
        raise TypeError("Expected a callback function to register one %s, not %s"
                        % (description, type(fn).__name__))


# ---------------------------------------------------------------------------------------------
# REST callbacks


class _Registry:
    """Everything registered by the scripts of this Orthanc run."""

    def __init__(self):
        self.rest = []                 # [(compiled regex, callable)], in registration order
        self.rest_routes = {}          # regex -> route number: registered with Orthanc (for good)
        self.rest_by_route = None      # route number -> callable or None; rebuilt from `rest` if None
        self.on_stored = []
        self.changes = None            # _ChangeWorker, once a change callback is registered
        self.lock = threading.Lock()


R = _Registry()


def RegisterRestCallback(pathRegularExpression, callback, *, worker=False):
    """Register ``callback(output, uri, **request)`` for the URIs that fully match the regular
    expression.  ``request`` has ``method`` (str), ``groups`` (tuple of str), ``headers`` (dict with
    lower-case keys), ``get`` (dict, GET only) and ``body`` (bytes, POST and PUT only).

    Several routes may be registered; for a request, the first one (in registration order) whose
    expression matches is called.  An exception answers HTTP 500 and is logged with its traceback.

    pythanc: ``worker=True`` runs the callback in a worker process (``"Python": {"Workers": N}``;
    if that option is not set, one worker per core is started), where ``output`` forwards its
    methods to this request's ``RestOutput``.  A worker that dies or exceeds
    ``"Python": {"WorkerTimeout": seconds}`` (default 120) is replaced and the request answers 500.
    """
    if type(pathRegularExpression) is not str or not callable(callback):
        raise TypeError("Expected a string (URI) and a callback function")
    try:
        compiled = re.compile(pathRegularExpression)
    except re.error as e:
        raise ValueError("Invalid regular expression %r: %s" % (pathRegularExpression, e)) from None
    c_regex = _str(pathRegularExpression, "pathRegularExpression")
    if worker:
        callback = _workers.offload("rest", callback, pathRegularExpression)
    with R.lock:
        R.rest.append((compiled, callback))
        R.rest_by_route = None
        if pathRegularExpression not in R.rest_routes:
            route = R.rest_routes[pathRegularExpression] = len(R.rest_routes)
            lib.OrthancPluginRegisterRestCallbackNoLock(_ctx(), c_regex, lib.pythanc_rest_entry_for(route))


def _route_table():
    """Route number -> the first callable registered for that route's expression (``None`` if the
    scripts no longer have one, after a reload).  Built under ``R.lock``; every change of ``R.rest``
    resets ``R.rest_by_route`` to ``None`` under ``R.lock`` too, after the change."""
    with R.lock:
        first = {}
        for regex, callback in R.rest:
            first.setdefault(regex.pattern, callback)
        table = [None] * len(R.rest_routes)
        for pattern, route in R.rest_routes.items():
            table[route] = first.get(pattern)
        R.rest_by_route = table
        return table


def _string_dict(count, keys, values):
    d = {}
    for i in range(count):
        d[ffi.string(keys[i]).decode("utf-8", "replace")] = ffi.string(values[i]).decode("utf-8", "replace")
    return d


@ffi.def_extern(error=-ERR_PLUGIN)
def pythanc_rest_packed(output, route, method, n_groups, n_get, n_headers, strings, size, body, body_size,
                        answer, answer_capacity):
    """A REST request.  ``route`` is the number of the route whose expression Orthanc matched (-1:
    unknown, see ``pythanc_rest_entry_for`` in prelude.c).  ``strings`` holds, NUL-separated: the
    URI, the groups, the GET arguments (key, value) and the headers (key, value), as packed by
    ``pythanc_rest_route`` (prelude.c).

    Returns minus an SDK error code, or 0, or 1 + the size of an answer left in ``answer`` for C
    to send once the GIL is released (see ``_handwritten.RestOutput_AnswerBuffer``).  This is the
    plugin's hottest path, called on a REST dispatch thread (prelude.c) or on Orthanc's HTTP
    thread: it is written for speed, since the REST requests of every HTTP thread pass here one
    at a time."""
    try:
        parts = _unpack(strings, size).decode("utf-8", "replace").split("\0")
        uri = parts[0]
        table = R.rest_by_route
        if table is None:
            table = _route_table()
        callback = table[route] if 0 <= route < len(table) else None
        if callback is None:
            for regex, callback in R.rest:
                if regex.fullmatch(uri) is not None:
                    break
            else:
                return -ERR_UNKNOWN_RESOURCE
        i = 1 + n_groups
        j = i + 2 * n_get
        k = j + 2 * n_headers
        out = _new_object(RestOutput)
        out._ptr = output
        out._owned = None
        out._extra = answer_capacity or None
        try:
            if method == 1:
                callback(out, uri, method="GET", groups=tuple(parts[1:i]),
                         headers=dict(zip(parts[j:k:2], parts[j + 1:k:2])),
                         get=dict(zip(parts[i:j:2], parts[i + 1:j:2])) if n_get else {})
            elif method == 2 or method == 3:
                callback(out, uri, method=METHODS[method], groups=tuple(parts[1:i]),
                         headers=dict(zip(parts[j:k:2], parts[j + 1:k:2])),
                         body=_unpack(body, body_size) if body_size else b"")
            else:
                callback(out, uri, method=METHODS.get(method) or str(method), groups=tuple(parts[1:i]),
                         headers=dict(zip(parts[j:k:2], parts[j + 1:k:2])))
        except BaseException:
            if type(out._extra) is tuple:
                _convert.send_pending_answer(out)  # sent before the error, as the official plugin does
            raise
        finally:
            pending = out._extra
            out._ptr = None
            out._extra = None
        if type(pending) is tuple:   # (pointer, mime type, body): see RestOutput_AnswerBuffer
            blob = pending[1] + b"\0" + pending[2]
            answer[0:len(blob)] = blob   # (a cdata slice assignment: cheaper than ffi.memmove)
            return 1 + len(pending[2])
        return 0
    except BaseException:
        _log_exception("Python REST callback")
        return -ERR_PLUGIN


_unpack = ffi.unpack
_new_object = object.__new__


# ---------------------------------------------------------------------------------------------
# Changes: queued, delivered in order on one thread of their own


class _ChangeWorker:
    STOP_TIMEOUT = 60.0

    def __init__(self):
        self.callbacks = []
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
                for cb in list(self.callbacks):
                    try:
                        cb(*event)
                    except BaseException:
                        _log_exception("Python on-change callback")
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


def RegisterOnChangeCallback(callback, *, worker=False):
    """Register ``callback(changeType: int, level: int, resourceId: str)`` for Orthanc's changes.

    Changes are queued and delivered in order on one thread (``PY-CHANGES``), so the callback may
    call the REST API.  ``ORTHANC_STOPPED`` is delivered after every pending change, before Orthanc
    stops.  Several callbacks may be registered; each change goes to each, in registration order.

    pythanc: ``worker=True`` runs the callback in a worker process (see ``RegisterRestCallback``);
    changes are still delivered one at a time, in order.
    """
    _check_callable(callback, "Python on-change callback")
    if worker:
        callback = _workers.offload("change", callback)
    with R.lock:
        first = R.changes is None
        if first:
            R.changes = _ChangeWorker()
        R.changes.callbacks.append(callback)
    if first:
        lib.OrthancPluginRegisterOnChangeCallback(_ctx(), lib.pythanc_OrthancPluginOnChangeCallback)


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginOnChangeCallback(change_type, resource_type, resource_id):
    try:
        w = R.changes
        if w is None:
            return ERR_SUCCESS
        w.push((int(change_type), int(resource_type), text(resource_id)))
        if change_type == 11:  # ORTHANC_STOPPED: deliver everything before Orthanc goes on stopping
            if not w.drain(w.STOP_TIMEOUT):
                _log_error("pythanc: the on-change callbacks did not finish within %d seconds; "
                           "Orthanc goes on stopping" % w.STOP_TIMEOUT)
        return ERR_SUCCESS
    except BaseException:
        _log_exception("Python on-change callback")
        return ERR_PLUGIN


# ---------------------------------------------------------------------------------------------
# Stored instances


def RegisterOnStoredInstanceCallback(callback, *, worker=False):
    """Register ``callback(instance: orthanc.DicomInstance, instanceId: str)``, called after an
    instance is stored, on the thread that received it.  ``instance`` is valid during the call only.
    An exception is logged; the instance stays stored.

    pythanc: ``worker=True`` runs the callback in a worker process (see ``RegisterRestCallback``),
    where ``instance`` forwards its methods to this ``DicomInstance``.
    """
    _check_callable(callback, "Python on-stored-instance callback")
    if worker:
        callback = _workers.offload("stored", callback)
    with R.lock:
        first = not R.on_stored
        R.on_stored.append(callback)
    if first:
        lib.OrthancPluginRegisterOnStoredInstanceCallback(_ctx(), lib.pythanc_OrthancPluginOnStoredInstanceCallback)


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginOnStoredInstanceCallback(instance, instance_id):
    status = ERR_SUCCESS
    try:
        iid = text(instance_id)
        with Borrowed(DicomInstance, instance) as dicom:
            for cb in list(R.on_stored):
                try:
                    cb(dicom, iid)
                except BaseException:
                    _log_exception("Python on-stored-instance callback")
                    status = ERR_PLUGIN
    except BaseException:
        _log_exception("Python on-stored-instance callback")
        status = ERR_PLUGIN
    return status


# ---------------------------------------------------------------------------------------------
# Life cycle


def reset():
    """Forget every registration (at initialisation, and so after /tools/reset)."""
    global R
    R = _Registry()
    _extra_reset()


def shutdown():
    """At finalisation: stop the change thread (after ORTHANC_STOPPED was delivered)."""
    w = R.changes
    if w is not None:
        w.stop(5.0)
    _extra_shutdown()
    reset()


# ---- reload support (pythanc/_reload.py): registrations owned by one script -------------------

def _owner(item):
    """The module that defined a registration: its first callable's ``__module__``."""
    if isinstance(item, tuple):
        items = item
    elif isinstance(item, dict):
        items = tuple(item.values())
    else:
        items = (item,)
    for x in items:
        if callable(x) and getattr(x, "__module__", None):
            return x.__module__
    return None


def _registries():
    """``(object, attribute)`` of every registration list or single slot (each module lists its own)."""
    from . import _callbacks_more as more
    regs = [(R, "rest"), (R, "on_stored")]
    if R.changes is not None:
        regs.append((R.changes, "callbacks"))
    return regs + list(getattr(more, "_reload_registries", lambda: [])())


def take_owned(name):
    """Take out every registration made by module ``name``; returns them for :func:`put_back`."""
    taken = []
    for obj, attr in _registries():
        value = getattr(obj, attr)
        if isinstance(value, list):
            keep = []
            for i, item in enumerate(value):
                if _owner(item) == name:
                    taken.append((obj, attr, i, item))
                else:
                    keep.append(item)
            value[:] = keep
        elif value is not None and _owner(value) == name:  # a single-slot registration
            taken.append((obj, attr, None, value))
            setattr(obj, attr, None)
    with R.lock:
        R.rest_by_route = None
    return taken


def put_back(taken):
    for obj, attr, index, item in taken:
        if index is None:
            setattr(obj, attr, item)
        else:
            items = getattr(obj, attr)
            items.insert(min(index, len(items)), item)
    with R.lock:
        R.rest_by_route = None


def _bind_classes(api):
    """Called by the generated module: the classes that callbacks hand to the user."""
    g = globals()
    for name in ("RestOutput", "DicomInstance", "FindQuery", "FindAnswers", "WorklistQuery", "WorklistAnswers",
                 "StorageArea", "Image", "Job", "ServerChunkedRequestReader", "WebDavCollection",
                 "DicomWebNode"):
        g[name] = api[name]


from ._callbacks_more import *  # noqa: E402,F401,F403  (the other callbacks of the SDK)
from ._callbacks_more import _extra_reset, _extra_shutdown  # noqa: E402
