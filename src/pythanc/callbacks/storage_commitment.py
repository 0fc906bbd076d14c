"""Storage commitment SCP: ``orthanc.RegisterStorageCommitmentScpCallback`` and, with SDK 1.12.10+
(Debian's Orthanc 1.13.0), ``RegisterStorageCommitmentScpCallback2``, whose factory gets the DICOM
connection (an ``orthanc.DicomConnection``) instead of the two AETs.  One of them, once per run:
the official plugin keeps both in one slot, and so does pythanc (a second registration, of either
version, raises ``RuntimeError``; for the other version, the message names both).

The handlers that the factory returns are kept here under integer handles, given to Orthanc as
opaque pointers.
"""

from .._generated import api
from ..core.context import ffi, NULL
from ..core.convert import Borrowed, text, text_array, handle_pointer, pointer_handle
from ..core.log import log_error, log_exception
from .registry import (STORE, ERR_SUCCESS, ERR_PLUGIN, ERR_BAD_SEQUENCE_OF_CALLS, c_entry, new_handle,
                       set_once, sdk_entry, exclusive, on_reset)

__all__ = ['RegisterStorageCommitmentScpCallback', 'RegisterStorageCommitmentScpCallback2']

# orthanc.DicomConnection (SDK 1.12.10+; None with an older header, where nothing below uses it)
DicomConnection = getattr(api, "DicomConnection", None)

_handlers = {}   # handle -> (kind, the handler object that the script's factory returned)


@on_reset
def _forget_handlers():
    _handlers.clear()


def RegisterStorageCommitmentScpCallback(scp, lookup):
    """Register the storage commitment SCP: ``scp(job_id, transaction_uid, sop_class_uids: list,
    sop_instance_uids: list, remote_aet, called_aet)`` returns a handler object (any object, kept
    alive until Orthanc releases it); then ``lookup(sop_class_uid, sop_instance_uid, handler)``
    returns an ``orthanc.StorageCommitmentFailureReason`` (int) for each instance.

    An exception, or a lookup result that is not an int, is logged and reported to Orthanc as an
    error (never as a success).  Only one registration: a second one raises ``RuntimeError``."""
    if not callable(scp) or not callable(lookup):
        raise TypeError("Expected two callback functions to register a storage commitment SCP")
    set_once("commitment", (scp, lookup), "Can only register once for storage commitment SCP",
             "RegisterStorageCommitmentScpCallback")


def RegisterStorageCommitmentScpCallback2(scp, lookup):
    """Register the storage commitment SCP, as :func:`RegisterStorageCommitmentScpCallback` does,
    with ``scp(job_id, transaction_uid, sop_class_uids: list, sop_instance_uids: list, connection:
    orthanc.DicomConnection)``: ``connection.GetConnectionRemoteAet()`` is the SCU's AET,
    ``GetConnectionRemoteIp()`` its IP, ``GetConnectionCalledAet()`` the AET of Orthanc it called;
    ``connection`` is valid during ``scp`` only (afterwards it raises ``orthanc.OrthancException``).
    ``scp`` returns a handler object; ``lookup(sop_class_uid, sop_instance_uid, handler)`` returns
    an ``orthanc.StorageCommitmentFailureReason`` (int) for each instance.

    An exception, or a lookup result that is not an int, is logged and reported to Orthanc as an
    error (never as a success).  Only one registration, of this or of
    :func:`RegisterStorageCommitmentScpCallback`: another one raises ``RuntimeError``."""
    if not callable(scp) or not callable(lookup):
        raise TypeError("Expected two callback functions to register a storage commitment SCP")
    set_once("commitment2", (scp, lookup), "Can only register once for storage commitment SCP",
             "RegisterStorageCommitmentScpCallback2")


def _new_handler(handler, kind, obj):
    h = new_handle()
    _handlers[h] = (kind, obj)
    handler[0] = handle_pointer(h)
    return ERR_SUCCESS


@c_entry("Python storage commitment SCP callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCommitmentFactory(handler, job_id, transaction_uid, sop_class_uids,
                                                  sop_instance_uids, count, remote_aet, called_aet):
    handler[0] = NULL
    scp = STORE.once["commitment"][0]
    obj = scp(text(job_id), text(transaction_uid), text_array(sop_class_uids, count),
              text_array(sop_instance_uids, count), text(remote_aet), text(called_aet))
    return _new_handler(handler, "commitment", obj)


@c_entry("Python storage commitment SCP callback (v2)", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCommitmentFactory2(handler, job_id, transaction_uid, sop_class_uids,
                                                   sop_instance_uids, count, connection):
    handler[0] = NULL
    scp = STORE.once["commitment2"][0]
    with Borrowed(DicomConnection, connection) as c:
        obj = scp(text(job_id), text(transaction_uid), text_array(sop_class_uids, count),
                  text_array(sop_instance_uids, count), c)
    return _new_handler(handler, "commitment2", obj)


@ffi.def_extern()
def pythanc_OrthancPluginStorageCommitmentDestructor(handler):
    try:
        if handler != NULL:
            _handlers.pop(pointer_handle(handler), None)
    except BaseException:
        log_exception("Python storage commitment SCP destructor")


@c_entry("Python storage commitment Lookup callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCommitmentLookup(target, handler, sop_class_uid, sop_instance_uid):
    entry = _handlers.get(pointer_handle(handler))
    registration = STORE.once.get(entry[0]) if entry is not None else None
    if registration is None:
        log_error("Storage commitment lookup for an unknown handler")
        return ERR_BAD_SEQUENCE_OF_CALLS
    r = registration[1](text(sop_class_uid), text(sop_instance_uid), entry[1])
    if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= 0xFFFF:
        log_error("The Python storage commitment lookup callback has not returned an int "
                  "(orthanc.StorageCommitmentFailureReason); it returned %r"
                  % (r if isinstance(r, int) else type(r).__name__,))
        return ERR_PLUGIN
    target[0] = int(r)
    return ERR_SUCCESS


sdk_entry("commitment", "OrthancPluginRegisterStorageCommitmentScpCallback",
          "pythanc_OrthancPluginStorageCommitmentFactory",
          "pythanc_OrthancPluginStorageCommitmentDestructor",
          "pythanc_OrthancPluginStorageCommitmentLookup")
sdk_entry("commitment2", "OrthancPluginRegisterStorageCommitmentScpCallback2",
          "pythanc_OrthancPluginStorageCommitmentFactory2",
          "pythanc_OrthancPluginStorageCommitmentDestructor",
          "pythanc_OrthancPluginStorageCommitmentLookup")
# Orthanc itself accepts both C registrations (it refuses no second storage commitment SCP), but the
# official plugin keeps one pair of storage commitment callables, whatever their version
# ("Can only register once for ..."): so does pythanc, with a message naming both functions.
exclusive("the storage commitment SCP is registered once, with either version (version 2 gives the factory "
          "the DICOM connection)",
          ("commitment", "RegisterStorageCommitmentScpCallback"),
          ("commitment2", "RegisterStorageCommitmentScpCallback2"))
