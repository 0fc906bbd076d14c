# SPDX-License-Identifier: GPL-3.0-or-later
"""Audit logs (SDK 1.12.9+, Orthanc 1.13): ``orthanc.RegisterAuditLogHandler``.

An audit log is a security-related event that a plugin emits with ``OrthancPluginEmitAuditLog``
(``orthanc.EmitAuditLog`` from Python, or a native plugin such as the authorization plugin);
Orthanc hands it to every registered handler.  Several Python handlers may be registered: each
log goes to each, in registration order; one that raises is logged and the others still run.
"""

from ..core.convert import text, data
from ..core.log import log_exception
from ..workers import pool
from .registry import STORE, ERR_SUCCESS, ERR_PLUGIN, append, c_entry, sdk_entry

__all__ = ["RegisterAuditLogHandler"]


def RegisterAuditLogHandler(callback, *, worker=False):
    """(pythanc; SDK 1.12.9+, Orthanc 1.13) Register ``callback(sourcePlugin: str, userId: str,
    resourceType: int, resourceId: str, action: str, logData: bytes)``, called for every audit log
    that a plugin emits (``orthanc.EmitAuditLog``...).  ``sourcePlugin`` names the plugin that
    emitted it (it tells how to read ``action`` and ``logData``), ``userId`` the user or entity that
    acted, ``resourceType`` is an ``orthanc.ResourceType`` and ``resourceId`` the Orthanc identifier
    of the resource concerned, ``logData`` the plugin's own data (``b""`` if none).

    The callback runs on the thread that emitted the log, before the emitter goes on: keep it short
    (queue the entry, write it to a file...).  Its result is ignored; an exception is logged with its
    traceback.  Several handlers may be registered: all are called, in registration order.

    pythanc: ``worker=True`` runs the handler in a worker process (see ``RegisterRestCallback``);
    the emitter still waits for it."""
    if worker and callable(callback):
        callback = pool.offload("audit", callback)
    append("audit_logs", callback, "Python audit log handler", "RegisterAuditLogHandler")


@c_entry("Python audit log handler", ERR_PLUGIN)
def pythanc_OrthancPluginAuditLogHandler(source_plugin, user_id, resource_type, resource_id, action,
                                         log_data, log_data_size):
    handlers = list(STORE.lists["audit_logs"])
    if not handlers:
        return ERR_SUCCESS
    args = (text(source_plugin), text(user_id), int(resource_type), text(resource_id), text(action),
            data(log_data, log_data_size))
    status = ERR_SUCCESS
    for f in handlers:
        try:
            f(*args)
        except BaseException:
            log_exception("Python audit log handler")
            status = ERR_PLUGIN
    return status


sdk_entry("audit_logs", "OrthancPluginRegisterAuditLogHandler", "pythanc_OrthancPluginAuditLogHandler",
          at_start_only="Orthanc keeps the audit log handlers in a list that it reads while plugins emit "
          "audit logs")
