"""Python's ``logging`` and Orthanc's log.

By default a script sees Python's own ``logging``: the root logger at level WARNING with no
handler, so ``logging.basicConfig(...)`` works, and a library's INFO records go nowhere, as under
the official plugin.  Only what Python itself would write to stderr for want of configuration
goes to Orthanc's log instead, at its level (ERROR and above -> LogError, WARNING -> LogWarning):

* records that find no handler at all (``logging.lastResort``, WARNING and above);
* the records of ``logging.warning(...)``, ``logging.error(...)`` and the other module-level
  functions called while the root logger has no handler: Python would then add a stderr handler
  to the root logger (``basicConfig()``); pythanc adds one that writes to Orthanc's log, with the
  same effect otherwise (the root level is unchanged, and a later ``basicConfig`` does nothing, as
  in Python).  An explicit ``logging.basicConfig(...)`` of the script is Python's own.

``"Python": {"LoggingLevel": "INFO"}`` (opt-in) puts a handler writing to Orthanc's log on the
root logger and sets the root level: every record of that level or above, of the script and of
its libraries, goes to Orthanc's log (INFO and DEBUG as LogInfo, shown by Orthanc with
``--verbose``).  A script's ``basicConfig`` then does nothing (the root logger has a handler),
unless it passes ``force=True``.

Each line starts with ``[logger name]``.  Pure Python (no cffi): the worker processes use it with
their forwarded ``orthanc.Log*`` functions.
"""

import functools
import logging
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# (error, warning, info): the functions that write to Orthanc's log, set by configure()
_sinks = [None]
_state = {"level": None}   # the root level that configure() set (LoggingLevel), to undo at the next


class OrthancLogHandler(logging.Handler):
    """Records into Orthanc's log: ERROR and above -> LogError, WARNING -> LogWarning, the rest ->
    LogInfo (shown by Orthanc with --verbose).  Each line starts with ``[logger name]``."""

    def __init__(self, level=logging.NOTSET):
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(message)s"))   # basicConfig keeps a handler's formatter

    def emit(self, record):
        try:
            sinks = _sinks[0]
            if sinks is None:
                return
            error, warning, info = sinks
            msg = "[%s] %s" % (record.name, self.format(record))
            if record.levelno >= logging.ERROR:
                error(msg)
            elif record.levelno >= logging.WARNING:
                warning(msg)
            else:
                info(msg)
        except Exception:
            self.handleError(record)


class _LastResort(OrthancLogHandler):
    """``logging.lastResort``: the records that found no handler (WARNING and above)."""


def _basic_config(original):
    @functools.wraps(original)
    def basicConfig(**kwargs):
        if not kwargs and _sinks[0] is not None and sys._getframe(1).f_globals is vars(logging):
            # called by logging.warning() & co. because the root logger has no handler: Python's
            # stderr handler would be added; this one writes to Orthanc's log
            return original(handlers=[OrthancLogHandler()])
        return original(**kwargs)
    basicConfig.__pythanc_original__ = original
    return basicConfig


def configure(error, warning, info, level=None):
    """At each initialisation (again after /tools/reset, in the same process: nothing stacks).
    ``error``/``warning``/``info`` write a line to Orthanc's log; ``level``: the option
    ``LoggingLevel`` (a name of :data:`LEVELS`), or ``None`` for Python's defaults."""
    _sinks[0] = (error, warning, info)
    if not isinstance(logging.lastResort, _LastResort):
        logging.lastResort = _LastResort(logging.WARNING)
    if not hasattr(logging.basicConfig, "__pythanc_original__"):
        logging.basicConfig = _basic_config(logging.basicConfig)
    root = logging.getLogger()
    for h in list(root.handlers):   # those of a previous run of this process
        if isinstance(h, OrthancLogHandler):
            root.removeHandler(h)
    if _state["level"] is not None and root.level == _state["level"]:
        root.setLevel(logging.WARNING)   # Python's default, which the previous run changed
    _state["level"] = None
    if level is not None:
        root.addHandler(OrthancLogHandler())
        root.setLevel(getattr(logging, level))
        _state["level"] = root.level
