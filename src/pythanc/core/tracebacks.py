"""Tracebacks as a script's author reads them: the frames of the user's code and the exception,
without pythanc's own frames.

Left out: the frames whose file is inside the installed ``pythanc`` package (the dispatchers of the
callbacks, the generated ``orthanc`` functions, the loader of the scripts, the worker processes'
side) and those of importlib's frozen bootstrap (``<frozen importlib._bootstrap...>``), which the
loading of a script adds.  So an exception raised by an ``orthanc`` function ends on the script's
line that called it.  Every exception of a chain (``__cause__``, ``__context__``, the members of
an exception group) is filtered the same way.

``PythonVerbose`` / ``Python.Verbose`` (:func:`set_full`) show the full traceback instead.

Pure Python (no cffi): the worker processes format their tracebacks with it too.
"""

import os
import sys
import traceback

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # .../pythanc
_PACKAGE_PREFIXES = tuple({os.path.normcase(p) + os.sep for p in (PACKAGE, os.path.realpath(PACKAGE))})
_FROZEN_IMPORTLIB = "<frozen importlib."

_settings = {"full": False}


def set_full(on):
    """``True``: tracebacks keep every frame (``PythonVerbose``)."""
    _settings["full"] = bool(on)


def full():
    return _settings["full"]


def is_internal(filename):
    """Whether a frame of the file ``filename`` is pythanc's own (or importlib's bootstrap)."""
    if not filename:
        return False
    if filename.startswith(_FROZEN_IMPORTLIB):
        return True
    if filename.startswith("<"):
        return False
    path = os.path.normcase(os.path.abspath(filename))
    return path.startswith(_PACKAGE_PREFIXES)


def _prune(te, seen):
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if not is_internal(f.filename)])
    _prune(te.__cause__, seen)
    _prune(te.__context__, seen)
    for member in getattr(te, "exceptions", None) or ():
        _prune(member, seen)


def format_exception(exc=None, full=None):
    """The text of ``exc`` (default: the exception being handled) and of its traceback, without a
    final newline: the user's frames only, or every frame if ``full`` (default: :func:`set_full`).

    An exception with a ``remote_traceback`` attribute (a callback that failed in a worker
    process) shows that traceback, already formatted (and filtered) by the process that ran the
    callback, in place of the local frames, which are all pythanc's."""
    if exc is None:
        exc = sys.exc_info()[1]
        if exc is None:
            return "(no exception)"
    if full is None:
        full = _settings["full"]
    if full:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    remote = getattr(exc, "remote_traceback", None)
    if isinstance(remote, str):
        where = getattr(exc, "remote_where", None)
        return ("%s:\n%s" % (where, remote)) if where else remote
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _prune(te, set())
    return "".join(te.format()).rstrip()
