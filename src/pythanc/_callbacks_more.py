"""The SDK's other callbacks (filters, DICOM SCP handlers, storage area, jobs, ...).

Same pattern as ``_callbacks.py``: each ``orthanc.Register*`` function stores the user's callables
in the registry ``X`` (forgotten at each plugin initialisation and at finalisation) and, the first
time a kind is registered in this Orthanc run, registers one C entry point with the SDK (the table
``_SDK``).  Each C entry point is a function named ``pythanc_<SDK callback type>``, made one by
``@_c_entry`` (or, where its error handling is its own, ``@ffi.def_extern``); it catches everything,
logs the traceback and answers the SDK's error for that callback.

How several registrations of one kind combine:

* filters (HTTP, DICOM instance): all are called in registration order, all must accept;
* C-STORE filter: called in order, the first non-zero status rejects;
* received-instance callbacks: chained in order, each sees the bytes the previous one produced;
  ``DISCARD`` stops the chain;
* C-FIND and worklist handlers: all are called in order and add their answers to the same answer set;
* image decoders, transcoders and job unserializers: called in order, the first one that returns
  something other than ``None`` wins;
* metrics refreshers: all are called;
* C-MOVE (``RegisterMoveCallback``/``RegisterMoveCallback2``), the storage area and the storage
  commitment SCP: only one registration per Orthanc run; a second one raises ``RuntimeError``
  (Orthanc itself accepts only one of each).

Opaque pointers given to Orthanc (C-MOVE drivers, jobs, chunked-request readers, storage commitment
handlers, WebDAV collections) are integer handles cast to ``void*``: the Python objects stay in
dicts keyed by these handles, never referenced by their address.
"""

import datetime
import itertools
import json
import re
import threading
import collections

from _pythanc_cffi import ffi, lib

from . import _callbacks as cb
from . import _convert
from ._convert import (Borrowed, text, text_array, data, buffer_into, _ctx, _str, _check, release_ownership,
                       handle_pointer, pointer_handle, out_bool, NULL)

__all__ = ['RegisterIncomingHttpRequestFilter', 'RegisterReceivedInstanceCallback', 'RegisterIncomingCStoreInstanceFilter', 'RegisterIncomingDicomInstanceFilter', 'RegisterFindCallback', 'RegisterWorklistCallback', 'RegisterMoveCallback', 'RegisterMoveCallback2', 'RegisterStorageArea', 'RegisterStorageArea2', 'RegisterRefreshMetricsCallback', 'RegisterStorageCommitmentScpCallback', 'RegisterDecodeImageCallback', 'RegisterTranscoderCallback', 'RegisterChunkedRestCallback', 'RegisterWebDavCollection', 'CreateJob', 'RegisterJobsUnserializer']

ERR_SUCCESS = cb.ERR_SUCCESS
ERR_PLUGIN = cb.ERR_PLUGIN
ERR_NOT_IMPLEMENTED = cb.ERR_NOT_IMPLEMENTED
ERR_UNKNOWN_RESOURCE = cb.ERR_UNKNOWN_RESOURCE
ERR_BAD_SEQUENCE_OF_CALLS = 6

KEEP_AS_IS, MODIFY, DISCARD = 1, 2, 3                       # OrthancPluginReceivedInstanceAction
JOB_SUCCESS, JOB_FAILURE, JOB_CONTINUE = 1, 2, 3            # OrthancPluginJobStepStatus
LEVELS = {0: "PATIENT", 1: "STUDY", 2: "SERIES", 3: "INSTANCE"}   # OrthancPluginResourceType (NONE -> '')

_log_exception = cb._log_exception
_c_entry = cb._c_entry
_log_error = cb._log_error
_check_callable = cb._check_callable

_handles = itertools.count(1)   # process-wide, never reused (0 would be NULL)


def _new_handle():
    return next(_handles)


# ---------------------------------------------------------------------------------------------
# Registry


class _Extra:
    """What the scripts of this Orthanc run registered (besides REST, changes and OnStored)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.registered = set()    # keys of _SDK already registered with Orthanc in this run
        self.http_filters = []
        self.received = []
        self.cstore_filters = []
        self.dicom_filters = []
        self.find = []
        self.worklist = []
        self.move = None           # {"v1": callback} or {"create":, "size":, "apply":, "free":}
        self.moves = {}            # handle -> [driver, failed]
        self.storage = None        # {"create":, "read":, "range":, "remove":}
        self.metrics = []
        self.commitment = None     # (scp, lookup)
        self.commitment_handlers = {}
        self.decoders = []
        self.transcoders = []
        self.chunked = []          # [(compiled regex, {"get":, "post":, "delete":, "put":})]
        self.readers = {}          # handle -> [reader, failed]
        self.webdav = {}           # handle -> _WebDav
        self.unserializers = []


X = _Extra()
_JOBS = {}   # handle -> _JobState; jobs live in Orthanc's engine, so they outlive a registry reset


def _sdk_table():
    """Registration call of each kind, made once per Orthanc run (returns an error code or None)."""
    c = _ctx
    return {
        "http_filters": lambda: lib.OrthancPluginRegisterIncomingHttpRequestFilter2(
            c(), lib.pythanc_OrthancPluginIncomingHttpRequestFilter2),
        "received": lambda: lib.OrthancPluginRegisterReceivedInstanceCallback(
            c(), lib.pythanc_OrthancPluginReceivedInstanceCallback),
        "cstore_filters": lambda: lib.OrthancPluginRegisterIncomingCStoreInstanceFilter(
            c(), lib.pythanc_OrthancPluginIncomingCStoreInstanceFilter),
        "dicom_filters": lambda: lib.OrthancPluginRegisterIncomingDicomInstanceFilter(
            c(), lib.pythanc_OrthancPluginIncomingDicomInstanceFilter),
        "find": lambda: lib.OrthancPluginRegisterFindCallback(c(), lib.pythanc_OrthancPluginFindCallback),
        "worklist": lambda: lib.OrthancPluginRegisterWorklistCallback(c(), lib.pythanc_OrthancPluginWorklistCallback),
        "move": lambda: lib.OrthancPluginRegisterMoveCallback(
            c(), lib.pythanc_OrthancPluginMoveCallback, lib.pythanc_OrthancPluginGetMoveSize,
            lib.pythanc_OrthancPluginApplyMove, lib.pythanc_OrthancPluginFreeMove),
        "metrics": lambda: lib.OrthancPluginRegisterRefreshMetricsCallback(
            c(), lib.pythanc_OrthancPluginRefreshMetricsCallback),
        "commitment": lambda: lib.OrthancPluginRegisterStorageCommitmentScpCallback(
            c(), lib.pythanc_OrthancPluginStorageCommitmentFactory,
            lib.pythanc_OrthancPluginStorageCommitmentDestructor, lib.pythanc_OrthancPluginStorageCommitmentLookup),
        "decoders": lambda: lib.OrthancPluginRegisterDecodeImageCallback(
            c(), lib.pythanc_OrthancPluginDecodeImageCallback),
        "transcoders": lambda: lib.OrthancPluginRegisterTranscoderCallback(
            c(), lib.pythanc_OrthancPluginTranscoderCallback),
        "unserializers": lambda: lib.OrthancPluginRegisterJobsUnserializer(
            c(), lib.pythanc_OrthancPluginJobsUnserializer),
    }


def _register_sdk(kind):
    """Register the C entry point of ``kind`` with Orthanc, once per run (``X.lock`` held)."""
    if kind in X.registered:
        return
    code = _sdk_table()[kind]()
    if code:  # None for the SDK calls that return void
        _check(code)
    X.registered.add(kind)


def _append(kind, callback, description):
    """A registration of a kind that may be registered several times (called in order)."""
    _check_callable(callback, description)
    with X.lock:
        items = getattr(X, kind)
        items.append(callback)
        try:
            _register_sdk(kind)
        except BaseException:
            items.remove(callback)
            raise


def _set_once(kind, value, message):
    """A registration of a kind that Orthanc accepts once (C-MOVE, storage commitment)."""
    with X.lock:
        if getattr(X, kind) is not None:
            raise RuntimeError(message)
        setattr(X, kind, value)
        try:
            _register_sdk(kind)
        except BaseException:
            setattr(X, kind, None)
            raise


def _request_kw(method, request, with_get):
    kw = {"method": cb.METHODS.get(method, str(method)),
          "groups": tuple(text(request.groups[i]) for i in range(request.groupsCount)),
          "headers": cb._string_dict(request.headersCount, request.headersKeys, request.headersValues)}
    if with_get and method == 1:
        kw["get"] = cb._string_dict(request.getCount, request.getKeys, request.getValues)
    return kw


def _is_bytes(v):
    return isinstance(v, (bytes, bytearray, memoryview))


# ---------------------------------------------------------------------------------------------
# HTTP filter


def RegisterIncomingHttpRequestFilter(callback):
    """Register ``callback(uri, method=int, ip=str, headers=dict, get=dict)`` (``get`` for GET only),
    called before each external HTTP request is routed.  It returns ``True`` to allow the request,
    ``False`` to answer 403.  An exception or a non-bool result answers 500 (logged).

    Several filters may be registered: they are called in registration order, and a request is
    allowed only if every filter allows it (the first ``False`` stops)."""
    _append("http_filters", callback, "Python incoming-http-request filter")


@_c_entry("Python incoming-http-request filter", -1)
def pythanc_OrthancPluginIncomingHttpRequestFilter2(method, uri, ip, headers_count, headers_keys, headers_values,
                                                     get_count, get_keys, get_values):
    filters = list(X.http_filters)
    if not filters:
        return 1
    u = text(uri)
    method = int(method)
    address = text(ip)
    headers = cb._string_dict(headers_count, headers_keys, headers_values)
    get = cb._string_dict(get_count, get_keys, get_values) if method == 1 else None
    for f in filters:
        kw = {"method": method, "ip": address, "headers": dict(headers)}
        if get is not None:
            kw["get"] = dict(get)
        allowed = f(u, **kw)
        if type(allowed) is not bool:
            _log_error("The Python incoming-http-request filter has not returned a Boolean (it returned %s)"
                       % type(allowed).__name__)
            return -1
        if not allowed:
            return 0
    return 1


# ---------------------------------------------------------------------------------------------
# Received instances and instance filters


def RegisterReceivedInstanceCallback(callback):
    """Register ``callback(received_dicom: bytes, origin: int) -> (action, bytes or None)``, called on
    each received instance (C-STORE or REST) before it is filtered and stored.  ``action`` is an
    ``orthanc.ReceivedInstanceAction``: ``KEEP_AS_IS``, ``MODIFY`` (store the returned bytes instead)
    or ``DISCARD`` (store nothing; the sender still sees a success).

    An exception, or a result that is not such a tuple, is logged and counts as ``KEEP_AS_IS``.
    Several callbacks are chained in registration order: each receives the bytes the previous one
    returned, and ``DISCARD`` stops the chain."""
    _append("received", callback, "Python received-instance callback")


def _received_result(r):
    """``(action, payload)`` from a received-instance callback's result, or ``None`` (logged)."""
    if type(r) is not tuple or len(r) != 2 or not isinstance(r[0], int) or isinstance(r[0], bool) \
            or int(r[0]) not in (KEEP_AS_IS, MODIFY, DISCARD):
        _log_error("The Python received-instance callback has not returned a tuple as expected: "
                   "(orthanc.ReceivedInstanceAction, bytes or None), got %r; the instance is kept as is"
                   % (r if type(r) is not tuple else tuple(type(x).__name__ for x in r),))
        return None
    action, payload = int(r[0]), r[1]
    if action == MODIFY and not _is_bytes(payload):
        _log_error("The Python received-instance callback returned MODIFY without bytes (got %s); "
                   "the instance is kept as is" % type(payload).__name__)
        return None
    return action, payload


@_c_entry("Python received-instance callback", KEEP_AS_IS)
def pythanc_OrthancPluginReceivedInstanceCallback(target, buffer, size, origin):
    callbacks = list(X.received)
    if not callbacks:
        return KEEP_AS_IS
    current = data(buffer, size)
    origin = int(origin)
    modified = False
    for f in callbacks:
        try:
            r = f(current, origin)
        except BaseException:
            _log_exception("Python received-instance callback")
            continue
        result = _received_result(r)
        if result is None:
            continue
        action, payload = result
        if action == DISCARD:
            return DISCARD
        if action == MODIFY:
            current = bytes(payload)
            modified = True
    if modified:
        buffer_into(target, current, "modified DICOM", is64=True)
        return MODIFY
    return KEEP_AS_IS


def RegisterIncomingCStoreInstanceFilter(callback):
    """Register ``callback(instance: orthanc.DicomInstance) -> int`` for the instances received by
    C-STORE: ``0`` stores the instance; ``1..0xFFFF`` rejects it, and the C-STORE SCU receives that
    DIMSE status (e.g. ``0xA700``, out of resources).  Anything else (or an exception) is an error:
    logged, and the SCU gets a failure.

    Several filters are called in registration order; the first non-zero status rejects."""
    _append("cstore_filters", callback, "Python incoming C-STORE filter")


@_c_entry("Python incoming C-STORE filter", -1)
def pythanc_OrthancPluginIncomingCStoreInstanceFilter(dimse_status, instance):
    filters = list(X.cstore_filters)
    with Borrowed(cb.DicomInstance, instance) as dicom:
        for f in filters:
            r = f(dicom)
            if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= 0xFFFF:
                _log_error("The Python incoming C-STORE filter has not returned an integer between 0 and "
                           "0xFFFF (0 to store, else the DIMSE status of the rejection); it returned %r"
                           % (r if isinstance(r, int) else type(r).__name__,))
                return -1
            if r != 0:
                dimse_status[0] = int(r)
                return 0
    return 1


def RegisterIncomingDicomInstanceFilter(callback):
    """(pythanc) Register ``callback(instance: orthanc.DicomInstance) -> bool`` for every received
    instance (REST, C-STORE, ...): ``True`` (or ``1``) stores it, ``False`` (or ``0``) discards it.
    Anything else, or an exception, is an error: logged, and the instance is not stored.

    Several filters are called in registration order; an instance is stored only if every filter
    accepts it (the first ``False`` stops)."""
    _append("dicom_filters", callback, "Python incoming DICOM instance filter")


@_c_entry("Python incoming DICOM instance filter", -1)
def pythanc_OrthancPluginIncomingDicomInstanceFilter(instance):
    filters = list(X.dicom_filters)
    with Borrowed(cb.DicomInstance, instance) as dicom:
        for f in filters:
            r = f(dicom)
            if not isinstance(r, int) or r not in (0, 1):
                _log_error("The Python incoming DICOM instance filter has not returned a Boolean "
                           "(True/1 to accept, False/0 to discard); it returned %r"
                           % (r if isinstance(r, int) else type(r).__name__,))
                return -1
            if not r:
                return 0
    return 1


# ---------------------------------------------------------------------------------------------
# C-FIND, worklists


def RegisterFindCallback(callback):
    """Register ``callback(answers: orthanc.FindAnswers, query: orthanc.FindQuery, issuer_aet: str,
    called_aet: str)`` to answer C-FIND requests (except worklists).  Add matches with
    ``answers.FindAddAnswer(dicom_bytes)``.  An exception makes the SCU see a failure
    (UnableToProcess).

    Several callbacks are called in registration order, adding to the same answers."""
    _append("find", callback, "Python C-FIND SCP callback")


def RegisterWorklistCallback(callback):
    """Register ``callback(answers: orthanc.WorklistAnswers, query: orthanc.WorklistQuery,
    issuer_aet: str, called_aet: str)`` to answer modality worklist C-FIND requests.  Add answers
    with ``answers.WorklistAddAnswer(query, dicom_bytes)``; ``query.WorklistIsMatch(dicom_bytes)``
    tests one.  An exception makes the SCU see a failure.

    Several callbacks are called in registration order, adding to the same answers."""
    _append("worklist", callback, "Python worklist SCP callback")


def _scp(kind, description, answers_cls, query_cls, answers, query, issuer_aet, called_aet):
    try:
        issuer, called = text(issuer_aet), text(called_aet)
        with Borrowed(answers_cls, answers) as a, Borrowed(query_cls, query) as q:
            for f in list(getattr(X, kind)):
                f(a, q, issuer, called)
        return ERR_SUCCESS
    except BaseException:
        _log_exception(description)
        return ERR_PLUGIN


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginFindCallback(answers, query, issuer_aet, called_aet):
    return _scp("find", "Python C-FIND SCP callback", cb.FindAnswers, cb.FindQuery,
                answers, query, issuer_aet, called_aet)


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWorklistCallback(answers, query, issuer_aet, called_aet):
    return _scp("worklist", "Python worklist SCP callback", cb.WorklistAnswers, cb.WorklistQuery,
                answers, query, issuer_aet, called_aet)


# ---------------------------------------------------------------------------------------------
# C-MOVE

_MOVE_TWICE = "Can only register one C-MOVE SCP handler (RegisterMoveCallback or RegisterMoveCallback2)"


def RegisterMoveCallback(callback):
    """Register ``callback(**request)`` to serve C-MOVE requests.  ``request`` has the keywords
    ``Level`` (``'PATIENT'``, ``'STUDY'``, ``'SERIES'``, ``'INSTANCE'``, or ``''`` when the query has
    no QueryRetrieveLevel), ``PatientID``, ``AccessionNumber``, ``StudyInstanceUID``,
    ``SeriesInstanceUID``, ``SOPInstanceUID``, ``OriginatorAET``, ``SourceAET``, ``TargetAET``
    (``str``, ``''`` when absent) and ``OriginatorID`` (``int``).  The callback sends the files itself
    (e.g. ``orthanc.RestApiPost('/modalities/<target>/store', ...)``).

    As with the official plugin, Orthanc is told of one sub-operation, and the callback runs when it
    is applied; an exception reports it as failed.  Only one C-MOVE handler may be registered
    (this or :func:`RegisterMoveCallback2`): a second one raises ``RuntimeError``."""
    _check_callable(callback, "Python C-MOVE SCP callback")
    _set_once("move", {"v1": callback}, _MOVE_TWICE)


def RegisterMoveCallback2(create, get_move_size, apply_move, free_move):
    """Register a C-MOVE handler made of four callables: ``create(**request)`` (same keywords as
    :func:`RegisterMoveCallback`) returns a driver object; ``get_move_size(driver) -> int`` gives the
    number of sub-operations; ``apply_move(driver)`` runs the next one (an exception marks it as
    failed); ``free_move(driver)`` is called at the end.  pythanc keeps the driver alive in between.

    An exception in ``create`` fails the whole C-MOVE; one in ``get_move_size`` (or a result that is
    not an int) is logged and reported as one failed sub-operation.  Only one C-MOVE handler may be
    registered: a second one raises ``RuntimeError``."""
    for fn in (create, get_move_size, apply_move, free_move):
        if not callable(fn):
            raise TypeError("Expected four callback functions to register a C-MOVE SCP handler")
    _set_once("move", {"create": create, "size": get_move_size, "apply": apply_move, "free": free_move},
              _MOVE_TWICE)


@_c_entry("Python C-MOVE SCP callback", NULL)
def pythanc_OrthancPluginMoveCallback(resource_type, patient_id, accession_number, study_uid, series_uid,
                                      sop_uid, originator_aet, source_aet, target_aet, originator_id):
    handler = X.move
    if handler is None:
        return NULL
    kw = {"Level": LEVELS.get(int(resource_type), ""),
          "PatientID": text(patient_id), "AccessionNumber": text(accession_number),
          "StudyInstanceUID": text(study_uid), "SeriesInstanceUID": text(series_uid),
          "SOPInstanceUID": text(sop_uid), "OriginatorAET": text(originator_aet),
          "SourceAET": text(source_aet), "TargetAET": text(target_aet),
          "OriginatorID": int(originator_id)}
    if "v1" in handler:
        driver = kw
    else:
        driver = handler["create"](**kw)
    h = _new_handle()
    X.moves[h] = [handler, driver, False]
    return handle_pointer(h)


@ffi.def_extern(error=1)
def pythanc_OrthancPluginGetMoveSize(move_driver):
    try:
        entry = X.moves.get(pointer_handle(move_driver))
        if entry is None:
            return 0
        handler, driver, _ = entry
        if "v1" in handler:
            return 1
        n = handler["size"](driver)
        if type(n) is not int or not 0 <= n <= 0xFFFFFFFF:
            _log_error("The Python C-MOVE get_move_size callback has not returned an int (it returned %r); "
                       "the C-MOVE fails" % (n if isinstance(n, int) else type(n).__name__,))
            entry[2] = True
            return 1
        return n
    except BaseException:
        _log_exception("Python C-MOVE get_move_size callback")
        entry = X.moves.get(pointer_handle(move_driver))
        if entry is not None:
            entry[2] = True   # report one failed sub-operation rather than a bogus size
        return 1


@_c_entry("Python C-MOVE SCP callback", ERR_PLUGIN)
def pythanc_OrthancPluginApplyMove(move_driver):
    entry = X.moves.get(pointer_handle(move_driver))
    if entry is None:
        return ERR_BAD_SEQUENCE_OF_CALLS
    handler, driver, failed = entry
    if failed:
        return ERR_PLUGIN
    if "v1" in handler:
        handler["v1"](**driver)
    else:
        handler["apply"](driver)
    return ERR_SUCCESS


@ffi.def_extern()
def pythanc_OrthancPluginFreeMove(move_driver):
    try:
        entry = X.moves.pop(pointer_handle(move_driver), None)
        if entry is not None and "free" in entry[0]:
            entry[0]["free"](entry[1])
    except BaseException:
        _log_exception("Python C-MOVE free_move callback")


# ---------------------------------------------------------------------------------------------
# Storage area

_STORAGE_TWICE = "Cannot register twice a custom storage area"


def RegisterStorageArea(create, read, remove):
    """Replace Orthanc's storage area: ``create(uuid: str, content_type: int, data: bytes)``,
    ``read(uuid, content_type) -> bytes`` and ``remove(uuid, content_type)``.

    Call it while the script is imported (Orthanc chooses its storage area at start-up).  An
    exception in ``create`` or ``read`` (or ``read`` not returning bytes) makes the request fail;
    one in ``remove`` is logged.  Orthanc accepts one storage area: a second registration (this or
    :func:`RegisterStorageArea2`) raises ``RuntimeError``.  Orthanc's storage cache may serve reads
    without calling ``read`` (``MaximumStorageCacheSize: 0`` disables it)."""
    for fn in (create, read, remove):
        if not callable(fn):
            raise TypeError("Expected three callback functions to register a custom storage area")
    _set_storage({"create": create, "read": read, "range": None, "remove": remove})


def RegisterStorageArea2(create, read_whole, read_range, remove):
    """(pythanc) :func:`RegisterStorageArea` with range reads: ``read_range(uuid, content_type,
    start: int, size: int) -> bytes`` must return exactly ``size`` bytes from offset ``start``
    (``read_range`` may be ``None``: Orthanc then reads whole files)."""
    for fn in (create, read_whole, remove):
        if not callable(fn):
            raise TypeError("Expected callback functions (create, read_whole, remove) to register a custom "
                            "storage area")
    if read_range is not None and not callable(read_range):
        raise TypeError("read_range must be a callback function or None")
    _set_storage({"create": create, "read": read_whole, "range": read_range, "remove": remove})


def _set_storage(storage):
    with X.lock:
        if X.storage is not None or "storage" in X.registered:
            raise RuntimeError(_STORAGE_TWICE)
        lib.OrthancPluginRegisterStorageArea2(
            _ctx(), lib.pythanc_OrthancPluginStorageCreate, lib.pythanc_OrthancPluginStorageReadWhole,
            lib.pythanc_OrthancPluginStorageReadRange if storage["range"] is not None else NULL,
            lib.pythanc_OrthancPluginStorageRemove)
        X.storage = storage
        X.registered.add("storage")


def _storage(what):
    s = X.storage
    if s is None:
        raise RuntimeError("No Python storage area is registered (any more)")
    return s[what]


@_c_entry("Python storage area create callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCreate(uuid, content, size, content_type):
    _storage("create")(text(uuid), int(content_type), data(content, size))
    return ERR_SUCCESS


@_c_entry("Python storage area read callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageReadWhole(target, uuid, content_type):
    r = _storage("read")(text(uuid), int(content_type))
    if not _is_bytes(r):
        _log_error("The Python storage area read callback has not returned bytes as expected (it returned %s)"
                   % type(r).__name__)
        return ERR_PLUGIN
    buffer_into(target, r, "content", is64=True)
    return ERR_SUCCESS


@_c_entry("Python storage area read_range callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageReadRange(target, uuid, content_type, range_start):
    size = int(target.size)
    r = _storage("range")(text(uuid), int(content_type), int(range_start), size)
    if not _is_bytes(r) or len(r) != size:
        _log_error("The Python storage area read_range callback has not returned %d bytes as expected "
                   "(it returned %s)" % (size, ("%d bytes" % len(r)) if _is_bytes(r) else type(r).__name__))
        return ERR_PLUGIN
    if size:
        ffi.memmove(target.data, r, size)
    return ERR_SUCCESS


@_c_entry("Python storage area remove callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageRemove(uuid, content_type):
    _storage("remove")(text(uuid), int(content_type))
    return ERR_SUCCESS


# ---------------------------------------------------------------------------------------------
# Metrics


def RegisterRefreshMetricsCallback(callback):
    """(pythanc) Register ``callback()``, called whenever Orthanc's metrics are read (e.g.
    ``/tools/metrics-prometheus``); it typically calls ``orthanc.SetMetricsValue(name, value,
    orthanc.MetricsType.DEFAULT)``.  Several callbacks are all called, in registration order; an
    exception is logged."""
    _append("metrics", callback, "Python refresh-metrics callback")


@ffi.def_extern()
def pythanc_OrthancPluginRefreshMetricsCallback():
    for f in list(X.metrics):
        try:
            f()
        except BaseException:
            _log_exception("Python refresh-metrics callback")


# ---------------------------------------------------------------------------------------------
# Storage commitment SCP


def RegisterStorageCommitmentScpCallback(scp, lookup):
    """Register the storage commitment SCP: ``scp(job_id, transaction_uid, sop_class_uids: list,
    sop_instance_uids: list, remote_aet, called_aet)`` returns a handler object (any object, kept
    alive until Orthanc releases it); then ``lookup(sop_class_uid, sop_instance_uid, handler)``
    returns an ``orthanc.StorageCommitmentFailureReason`` (int) for each instance.

    An exception, or a lookup result that is not an int, is logged and reported to Orthanc as an
    error (never as a success).  Only one registration: a second one raises ``RuntimeError``."""
    if not callable(scp) or not callable(lookup):
        raise TypeError("Expected two callback functions to register a storage commitment SCP")
    _set_once("commitment", (scp, lookup), "Can only register once for storage commitment SCP")


@_c_entry("Python storage commitment SCP callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCommitmentFactory(handler, job_id, transaction_uid, sop_class_uids,
                                                  sop_instance_uids, count, remote_aet, called_aet):
    handler[0] = NULL
    scp = X.commitment[0]
    obj = scp(text(job_id), text(transaction_uid), text_array(sop_class_uids, count),
              text_array(sop_instance_uids, count), text(remote_aet), text(called_aet))
    h = _new_handle()
    X.commitment_handlers[h] = obj
    handler[0] = handle_pointer(h)
    return ERR_SUCCESS


@ffi.def_extern()
def pythanc_OrthancPluginStorageCommitmentDestructor(handler):
    try:
        if handler != NULL:
            X.commitment_handlers.pop(pointer_handle(handler), None)
    except BaseException:
        _log_exception("Python storage commitment SCP destructor")


@_c_entry("Python storage commitment lookup callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCommitmentLookup(target, handler, sop_class_uid, sop_instance_uid):
    h = pointer_handle(handler)
    if h not in X.commitment_handlers or X.commitment is None:
        _log_error("Storage commitment lookup for an unknown handler")
        return ERR_BAD_SEQUENCE_OF_CALLS
    r = X.commitment[1](text(sop_class_uid), text(sop_instance_uid), X.commitment_handlers[h])
    if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= 0xFFFF:
        _log_error("The Python storage commitment lookup callback has not returned an int "
                   "(orthanc.StorageCommitmentFailureReason); it returned %r"
                   % (r if isinstance(r, int) else type(r).__name__,))
        return ERR_PLUGIN
    target[0] = int(r)
    return ERR_SUCCESS


# ---------------------------------------------------------------------------------------------
# Image decoding, transcoding


def RegisterDecodeImageCallback(callback):
    """(pythanc) Register ``callback(dicom: bytes, frame: int) -> orthanc.Image or None`` to decode
    DICOM frames (previews, ``/frames/N/...``).  Return an image that Python owns (from
    ``orthanc.CreateImage``, ``CreateImageFromBuffer``, ``UncompressImage``...): it is handed over
    to Orthanc and becomes invalid in Python.  ``None`` lets Orthanc's own decoder work.

    Several decoders are tried in registration order: the first one returning an image wins.  An
    exception or a wrong result is logged and the next decoder (eventually Orthanc's) is tried."""
    _append("decoders", callback, "Python image decoder callback")


@_c_entry("Python image decoder callback", ERR_PLUGIN)
def pythanc_OrthancPluginDecodeImageCallback(target, dicom, size, frame):
    target[0] = NULL
    decoders = list(X.decoders)
    if not decoders:
        return ERR_NOT_IMPLEMENTED
    buf = data(dicom, size)
    failed = False
    for f in decoders:
        try:
            image = f(buf, int(frame))
            if image is None:
                continue
            target[0] = release_ownership(image, cb.Image, "the result of the image decoder")
            return ERR_SUCCESS
        except BaseException:
            _log_exception("Python image decoder callback")
            failed = True
    return ERR_PLUGIN if failed else ERR_NOT_IMPLEMENTED


def RegisterTranscoderCallback(callback):
    """(pythanc) Register ``callback(buffer: bytes, allowed_syntaxes: list[str],
    allow_new_sop_instance_uid: bool) -> bytes or None`` to transcode DICOM files: return the file
    in one of the allowed transfer syntaxes, or ``None`` to let the next transcoder (eventually
    Orthanc's own) do it.  An exception is logged and counts as ``None``.

    Several transcoders are tried in registration order; the first that returns bytes wins."""
    _append("transcoders", callback, "Python transcoder callback")


@_c_entry("Python transcoder callback", ERR_PLUGIN)
def pythanc_OrthancPluginTranscoderCallback(target, buffer, size, allowed, count, allow_new_uid):
    transcoders = list(X.transcoders)
    if not transcoders:
        return ERR_NOT_IMPLEMENTED
    buf = data(buffer, size)
    syntaxes = text_array(allowed, count)
    failed = False
    for f in transcoders:
        try:
            r = f(buf, list(syntaxes), bool(allow_new_uid))
            if r is None:
                continue
            if not _is_bytes(r):
                _log_error("The Python transcoder callback has not returned bytes or None (it returned %s)"
                           % type(r).__name__)
                failed = True
                continue
            buffer_into(target, r, "transcoded DICOM")
            return ERR_SUCCESS
        except BaseException:
            _log_exception("Python transcoder callback")
            failed = True
    return ERR_PLUGIN if failed else ERR_NOT_IMPLEMENTED


# ---------------------------------------------------------------------------------------------
# Chunked REST callbacks

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
    ``RegisterRestCallback`` routes.  Call it while the script is imported.  An exception answers 500
    and is logged."""
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
    with X.lock:
        if not _CHUNKED_GET_DELETE:
            _CHUNKED_GET_DELETE.append(ffi.callback("OrthancPluginRestCallback", _chunked_get_delete,
                                                    error=ERR_PLUGIN))
        rest = _CHUNKED_GET_DELETE[0]
        factory = lib.pythanc_OrthancPluginServerChunkedRequestReaderFactory
        X.chunked.append((compiled, {"get": get, "post": post, "delete": delete, "put": put}))
        lib.OrthancPluginRegisterChunkedRestCallback(
            _ctx(), c_regex, rest if get is not None else NULL, factory if post is not None else NULL,
            rest if delete is not None else NULL, factory if put is not None else NULL,
            lib.pythanc_OrthancPluginServerChunkedRequestReaderAddChunk,
            lib.pythanc_OrthancPluginServerChunkedRequestReaderExecute,
            lib.pythanc_OrthancPluginServerChunkedRequestReaderFinalize)


def _chunked_route(uri, method_key):
    for regex, route in list(X.chunked):
        if regex.fullmatch(uri) is not None:
            return route.get(method_key)
    return None


def _chunked_get_delete(output, url, request):
    try:
        uri = text(url)
        method = int(request.method)
        fn = _chunked_route(uri, "get" if method == 1 else "delete")
        if fn is None:
            return ERR_UNKNOWN_RESOURCE
        kw = _request_kw(method, request, True)
        with Borrowed(cb.RestOutput, output) as out:
            fn(out, uri, **kw)
        return ERR_SUCCESS
    except BaseException:
        _log_exception("Python chunked REST callback")
        return ERR_PLUGIN


@_c_entry("Python chunked REST factory", ERR_PLUGIN)
def pythanc_OrthancPluginServerChunkedRequestReaderFactory(reader, url, request):
    reader[0] = NULL
    uri = text(url)
    method = int(request.method)
    fn = _chunked_route(uri, "post" if method == 2 else "put")
    if fn is None:
        return ERR_UNKNOWN_RESOURCE
    obj = fn(uri, **_request_kw(method, request, False))
    for m in ("add_chunk", "execute"):
        if not callable(getattr(obj, m, None)):
            _log_error("The Python chunked REST factory for %s has not returned a reader: %s has no %s() method"
                       % (uri, type(obj).__name__, m))
            return ERR_PLUGIN
    h = _new_handle()
    X.readers[h] = [obj, False]   # [reader, failed]
    reader[0] = handle_pointer(h, "OrthancPluginServerChunkedRequestReader *")
    return ERR_SUCCESS


def _reader(p):
    entry = X.readers.get(pointer_handle(p))
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
        _log_exception("Python chunked REST reader (add_chunk)")
        if entry is not None:
            entry[1] = True   # Orthanc 1.10 goes on after a failed chunk: execute() will answer 500
        return ERR_PLUGIN


@_c_entry("Python chunked REST reader (execute)", ERR_PLUGIN)
def pythanc_OrthancPluginServerChunkedRequestReaderExecute(reader, output):
    obj, failed = _reader(reader)
    if failed:
        return ERR_PLUGIN
    with Borrowed(cb.RestOutput, output) as out:
        obj.execute(out)
    return ERR_SUCCESS


@ffi.def_extern()
def pythanc_OrthancPluginServerChunkedRequestReaderFinalize(reader):
    try:
        entry = X.readers.pop(pointer_handle(reader), None)
        fin = getattr(entry[0], "finalize", None) if entry is not None else None
        if callable(fin):
            fin()
    except BaseException:
        _log_exception("Python chunked REST reader (finalize)")


# ---------------------------------------------------------------------------------------------
# WebDAV


class _WebDav:
    __slots__ = ("uri", "is_existing_folder", "list_folder", "retrieve_file", "store_file", "create_folder",
                 "delete_item")


def RegisterWebDavCollection(uri, is_existing_folder, list_folder, retrieve_file, store_file, create_folder,
                             delete_item):
    """(pythanc) Serve a WebDAV collection at ``uri`` (e.g. ``'/webdav-py'``).  Each callback gets
    ``path``, the list of the path's items below ``uri`` (``[]`` for the root):

    * ``is_existing_folder(path) -> bool``;
    * ``list_folder(path) -> (folders, files)`` or ``None`` if there is no such folder; ``folders``
      holds names (or ``(name, date)``), ``files`` holds ``(name, size, mime=None, date=None)``;
    * ``retrieve_file(path) -> (data: bytes, mime=None, date=None)`` or ``None`` (404);
    * ``store_file(path, data: bytes) -> bool``, ``create_folder(path) -> bool`` and
      ``delete_item(path) -> bool``: ``True`` when done, ``False`` when the collection is read-only.

    Dates are ``datetime.datetime`` (UTC) or strings ``'YYYYMMDDTHHMMSS'``; ``None`` means now.  An
    exception or a wrong result is logged and answers an error.  Call it while the script is
    imported; several collections may be registered at different URIs."""
    c = _WebDav()
    c.uri = uri
    names = ("is_existing_folder", "list_folder", "retrieve_file", "store_file", "create_folder", "delete_item")
    fns = (is_existing_folder, list_folder, retrieve_file, store_file, create_folder, delete_item)
    for name, fn in zip(names, fns):
        if not callable(fn):
            raise TypeError("Expected six callback functions to register a WebDAV collection (%s is %s)"
                            % (name, type(fn).__name__))
        setattr(c, name, fn)
    c_uri = _str(uri, "uri")
    h = _new_handle()
    with X.lock:
        X.webdav[h] = c
        try:
            _check(lib.OrthancPluginRegisterWebDavCollection(
                _ctx(), c_uri, lib.pythanc_OrthancPluginWebDavIsExistingFolderCallback,
                lib.pythanc_OrthancPluginWebDavListFolderCallback, lib.pythanc_OrthancPluginWebDavRetrieveFileCallback,
                lib.pythanc_OrthancPluginWebDavStoreFileCallback, lib.pythanc_OrthancPluginWebDavCreateFolderCallback,
                lib.pythanc_OrthancPluginWebDavDeleteItemCallback, handle_pointer(h)))
        except BaseException:
            X.webdav.pop(h, None)
            raise


def _dav(payload):
    c = X.webdav.get(pointer_handle(payload))
    if c is None:
        raise RuntimeError("unknown WebDAV collection")
    return c


def _dav_date(value):
    if value is None:
        value = datetime.datetime.now(datetime.timezone.utc)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.strftime("%Y%m%dT%H%M%S").encode()
    return _str(value, "date")


# The out-argument that the SDK header calls ``isReadOnly`` (store, create folder, delete) is read
# by the Orthanc 1.10 core as "the operation was done" (``return (isReadOnly != 0)``, and a false
# result answers 403): pythanc writes 1 when the Python callback returns True.
def _dav_bool(r, what):
    if type(r) is not bool:
        raise TypeError("The Python WebDAV %s callback must return a bool, not %s" % (what, type(r).__name__))
    return r


def _dav_answer_bool(out, path_size, path_items, payload, what):
    """A WebDAV callback answered by a bool that the Python method ``what`` returns for the path."""
    try:
        c = _dav(payload)
        out_bool(out, _dav_bool(getattr(c, what)(text_array(path_items, path_size)), what))
        return ERR_SUCCESS
    except BaseException:
        _log_exception("Python WebDAV %s callback" % what)
        return ERR_PLUGIN


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWebDavIsExistingFolderCallback(is_existing, path_size, path_items, payload):
    return _dav_answer_bool(is_existing, path_size, path_items, payload, "is_existing_folder")


@_c_entry("Python WebDAV list_folder callback", ERR_PLUGIN)
def pythanc_OrthancPluginWebDavListFolderCallback(is_existing, collection, add_file, add_folder, path_size,
                                                  path_items, payload):
    c = _dav(payload)
    r = c.list_folder(text_array(path_items, path_size))
    if r is None:
        out_bool(is_existing, False)
        return ERR_SUCCESS
    if not isinstance(r, (tuple, list)) or len(r) != 2:
        raise TypeError("The Python WebDAV list_folder callback must return (folders, files) or None, not %r"
                        % type(r).__name__)
    folders, files = r
    for item in folders:
        name, date = (item, None) if isinstance(item, str) else tuple(item)
        _check(add_folder(collection, _str(name, "folder name"), _dav_date(date)))
    for item in files:
        item = tuple(item) + (None,) * (4 - len(item))
        name, size, mime, date = item[:4]
        _check(add_file(collection, _str(name, "file name"), _convert._int(size, "file size", 0, 2**64 - 1),
                        _str(mime or "", "mime"), _dav_date(date)))
    out_bool(is_existing, True)
    return ERR_SUCCESS


@_c_entry("Python WebDAV retrieve_file callback", ERR_PLUGIN)
def pythanc_OrthancPluginWebDavRetrieveFileCallback(collection, retrieve, path_size, path_items, payload):
    c = _dav(payload)
    r = c.retrieve_file(text_array(path_items, path_size))
    if r is None:
        return ERR_UNKNOWN_RESOURCE
    if _is_bytes(r):
        r = (r,)
    if not isinstance(r, (tuple, list)) or not 1 <= len(r) <= 3 or not _is_bytes(r[0]):
        raise TypeError("The Python WebDAV retrieve_file callback must return (bytes, mime, date) or None")
    r = tuple(r) + (None,) * (3 - len(r))
    content, mime, date = r
    p, n = _convert._buf64(content, "data")
    _check(retrieve(collection, p, n, _str(mime or "", "mime"), _dav_date(date)))
    return ERR_SUCCESS


@_c_entry("Python WebDAV store_file callback", ERR_PLUGIN)
def pythanc_OrthancPluginWebDavStoreFileCallback(is_read_only, path_size, path_items, content, size, payload):
    c = _dav(payload)
    done = _dav_bool(c.store_file(text_array(path_items, path_size), data(content, size)), "store_file")
    out_bool(is_read_only, done)
    return ERR_SUCCESS


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWebDavCreateFolderCallback(is_read_only, path_size, path_items, payload):
    return _dav_answer_bool(is_read_only, path_size, path_items, payload, "create_folder")


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWebDavDeleteItemCallback(is_read_only, path_size, path_items, payload):
    return _dav_answer_bool(is_read_only, path_size, path_items, payload, "delete_item")


# ---------------------------------------------------------------------------------------------
# Jobs


class _JobState:
    __slots__ = ("job_type", "step", "progress", "content", "serialized", "stop", "reset", "strings", "lock")

    def keep(self, value):
        """A ``const char*`` for Orthanc, kept alive for a while (Orthanc copies it at once; a few
        recent ones are kept in case two threads ask at the same time)."""
        s = ffi.new("char[]", value.encode("utf-8", "surrogateescape").replace(b"\0", b""))
        with self.lock:
            self.strings.append(s)
        return s


def CreateJob(job_type, step, progress=None, content=None, serialized=None, stop=None, reset=None):
    """(pythanc) Create a job for Orthanc's jobs engine; submit it with ``job.SubmitJob(priority)``.

    * ``step() -> orthanc.JobStepStatus``: ``SUCCESS`` (1), ``FAILURE`` (2) or ``CONTINUE`` (3, call
      again).  It runs on a thread of the jobs engine.  An exception or another value fails the job.
    * ``progress() -> float`` between 0 and 1 (default: 0 until done).
    * ``content() -> dict`` (or a JSON ``str``): shown in ``/jobs/<id>`` as ``Content``.
    * ``serialized() -> dict`` (or JSON ``str``) or ``None``: what is saved to restart the job after
      Orthanc restarts (see :func:`RegisterJobsUnserializer`); without it the job is not saved.
    * ``stop(reason: orthanc.JobStopReason)``: the job leaves the running state (paused, canceled,
      finished...); ``reset()``: a stopped job is started again.

    The returned ``orthanc.Job`` is owned by Python until ``SubmitJob`` hands it over to Orthanc
    (the object is then invalid); a job that is never submitted is freed with the object."""
    if not callable(step):
        raise TypeError("Expected a callback function for the step of the job")
    for name, fn in (("progress", progress), ("content", content), ("serialized", serialized),
                     ("stop", stop), ("reset", reset)):
        if fn is not None and not callable(fn):
            raise TypeError("%s must be a callback function or None" % name)
    state = _JobState()
    state.job_type = job_type
    state.step, state.progress, state.content = step, progress, content
    state.serialized, state.stop, state.reset = serialized, stop, reset
    state.strings = collections.deque(maxlen=8)
    state.lock = threading.Lock()
    c_type = _str(job_type, "job_type")
    h = _new_handle()
    _JOBS[h] = state
    p = lib.OrthancPluginCreateJob(
        _ctx(), handle_pointer(h), lib.pythanc_OrthancPluginJobFinalize, c_type,
        lib.pythanc_OrthancPluginJobGetProgress, lib.pythanc_OrthancPluginJobGetContent,
        lib.pythanc_OrthancPluginJobGetSerialized, lib.pythanc_OrthancPluginJobStep,
        lib.pythanc_OrthancPluginJobStop, lib.pythanc_OrthancPluginJobReset)
    if p == NULL:
        _JOBS.pop(h, None)
    return _convert._own(cb.Job, p, lib.OrthancPluginFreeJob)


def submit_job(job, priority):
    """``Job.SubmitJob``: Orthanc takes the job over (it frees it through the finalize callback)."""
    priority = _convert._int(priority, "priority", -2**31, 2**31 - 1)
    p = release_ownership(job, cb.Job, "job")
    return _convert._take_string(lib.OrthancPluginSubmitJob(_ctx(), p, priority))


def _job(p):
    state = _JOBS.get(pointer_handle(p))
    if state is None:
        raise RuntimeError("unknown job (already finalized?)")
    return state


def _json_text(value, what):
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError("The Python job %s callback must return a dict (JSON object) or a JSON str: %s"
                        % (what, e)) from None


@ffi.def_extern()
def pythanc_OrthancPluginJobFinalize(job):
    try:
        _JOBS.pop(pointer_handle(job), None)
    except BaseException:
        _log_exception("Python job finalize")


@_c_entry("Python job progress callback", 0.0)
def pythanc_OrthancPluginJobGetProgress(job):
    state = _job(job)
    if state.progress is None:
        return 0.0
    r = state.progress()
    if isinstance(r, bool) or not isinstance(r, (int, float)):
        _log_error("The Python job progress callback has not returned a float (it returned %s)"
                   % type(r).__name__)
        return 0.0
    return min(1.0, max(0.0, float(r)))


@ffi.def_extern()
def pythanc_OrthancPluginJobGetContent(job):
    try:
        state = _job(job)
        value = {} if state.content is None else state.content()
        return state.keep(_json_text({} if value is None else value, "content"))
    except BaseException:
        _log_exception("Python job content callback")
        try:
            return _job(job).keep("{}")
        except BaseException:
            return NULL


@_c_entry("Python job serialized callback", NULL)
def pythanc_OrthancPluginJobGetSerialized(job):
    state = _job(job)
    if state.serialized is None:
        return NULL
    value = state.serialized()
    if value is None:
        return NULL
    return state.keep(_json_text(value, "serialized"))


@_c_entry("Python job step callback", JOB_FAILURE)
def pythanc_OrthancPluginJobStep(job):
    state = _job(job)
    r = state.step()
    if isinstance(r, bool) or not isinstance(r, int) or r not in (JOB_SUCCESS, JOB_FAILURE, JOB_CONTINUE):
        _log_error("The Python job step callback (job type %s) has not returned an orthanc.JobStepStatus "
                   "(SUCCESS, FAILURE or CONTINUE); it returned %r: the job fails"
                   % (state.job_type, r if isinstance(r, int) else type(r).__name__))
        return JOB_FAILURE
    return int(r)


@_c_entry("Python job stop callback", ERR_PLUGIN)
def pythanc_OrthancPluginJobStop(job, reason):
    state = _job(job)
    if state.stop is not None:
        state.stop(int(reason))
    return ERR_SUCCESS


@_c_entry("Python job reset callback", ERR_PLUGIN)
def pythanc_OrthancPluginJobReset(job):
    state = _job(job)
    if state.reset is not None:
        state.reset()
    return ERR_SUCCESS


def RegisterJobsUnserializer(callback):
    """(pythanc) Register ``callback(job_type: str, serialized: str) -> orthanc.Job or None``, called
    when Orthanc starts, for each saved job (``serialized`` is the JSON that the job's
    ``serialized()`` returned).  Return a job made with :func:`CreateJob` (not submitted: Orthanc
    takes it over), or ``None`` if this callback does not know the job type.  Register it while the
    script is imported.  Several unserializers are tried in registration order; the first job
    returned wins.  An exception is logged and counts as ``None``."""
    _append("unserializers", callback, "Python jobs unserializer")


@_c_entry("Python jobs unserializer", NULL)
def pythanc_OrthancPluginJobsUnserializer(job_type, serialized):
    t, s = text(job_type), text(serialized)
    for f in list(X.unserializers):
        try:
            job = f(t, s)
            if job is None:
                continue
            return release_ownership(job, cb.Job, "the result of the jobs unserializer")
        except BaseException:
            _log_exception("Python jobs unserializer")
    return NULL


# ---------------------------------------------------------------------------------------------
# Life cycle


def _extra_reset():
    """Forget every registration of this module (at each plugin initialisation)."""
    global X
    X = _Extra()


def _extra_shutdown():
    """At finalisation: drop the Python objects that Orthanc no longer reaches."""
    _JOBS.clear()
    _extra_reset()
