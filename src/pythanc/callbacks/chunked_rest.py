"""Chunked REST callbacks: ``orthanc.RegisterChunkedRestCallback`` (request bodies streamed in
chunks to a reader object of the script's).  Readers given to Orthanc are integer handles.

Orthanc calls the GET/DELETE callbacks and the reader factories under its route lock, as REST
callbacks: they pass the same gate (``pythanc_rest_enter``, see rest_dispatch.c), and a route
registered after start-up is added by the same thread as REST routes (``rest.add_route_later``).
"""

import re

from .._generated import api
from ..core.context import ffi, lib, NULL
from ..core.convert import Borrowed, text, data, _ctx, _str, handle_pointer, pointer_handle, request_kw
from ..core.log import log_error, log_exception
from .registry import STORE, ERR_SUCCESS, ERR_PLUGIN, ERR_UNKNOWN_RESOURCE, c_entry, new_handle, on_reset, started
from .rest import add_route_later

__all__ = ['RegisterChunkedRestCallback']

_readers = {}   # handle -> [reader, failed]: the readers of the requests being received


@on_reset
def _forget_readers():
    _readers.clear()


_CHUNKED_GET_DELETE = []   # the ffi.callback for GET/DELETE, made once (kept alive here)


def RegisterChunkedRestCallback(pathRegularExpression, get=None, post=None, delete=None, put=None):
    """(pythanc) Register a route whose POST/PUT bodies are streamed in chunks.

    ``get`` and ``delete`` are like REST callbacks: ``f(output, uri, **request)`` (``method``,
    ``groups``, ``headers``, and ``get`` for GET).  ``post`` and ``put`` are factories
    ``f(uri, **request) -> reader`` (``method``, ``groups``, ``headers``; no body): the reader gets
    ``reader.add_chunk(bytes)`` for each chunk of the body, then ``reader.execute(output)`` to answer
    with the ``orthanc.RestOutput``, and finally ``reader.finalize()`` if it has one (also when the
    body was not read completely).  A method without a callback answers 405/404.  If ``add_chunk``
    raises, the next chunks are skipped and ``execute`` is not called: the client gets 500.

    Chunked routes are matched in registration order (first full match), separately from
    ``RegisterRestCallback`` routes.  An exception answers 500 and is logged.  As with
    ``RegisterRestCallback``, a route registered after the scripts are loaded is added to Orthanc
    shortly after, once no REST callback of pythanc runs."""
    if type(pathRegularExpression) is not str:
        raise TypeError("Expected a string (URI) and callback functions")
    for name, fn in (("get", get), ("post", post), ("delete", delete), ("put", put)):
        if fn is not None and not callable(fn):
            raise TypeError("%s must be a callback function or None" % name)
    try:
        compiled = re.compile(pathRegularExpression)
    except re.error as e:
        raise ValueError("Invalid regular expression %r: %s" % (pathRegularExpression, e)) from None
    c_regex = _str(pathRegularExpression, "pathRegularExpression")
    with STORE.lock:
        if not _CHUNKED_GET_DELETE:
            _CHUNKED_GET_DELETE.append(ffi.callback("OrthancPluginRestCallback", _chunked_get_delete,
                                                    error=ERR_PLUGIN))
        rest = _CHUNKED_GET_DELETE[0]
        factory = lib.pythanc_OrthancPluginServerChunkedRequestReaderFactory
        handlers = (rest if get is not None else NULL, factory if post is not None else NULL,
                    rest if delete is not None else NULL, factory if put is not None else NULL)
        STORE.lists["chunked"].append((compiled, {"get": get, "post": post, "delete": delete, "put": put}))
        if not started():   # Orthanc runs no callback yet: registered now (under the lock, see mark_started)
            lib.OrthancPluginRegisterChunkedRestCallback(
                _ctx(), c_regex, *handlers, lib.pythanc_OrthancPluginServerChunkedRequestReaderAddChunk,
                lib.pythanc_OrthancPluginServerChunkedRequestReaderExecute,
                lib.pythanc_OrthancPluginServerChunkedRequestReaderFinalize)
            return
    add_route_later("the chunked REST route %r" % pathRegularExpression,
                    lambda timeout_ms: lib.pythanc_rest_add_route(c_regex, -1, 1, *handlers, timeout_ms))


def _chunked_route(uri, method_key):
    for regex, route in list(STORE.lists["chunked"]):
        if regex.fullmatch(uri) is not None:
            return route.get(method_key)
    return None


_BUSY = b"pythanc is adding a REST route to Orthanc; retry\n"


class _BusyReader:
    """The reader of a chunked request that came while a route was being added (see rest_dispatch.c,
    the gate): it answers 503."""

    def add_chunk(self, chunk):
        pass

    def execute(self, output):
        output.SetHttpHeader("Retry-After", "1")
        output.SendHttpStatus(503, _BUSY)


def _chunked_get_delete(output, url, request):
    if not lib.pythanc_rest_enter():
        try:
            lib.OrthancPluginSetHttpHeader(_ctx(), output, b"Retry-After", b"1")
            lib.OrthancPluginSendHttpStatus(_ctx(), output, 503, _BUSY, len(_BUSY))
            return ERR_SUCCESS
        except BaseException:
            return ERR_PLUGIN
    try:
        return _chunked_get_delete_entered(output, url, request)
    finally:
        lib.pythanc_rest_leave()


def _chunked_get_delete_entered(output, url, request):
    try:
        uri = text(url)
        method = int(request.method)
        fn = _chunked_route(uri, "get" if method == 1 else "delete")
        if fn is None:
            return ERR_UNKNOWN_RESOURCE
        kw = request_kw(method, request, True)
        with Borrowed(api.RestOutput, output) as out:
            fn(out, uri, **kw)
        return ERR_SUCCESS
    except BaseException:
        log_exception("Python chunked REST callback")
        return ERR_PLUGIN


@c_entry("Python chunked REST factory", ERR_PLUGIN)
def pythanc_OrthancPluginServerChunkedRequestReaderFactory(reader, url, request):
    reader[0] = NULL
    if not lib.pythanc_rest_enter():
        return _new_reader(reader, _BusyReader())
    try:
        return _factory(reader, url, request)
    finally:
        lib.pythanc_rest_leave()


def _new_reader(reader, obj):
    h = new_handle()
    _readers[h] = [obj, False]   # [reader, failed]
    reader[0] = handle_pointer(h, "OrthancPluginServerChunkedRequestReader *")
    return ERR_SUCCESS


def _factory(reader, url, request):
    uri = text(url)
    method = int(request.method)
    fn = _chunked_route(uri, "post" if method == 2 else "put")
    if fn is None:
        return ERR_UNKNOWN_RESOURCE
    obj = fn(uri, **request_kw(method, request, False))
    for m in ("add_chunk", "execute"):
        if not callable(getattr(obj, m, None)):
            log_error("The Python chunked REST factory for %s has not returned a reader: %s has no %s() method"
                      % (uri, type(obj).__name__, m))
            return ERR_PLUGIN
    return _new_reader(reader, obj)


def _reader(p):
    entry = _readers.get(pointer_handle(p))
    if entry is None:
        raise RuntimeError("unknown chunked request reader")
    return entry


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginServerChunkedRequestReaderAddChunk(reader, chunk, size):
    entry = None
    try:
        entry = _reader(reader)
        if entry[1]:
            return ERR_PLUGIN
        entry[0].add_chunk(data(chunk, size))
        return ERR_SUCCESS
    except BaseException:
        log_exception("Python chunked REST reader (add_chunk)")
        if entry is not None:
            entry[1] = True   # Orthanc 1.10 goes on after a failed chunk: execute() will answer 500
        return ERR_PLUGIN


@c_entry("Python chunked REST reader (execute)", ERR_PLUGIN)
def pythanc_OrthancPluginServerChunkedRequestReaderExecute(reader, output):
    obj, failed = _reader(reader)
    if failed:
        return ERR_PLUGIN
    with Borrowed(api.RestOutput, output) as out:
        obj.execute(out)
    return ERR_SUCCESS


@ffi.def_extern()
def pythanc_OrthancPluginServerChunkedRequestReaderFinalize(reader):
    try:
        entry = _readers.pop(pointer_handle(reader), None)
        fin = getattr(entry[0], "finalize", None) if entry is not None else None
        if callable(fin):
            fin()
    except BaseException:
        log_exception("Python chunked REST reader (finalize)")
