"""Storage commitment SCP: ``orthanc.RegisterStorageCommitmentScpCallback`` (one per run).

The handlers that the factory returns are kept here under integer handles, given to Orthanc as
opaque pointers.
"""

from ..core.context import ffi, NULL
from ..core.convert import text, text_array, handle_pointer, pointer_handle
from ..core.log import log_error, log_exception
from .registry import (STORE, ERR_SUCCESS, ERR_PLUGIN, ERR_BAD_SEQUENCE_OF_CALLS, c_entry, new_handle,
                       set_once, sdk_entry, on_reset)

__all__ = ['RegisterStorageCommitmentScpCallback']

_handlers = {}   # handle -> the handler object that the script's factory returned


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


@c_entry("Python storage commitment SCP callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCommitmentFactory(handler, job_id, transaction_uid, sop_class_uids,
                                                  sop_instance_uids, count, remote_aet, called_aet):
    handler[0] = NULL
    scp = STORE.once["commitment"][0]
    obj = scp(text(job_id), text(transaction_uid), text_array(sop_class_uids, count),
              text_array(sop_instance_uids, count), text(remote_aet), text(called_aet))
    h = new_handle()
    _handlers[h] = obj
    handler[0] = handle_pointer(h)
    return ERR_SUCCESS


@ffi.def_extern()
def pythanc_OrthancPluginStorageCommitmentDestructor(handler):
    try:
        if handler != NULL:
            _handlers.pop(pointer_handle(handler), None)
    except BaseException:
        log_exception("Python storage commitment SCP destructor")


@c_entry("Python storage commitment Lookup callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCommitmentLookup(target, handler, sop_class_uid, sop_instance_uid):
    h = pointer_handle(handler)
    if h not in _handlers or STORE.once.get("commitment") is None:
        log_error("Storage commitment lookup for an unknown handler")
        return ERR_BAD_SEQUENCE_OF_CALLS
    r = STORE.once["commitment"][1](text(sop_class_uid), text(sop_instance_uid), _handlers[h])
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
