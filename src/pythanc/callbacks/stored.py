"""Stored-instance callbacks: ``orthanc.RegisterOnStoredInstanceCallback``."""

from .._generated import api
from ..core.context import ffi
from ..core.convert import text, Borrowed
from ..core.log import log_exception
from ..workers import pool
from .registry import STORE, ERR_SUCCESS, ERR_PLUGIN, append, sdk_entry

__all__ = ["RegisterOnStoredInstanceCallback"]


def RegisterOnStoredInstanceCallback(callback, *, worker=False):
    """Register ``callback(instance: orthanc.DicomInstance, instanceId: str)``, called after an
    instance is stored, on the thread that received it.  ``instance`` is valid during the call only.
    An exception is logged; the instance stays stored.

    pythanc: ``worker=True`` runs the callback in a worker process (see ``RegisterRestCallback``),
    where ``instance`` forwards its methods to this ``DicomInstance``.
    """
    if worker and callable(callback):
        callback = pool.offload("stored", callback)
    append("stored", callback, "Python on-stored-instance callback", "RegisterOnStoredInstanceCallback")


sdk_entry("stored", "OrthancPluginRegisterOnStoredInstanceCallback", "pythanc_OrthancPluginOnStoredInstanceCallback",
          at_start_only="Orthanc 1.10 adds a stored-instance callback to a list that it reads without a lock "
          "while it stores instances")


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginOnStoredInstanceCallback(instance, instance_id):
    status = ERR_SUCCESS
    try:
        iid = text(instance_id)
        with Borrowed(api.DicomInstance, instance) as dicom:
            for cb in list(STORE.lists["stored"]):
                try:
                    cb(dicom, iid)
                except BaseException:
                    log_exception("Python on-stored-instance callback")
                    status = ERR_PLUGIN
    except BaseException:
        log_exception("Python on-stored-instance callback")
        status = ERR_PLUGIN
    return status
