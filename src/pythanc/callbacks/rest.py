"""REST callbacks: ``orthanc.RegisterRestCallback``, the Python side of a REST request, and
``RestOutput.AnswerBuffer``.

A request, from C to the script and back: Orthanc calls the C entry point of the route it matched
(``pythanc_rest_entry_for`` in ``_build/rest_dispatch.c``), which packs the request's strings and
calls :func:`pythanc_rest_packed` here, on a REST dispatch thread or on Orthanc's HTTP thread;
it builds the keyword arguments and calls the script's callback; a first answer the script gives
with :func:`RestOutput_AnswerBuffer` is handed back to C, which sends it once Python has returned.

A route registered once the scripts are loaded (from a callback, a thread, a reloaded script) is
added to Orthanc later, by :class:`_Registrar`'s thread, at a moment when no REST callback of
pythanc runs (the gate in rest_dispatch.c explains why).
"""

import collections
import re
import threading

from .._generated import api
from ..core import convert
from ..core.context import ffi, lib, NULL
from ..core.convert import _ctx, _str, _buf, _lib
from ..core.log import log_exception, log_info, log_warning
from ..workers import pool
from .registry import STORE, ERR_PLUGIN, ERR_UNKNOWN_RESOURCE, on_reset, on_shutdown, started

__all__ = ["RegisterRestCallback", "RestOutput_AnswerBuffer"]

METHODS = convert.HTTP_METHODS
_routes = {}               # regex -> route number: registered with Orthanc for this run (for good)
_cache = [-1, []]          # [STORE.version it was built for, route number -> callable or None]


class _Registrar:
    """The thread that adds to Orthanc the routes registered after start-up (REST and chunked REST),
    in order, each at a moment when no REST callback of pythanc runs (``pythanc_rest_add_route``).
    Orthanc holds its route lock while REST callbacks run, and adding a route takes it exclusively
    (see rest_dispatch.c): so the ``Register*`` call only queues the route and returns at once."""
    SLICE_MS = 200             # the longest wait in C, so that a stop is seen
    WARN_AFTER_MS = 10000      # so long without a moment free of REST callbacks: logged once per route

    def __init__(self):
        self.cond = threading.Condition()
        self.queue = collections.deque()   # (description, add): add(timeout_ms) -> pythanc_rest_add_route()
        self.stopping = False
        self.thread = None

    def add(self, description, add):
        with self.cond:
            if self.stopping:
                return
            self.queue.append((description, add))
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="PY-ROUTES", daemon=True)
                self.thread.start()
            self.cond.notify_all()

    def run(self):
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                description, add = self.queue[0]
            waited = 0
            try:
                while not add(self.SLICE_MS):   # the GIL is released while C waits
                    if self.stopping:
                        return
                    waited += self.SLICE_MS
                    if waited == self.WARN_AFTER_MS:
                        log_warning("pythanc: %s, registered after start-up, is not added to Orthanc yet: REST "
                                    "callbacks of pythanc have been running without a pause for %d s"
                                    % (description, waited // 1000))
                log_info("pythanc: %s added to Orthanc" % description)
            except BaseException:
                log_exception("adding %s to Orthanc" % description)
            with self.cond:
                if self.queue and self.queue[0][1] is add:
                    self.queue.popleft()

    def stop(self):
        with self.cond:
            self.stopping = True
            self.queue.clear()
            self.cond.notify_all()
            t = self.thread
        if t is not None:
            t.join(5.0)


_registrar = [None]        # the _Registrar of this run, made at the first route added after start-up


def add_route_later(description, add):
    """Queue a route for the registrar's thread (see :class:`_Registrar`): ``add(timeout_ms)`` calls
    ``pythanc_rest_add_route`` (rest_dispatch.c) and returns its result."""
    with STORE.lock:
        if _registrar[0] is None:
            _registrar[0] = _Registrar()
        registrar = _registrar[0]
    registrar.add(description, add)


@on_shutdown
def _stop_registrar():
    r = _registrar[0]
    if r is not None:
        r.stop()


@on_reset
def _forget_routes():
    _routes.clear()
    _cache[0] = -1
    r = _registrar[0]
    _registrar[0] = None
    if r is not None:
        r.stop()


def RegisterRestCallback(pathRegularExpression, callback, *, worker=False):
    """Register ``callback(output, uri, **request)`` for the URIs that fully match the regular
    expression.  ``request`` has ``method`` (str), ``groups`` (tuple of str), ``headers`` (dict with
    lower-case keys), ``get`` (dict, GET only) and ``body`` (bytes, POST and PUT only); and, on
    Orthanc 1.13 (SDK 1.12.9+), ``authenticationPayload`` (bytes) when an HTTP authentication
    callback (``orthanc.RegisterHttpAuthentication``) granted the request with a payload.

    Several routes may be registered; for a request, the first one (in registration order) whose
    expression matches is called.  An exception answers HTTP 500 and is logged with its traceback.

    pythanc: it may be called at any time, from anywhere.  A new expression registered after the
    scripts are loaded (from a callback, a thread) is added to Orthanc shortly after, by a thread of
    pythanc, once no REST callback of pythanc runs: the call returns at once, and the route answers
    404 until then.

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
        callback = pool.offload("rest", callback, pathRegularExpression)
    with STORE.lock:
        STORE.lists["rest"].append((compiled, callback))
        STORE.changed()
        if pathRegularExpression in _routes:
            return
        route = _routes[pathRegularExpression] = len(_routes)
        if not started():   # Orthanc runs no callback yet: registered now (under the lock, see mark_started)
            lib.OrthancPluginRegisterRestCallbackNoLock(_ctx(), c_regex, lib.pythanc_rest_entry_for(route))
            return
    add_route_later("the REST route %r" % pathRegularExpression,
                    lambda timeout_ms: lib.pythanc_rest_add_route(c_regex, route, 0, NULL, NULL, NULL, NULL,
                                                                  timeout_ms))


def _route_table():
    """Route number -> the first callable registered for that route's expression (``None`` if the
    scripts no longer have one, after a reload), for the current ``STORE.version``."""
    with STORE.lock:
        first = {}
        for regex, callback in STORE.lists["rest"]:
            first.setdefault(regex.pattern, callback)
        table = [None] * len(_routes)
        for pattern, route in _routes.items():
            table[route] = first.get(pattern)
        _cache[:] = [STORE.version, table]
        return table


@ffi.def_extern(error=-ERR_PLUGIN)
def pythanc_rest_packed(output, route, method, n_groups, n_get, n_headers, strings, size, body, body_size,
                        payload, payload_size, answer, answer_capacity):
    """A REST request.  ``route`` is the number of the route whose expression Orthanc matched (-1:
    unknown, see ``pythanc_rest_entry_for`` in rest_dispatch.c).  ``strings`` holds, NUL-separated:
    the URI, the groups, the GET arguments (key, value) and the headers (key, value), as packed by
    ``pythanc_rest_route`` (rest_dispatch.c).  ``payload``: what an HTTP authentication callback
    gave for this request (SDK 1.12.9+; ``payload_size`` 0 if none), passed to the callback as the
    keyword argument ``authenticationPayload`` (bytes) only when there is one.

    Returns minus an SDK error code, or 0, or 1 + the size of an answer left in ``answer`` for C
    to send once the GIL is released (see :func:`RestOutput_AnswerBuffer`).  This is the
    plugin's hottest path, called on a REST dispatch thread (rest_dispatch.c) or on Orthanc's HTTP
    thread: it is written for speed, since the REST requests of every HTTP thread pass here one
    at a time."""
    try:
        parts = _unpack(strings, size).decode("utf-8", "replace").split("\0")
        uri = parts[0]
        cache = _cache
        table = cache[1] if cache[0] == STORE.version else _route_table()
        callback = table[route] if 0 <= route < len(table) else None
        if callback is None:
            for regex, callback in STORE.lists["rest"]:
                if regex.fullmatch(uri) is not None:
                    break
            else:
                return -ERR_UNKNOWN_RESOURCE
        i = 1 + n_groups
        j = i + 2 * n_get
        k = j + 2 * n_headers
        out = _new_object(api.RestOutput)
        out._ptr = output
        out._owned = None
        out._extra = answer_capacity or None
        extra = {"authenticationPayload": _unpack(payload, payload_size)} if payload_size else _NO_EXTRA
        try:
            if method == 1:
                callback(out, uri, method="GET", groups=tuple(parts[1:i]),
                         headers=dict(zip(parts[j:k:2], parts[j + 1:k:2])),
                         get=dict(zip(parts[i:j:2], parts[i + 1:j:2])) if n_get else {}, **extra)
            elif method == 2 or method == 3:
                callback(out, uri, method=METHODS[method], groups=tuple(parts[1:i]),
                         headers=dict(zip(parts[j:k:2], parts[j + 1:k:2])),
                         body=_unpack(body, body_size) if body_size else b"", **extra)
            else:
                callback(out, uri, method=METHODS.get(method) or str(method), groups=tuple(parts[1:i]),
                         headers=dict(zip(parts[j:k:2], parts[j + 1:k:2])), **extra)
        except BaseException:
            if type(out._extra) is tuple:
                convert.send_pending_answer(out)  # sent before the error, as the official plugin does
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
        log_exception("REST callback")
        return -ERR_PLUGIN


_unpack = ffi.unpack
_NO_EXTRA = {}
_new_object = object.__new__


def RestOutput_AnswerBuffer(self, answer, mimeType):
    """Answer to a REST request with the content of a memory buffer.

    answer: the body (``bytes``, ``bytearray``, ``memoryview``, or ``str`` sent as UTF-8).
    mimeType: the MIME type of the answer (``str``).
    """
    if type(answer) is bytes:
        b = answer
    elif type(answer) is str:
        b = answer.encode("utf-8", "surrogateescape")
    else:
        b = _buf(answer, "answer")[0]  # sent from here, not copied
    m = _str(mimeType, "mimeType")
    capacity = self._extra
    if type(capacity) is int and type(b) is bytes:
        # The first answer of a REST callback, if it fits, is left for C to send once the callback
        # has returned and the GIL is released (pythanc_rest_route in rest_dispatch.c).
        self._extra = None
        if len(b) + len(m) + 1 <= capacity:
            p = self._ptr
            if p is not None:
                self._extra = (p, m, b)
                self._ptr = None
                return
    if len(b) > 0xFFFFFFFF:
        raise ValueError("argument 'answer' is too large (%d bytes, at most %d)" % (len(b), 0xFFFFFFFF))
    _lib.OrthancPluginAnswerBuffer(_ctx(), self._ptr or self._p(), b, len(b), m)
