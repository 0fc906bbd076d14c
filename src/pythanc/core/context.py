"""The plugin library's cffi handles and the SDK context of this Orthanc run.

``ffi`` and ``lib`` come from the plugin library (``_pythanc_cffi``), which exists only inside
Orthanc; outside (the worker processes, the command line), both are ``None``.  ``STATE.ctx`` is the
``OrthancPluginContext*`` while Orthanc runs pythanc (set by ``lifecycle.plugin``), ``None`` before
and after.
"""

from .errors import OrthancException, ERROR_BAD_SEQUENCE_OF_CALLS

try:
    from _pythanc_cffi import ffi, lib  # only inside Orthanc, in the plugin library
except ImportError:  # pragma: no cover - outside Orthanc
    ffi = lib = None


class _State:
    """Per-process state of the plugin: the SDK context while Orthanc runs it."""
    ctx = None


STATE = _State()
NULL = ffi.NULL if ffi is not None else None


def ctx():
    """The SDK context, or ``OrthancException(BadSequenceOfCalls)`` when Orthanc is not running us."""
    c = STATE.ctx
    if c is None:
        raise OrthancException(ERROR_BAD_SEQUENCE_OF_CALLS,
                               "The Orthanc plugin context is not available (Orthanc is not running pythanc, "
                               "or it has stopped)")
    return c
