"""DICOM SCP handlers: C-FIND (``orthanc.RegisterFindCallback``), worklists
(``RegisterWorklistCallback``) and C-MOVE (``RegisterMoveCallback``, ``RegisterMoveCallback2``).

C-FIND and worklist handlers are all called, in registration order, and add their answers to the
same answer set.  Orthanc accepts one C-MOVE handler: a second registration raises ``RuntimeError``.
C-MOVE drivers given to Orthanc are integer handles (see ``registry.new_handle``).
"""

from .._generated import api
from ..core.context import ffi, NULL
from ..core.convert import Borrowed, text, handle_pointer, pointer_handle
from ..core.log import log_error, log_exception
from .registry import (STORE, ERR_SUCCESS, ERR_PLUGIN, ERR_BAD_SEQUENCE_OF_CALLS, c_entry, check_callable,
                       new_handle, append, set_once, sdk_entry, on_reset)

__all__ = ['RegisterFindCallback', 'RegisterWorklistCallback', 'RegisterMoveCallback', 'RegisterMoveCallback2']

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


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginFindCallback(answers, query, issuer_aet, called_aet):
    return _scp("find", "Python C-FIND SCP callback", api.FindAnswers, api.FindQuery,
                answers, query, issuer_aet, called_aet)


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWorklistCallback(answers, query, issuer_aet, called_aet):
    return _scp("worklist", "Python C-FIND SCP for worklist callback", api.WorklistAnswers, api.WorklistQuery,
                answers, query, issuer_aet, called_aet)


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


@c_entry("Python C-MOVE SCP callback", NULL)
def pythanc_OrthancPluginMoveCallback(resource_type, patient_id, accession_number, study_uid, series_uid,
                                      sop_uid, originator_aet, source_aet, target_aet, originator_id):
    handler = STORE.once.get("move")
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
    h = new_handle()
    _moves[h] = [handler, driver, False]
    return handle_pointer(h)


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
