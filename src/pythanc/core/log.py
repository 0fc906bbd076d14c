"""Orthanc's log, for pythanc's own messages and the script's errors: the bottom of the run time,
usable by every layer.  The tracebacks of the script's errors are formatted by ``tracebacks``, and
Python's ``logging`` reaches Orthanc's log through ``logbridge``."""

import sys

from . import logbridge
from .context import STATE, lib
from .tracebacks import format_exception


def _log(sdk_log, msg, to_stderr):
    """Write ``msg`` to Orthanc's log with the SDK function ``sdk_log`` (``"OrthancPluginLogError"``,
    ...); outside an initialised plugin, to stderr if ``to_stderr``."""
    c = STATE.ctx
    if c is not None:
        getattr(lib, sdk_log)(c, msg.encode("utf-8", "replace").replace(b"\0", b"?"))
    elif to_stderr:
        sys.stderr.write(msg + "\n")


def log_error(msg):
    _log("OrthancPluginLogError", msg, True)


def log_warning(msg):
    _log("OrthancPluginLogWarning", msg, True)


def log_info(msg):
    _log("OrthancPluginLogInfo", msg, False)


def log_exception(what, first_line=None):
    """Log the current exception in Orthanc's log, as an error, under the first line the official
    plugin writes for it (``Error in the <what>, traceback:``, or ``first_line``): the frames of
    the user's code and the exception, without pythanc's own frames (the full traceback with
    ``PythonVerbose``; see :mod:`pythanc.core.tracebacks`)."""
    log_error("%s\n%s" % (first_line or "Error in the %s, traceback:" % what, format_exception()))


def install_logging(level=None):
    """Python's ``logging`` and Orthanc's log, at each initialisation: Python's defaults, with what
    Python would write to stderr for want of a handler in Orthanc's log instead, and, with the
    option ``"Python": {"LoggingLevel": level}``, a handler on the root logger (see
    :mod:`pythanc.core.logbridge`)."""
    logbridge.configure(log_error, log_warning, log_info, level)
