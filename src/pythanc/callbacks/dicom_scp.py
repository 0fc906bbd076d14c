"""DICOM SCP handlers: C-FIND (``orthanc.RegisterFindCallback``, ``RegisterFindCallback2``),
worklists (``RegisterWorklistCallback``, ``RegisterWorklistCallback2``) and C-MOVE
(``RegisterMoveCallback``, ``RegisterMoveCallback2``, ``RegisterMoveCallback3``).

C-FIND and worklist handlers are all called, in registration order, and add their answers to the
same answer set.  Orthanc accepts one C-MOVE handler: a second registration raises ``RuntimeError``.
C-MOVE drivers given to Orthanc are integer handles (see ``registry.new_handle``).

The versions 2 of the SDK's handlers (SDK 1.12.10+, Debian's Orthanc 1.13.0) give the callback the
DICOM connection, an ``orthanc.DicomConnection`` (its remote AET and IP, the AET it called) that is
valid during that callback only.  Orthanc takes one handler of each kind, version 1 or 2: a script
that registers both versions of one (``RegisterFindCallback`` and ``RegisterFindCallback2``...)
gets a ``RuntimeError`` naming both at the first registration of the second (``registry.exclusive``).
The official plugin raises the same for worklists and for ``RegisterMoveCallback2`` with
``RegisterMoveCallback3``; for C-FIND, and for ``RegisterMoveCallback`` with
``RegisterMoveCallback3``, it returns ``None`` while Orthanc refuses the second C registration
(only the first handler is then called), which pythanc reports instead of hiding it.  Like
their versions 1, these run in Orthanc's process (no ``worker=True``).
"""

from .._generated import api
from ..core.context import ffi, NULL
from ..core.convert import Borrowed, text, handle_pointer, pointer_handle
from ..core.log import log_error, log_exception
from .registry import (STORE, ERR_SUCCESS, ERR_PLUGIN, ERR_BAD_SEQUENCE_OF_CALLS, c_entry, check_callable,
                       new_handle, append, set_once, sdk_entry, sdk_has, exclusive, on_reset)

__all__ = ['RegisterFindCallback', 'RegisterWorklistCallback', 'RegisterMoveCallback', 'RegisterMoveCallback2',
           'RegisterFindCallback2', 'RegisterWorklistCallback2', 'RegisterMoveCallback3']

# orthanc.DicomConnection (SDK 1.12.10+; None with an older header, where nothing below uses it)
DicomConnection = getattr(api, "DicomConnection", None)

LEVELS = {0: "PATIENT", 1: "STUDY", 2: "SERIES", 3: "INSTANCE"}   # OrthancPluginResourceType (NONE -> '')
_moves = {}   # handle -> [handler, driver, failed]: the C-MOVE drivers Orthanc holds


@on_reset
def _forget_moves():
    _moves.clear()


def RegisterFindCallback(callback):
    """Register ``callback(answers: orthanc.FindAnswers, query: orthanc.FindQuery, issuer_aet: str,
    called_aet: str)`` to answer C-FIND requests (except worklists).  Add matches with
    ``answers.FindAddAnswer(dicom_bytes)``.  An exception makes the SCU see a failure
    (UnableToProcess).

    Several callbacks are called in registration order, adding to the same answers."""
    append("find", callback, "Python C-FIND SCP callback", "RegisterFindCallback")


def RegisterWorklistCallback(callback):
    """Register ``callback(answers: orthanc.WorklistAnswers, query: orthanc.WorklistQuery,
    issuer_aet: str, called_aet: str)`` to answer modality worklist C-FIND requests.  Add answers
    with ``answers.WorklistAddAnswer(query, dicom_bytes)``; ``query.WorklistIsMatch(dicom_bytes)``
    tests one.  An exception makes the SCU see a failure.

    Several callbacks are called in registration order, adding to the same answers."""
    append("worklist", callback, "Python worklist SCP callback", "RegisterWorklistCallback")


def RegisterFindCallback2(callback):
    """Register ``callback(answers: orthanc.FindAnswers, query: orthanc.FindQuery, connection:
    orthanc.DicomConnection)`` to answer C-FIND requests (except worklists), as
    :func:`RegisterFindCallback` does; ``connection`` tells who asked:
    ``connection.GetConnectionRemoteAet()`` (the SCU's calling AET), ``GetConnectionRemoteIp()``,
    ``GetConnectionCalledAet()`` (the AET of Orthanc that the SCU called).  ``answers``, ``query``
    and ``connection`` are valid during the call only (afterwards they raise
    ``orthanc.OrthancException``).  An exception makes the SCU see a failure (UnableToProcess).

    Several callbacks are called in registration order, adding to the same answers.  Orthanc takes
    one C-FIND handler: this cannot be used together with :func:`RegisterFindCallback`
    (``RuntimeError``)."""
    append("find2", callback, "Python C-FIND SCP callback (v2)", "RegisterFindCallback2")


def RegisterWorklistCallback2(callback):
    """Register ``callback(answers: orthanc.WorklistAnswers, query: orthanc.WorklistQuery,
    connection: orthanc.DicomConnection)`` to answer modality worklist C-FIND requests, as
    :func:`RegisterWorklistCallback` does, with the DICOM connection instead of the two AETs (see
    :func:`RegisterFindCallback2`).  An exception makes the SCU see a failure.

    Several callbacks are called in registration order, adding to the same answers.  Orthanc takes
    one worklist handler: this cannot be used together with :func:`RegisterWorklistCallback`
    (``RuntimeError``)."""
    append("worklist2", callback, "Python C-FIND SCP for worklist callback (v2)", "RegisterWorklistCallback2")


def _scp(kind, description, answers_cls, query_cls, answers, query, issuer_aet, called_aet):
    try:
        issuer, called = text(issuer_aet), text(called_aet)
        with Borrowed(answers_cls, answers) as a, Borrowed(query_cls, query) as q:
            for f in list(STORE.lists[kind]):
                f(a, q, issuer, called)
        return ERR_SUCCESS
    except BaseException:
        log_exception(description)
        return ERR_PLUGIN


def _scp2(kind, description, answers_cls, query_cls, answers, query, connection):
    try:
        with Borrowed(answers_cls, answers) as a, Borrowed(query_cls, query) as q, \
                Borrowed(DicomConnection, connection) as c:
            for f in list(STORE.lists[kind]):
                f(a, q, c)
        return ERR_SUCCESS
    except BaseException:
        log_exception(description)
        return ERR_PLUGIN


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginFindCallback(answers, query, issuer_aet, called_aet):
    return _scp("find", "Python C-FIND SCP callback", api.FindAnswers, api.FindQuery,
                answers, query, issuer_aet, called_aet)


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWorklistCallback(answers, query, issuer_aet, called_aet):
    return _scp("worklist", "Python C-FIND SCP for worklist callback", api.WorklistAnswers, api.WorklistQuery,
                answers, query, issuer_aet, called_aet)


if sdk_has("pythanc_OrthancPluginFindCallback2"):
    @ffi.def_extern(error=ERR_PLUGIN)
    def pythanc_OrthancPluginFindCallback2(answers, query, connection):
        return _scp2("find2", "Python C-FIND SCP callback (v2)", api.FindAnswers, api.FindQuery,
                     answers, query, connection)


if sdk_has("pythanc_OrthancPluginWorklistCallback2"):
    @ffi.def_extern(error=ERR_PLUGIN)
    def pythanc_OrthancPluginWorklistCallback2(answers, query, connection):
        return _scp2("worklist2", "Python C-FIND SCP for worklist callback (v2)", api.WorklistAnswers,
                     api.WorklistQuery, answers, query, connection)


_MOVE_TWICE = "Can only register one C-MOVE SCP handler (RegisterMoveCallback or RegisterMoveCallback2)"
_MOVE3_TWICE = "Can only register one C-MOVE SCP handler (RegisterMoveCallback3)"


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
    check_callable(callback, "Python C-MOVE SCP callback")
    set_once("move", {"v1": callback}, _MOVE_TWICE, "RegisterMoveCallback")


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
    set_once("move", {"create": create, "size": get_move_size, "apply": apply_move, "free": free_move},
             _MOVE_TWICE, "RegisterMoveCallback2")


def RegisterMoveCallback3(create, get_move_size, apply_move, free_move):
    """Register a C-MOVE handler made of four callables, as :func:`RegisterMoveCallback2` does, whose
    ``create(connection, **request)`` also gets the DICOM connection (an ``orthanc.DicomConnection``,
    see :func:`RegisterFindCallback2`) as its one positional argument.  ``request`` has the keywords
    ``Level``, ``PatientID``, ``AccessionNumber``, ``StudyInstanceUID``, ``SeriesInstanceUID``,
    ``SOPInstanceUID``, ``TargetAET`` (``str``, ``''`` when absent) and ``OriginatorID`` (``int``):
    the originator's AET is ``connection.GetConnectionRemoteAet()`` and Orthanc's own AET
    ``connection.GetConnectionCalledAet()``.  ``connection`` is valid during ``create`` only: a
    driver that needs its values later copies them.

    ``get_move_size(driver) -> int``, ``apply_move(driver)`` and ``free_move(driver)`` are called as
    for :func:`RegisterMoveCallback2`, with the same handling of exceptions: one in ``create`` fails
    the whole C-MOVE, one in ``apply_move`` is a failed sub-operation.  Orthanc takes one C-MOVE
    handler: a second registration, or one with :func:`RegisterMoveCallback` or
    :func:`RegisterMoveCallback2`, raises ``RuntimeError``."""
    for fn in (create, get_move_size, apply_move, free_move):
        if not callable(fn):
            raise TypeError("Expected four callback functions to register a C-MOVE SCP handler")
    set_once("move2", {"create3": create, "size": get_move_size, "apply": apply_move, "free": free_move},
             _MOVE3_TWICE, "RegisterMoveCallback3")


def _move_request(resource_type, patient_id, accession_number, study_uid, series_uid, sop_uid, target_aet,
                  originator_id, **aets):
    """The keywords a C-MOVE handler's callback gets, in the official plugin's order (``aets``: the
    version 1's ``OriginatorAET`` and ``SourceAET``, before ``TargetAET``)."""
    kw = {"Level": LEVELS.get(int(resource_type), ""),
          "PatientID": text(patient_id), "AccessionNumber": text(accession_number),
          "StudyInstanceUID": text(study_uid), "SeriesInstanceUID": text(series_uid),
          "SOPInstanceUID": text(sop_uid)}
    kw.update(aets)
    kw.update(TargetAET=text(target_aet), OriginatorID=int(originator_id))
    return kw


def _move_driver(handler, driver):
    """Keep a C-MOVE's ``(handler, driver)`` under a handle, given to Orthanc as the move driver."""
    h = new_handle()
    _moves[h] = [handler, driver, False]
    return handle_pointer(h)


@c_entry("Python C-MOVE SCP callback", NULL)
def pythanc_OrthancPluginMoveCallback(resource_type, patient_id, accession_number, study_uid, series_uid,
                                      sop_uid, originator_aet, source_aet, target_aet, originator_id):
    handler = STORE.once.get("move")
    if handler is None:
        return NULL
    kw = _move_request(resource_type, patient_id, accession_number, study_uid, series_uid, sop_uid, target_aet,
                       originator_id, OriginatorAET=text(originator_aet), SourceAET=text(source_aet))
    return _move_driver(handler, kw if "v1" in handler else handler["create"](**kw))


@c_entry("Python C-MOVE SCP callback (Create v3)", NULL)
def pythanc_OrthancPluginMoveCallback2(resource_type, patient_id, accession_number, study_uid, series_uid,
                                       sop_uid, connection, target_aet, originator_id):
    handler = STORE.once.get("move2")
    if handler is None:
        return NULL
    kw = _move_request(resource_type, patient_id, accession_number, study_uid, series_uid, sop_uid, target_aet,
                       originator_id)
    with Borrowed(DicomConnection, connection) as c:
        return _move_driver(handler, handler["create3"](c, **kw))


@ffi.def_extern(error=1)
def pythanc_OrthancPluginGetMoveSize(move_driver):
    try:
        entry = _moves.get(pointer_handle(move_driver))
        if entry is None:
            return 0
        handler, driver, _ = entry
        if "v1" in handler:
            return 1
        n = handler["size"](driver)
        if type(n) is not int or not 0 <= n <= 0xFFFFFFFF:
            log_error("The Python C-MOVE get_move_size callback has not returned an int (it returned %r); "
                      "the C-MOVE fails" % (n if isinstance(n, int) else type(n).__name__,))
            entry[2] = True
            return 1
        return n
    except BaseException:
        log_exception("Python C-MOVE SCP callback (GetMoveSize)")
        entry = _moves.get(pointer_handle(move_driver))
        if entry is not None:
            entry[2] = True   # report one failed sub-operation rather than a bogus size
        return 1


@c_entry("Python C-MOVE SCP callback", ERR_PLUGIN)
def pythanc_OrthancPluginApplyMove(move_driver):
    entry = _moves.get(pointer_handle(move_driver))
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
        entry = _moves.pop(pointer_handle(move_driver), None)
        if entry is not None and "free" in entry[0]:
            entry[0]["free"](entry[1])
    except BaseException:
        log_exception("Python C-MOVE SCP callback (Free)")


sdk_entry("find", "OrthancPluginRegisterFindCallback", "pythanc_OrthancPluginFindCallback",
          at_start_only="its DICOM server takes a plugin's C-FIND handler only when it starts")
sdk_entry("worklist", "OrthancPluginRegisterWorklistCallback", "pythanc_OrthancPluginWorklistCallback",
          at_start_only="its DICOM server takes a plugin's worklist handler only when it starts")
sdk_entry("move", "OrthancPluginRegisterMoveCallback", "pythanc_OrthancPluginMoveCallback",
          "pythanc_OrthancPluginGetMoveSize", "pythanc_OrthancPluginApplyMove", "pythanc_OrthancPluginFreeMove",
          at_start_only="its DICOM server takes a plugin's C-MOVE handler only when it starts")

# SDK 1.12.10+: the versions 2, given the DICOM connection.  Orthanc keeps one handler of each kind,
# whatever its version ("Can only register one plugin to handle C-FIND requests" in its log, and an
# error code for the second C registration): a script mixing both versions gets a clear error
# instead of a handler that is never called.
sdk_entry("find2", "OrthancPluginRegisterFindCallback2", "pythanc_OrthancPluginFindCallback2",
          at_start_only="its DICOM server takes a plugin's C-FIND handler only when it starts")
sdk_entry("worklist2", "OrthancPluginRegisterWorklistCallback2", "pythanc_OrthancPluginWorklistCallback2",
          at_start_only="its DICOM server takes a plugin's worklist handler only when it starts")
sdk_entry("move2", "OrthancPluginRegisterMoveCallback2", "pythanc_OrthancPluginMoveCallback2",
          "pythanc_OrthancPluginGetMoveSize", "pythanc_OrthancPluginApplyMove", "pythanc_OrthancPluginFreeMove",
          at_start_only="its DICOM server takes a plugin's C-MOVE handler only when it starts")
exclusive("Orthanc takes one C-FIND handler, of version 1 or 2 (RegisterFindCallback2 is version 1 with the "
          "DICOM connection): register the C-FIND callbacks with one of them",
          ("find", "RegisterFindCallback"), ("find2", "RegisterFindCallback2"))
exclusive("Orthanc takes one worklist handler, of version 1 or 2 (RegisterWorklistCallback2 is version 1 with "
          "the DICOM connection): register the worklist callbacks with one of them",
          ("worklist", "RegisterWorklistCallback"), ("worklist2", "RegisterWorklistCallback2"))
exclusive("Orthanc takes one C-MOVE handler (RegisterMoveCallback3 is RegisterMoveCallback2 with the DICOM "
          "connection)", ("move", ("RegisterMoveCallback", "RegisterMoveCallback2")),
          ("move2", "RegisterMoveCallback3"))
