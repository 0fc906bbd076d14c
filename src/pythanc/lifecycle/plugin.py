"""The plugin's life cycle: what runs when Orthanc initialises and finalises pythanc.

``OrthancPluginInitialize`` (C, ``_build/bootstrap.c``) starts Python, then calls
:func:`pythanc_initialize` here, which reads the configuration, installs the ``orthanc`` module
(``module``), resets the registrations of every callback family, runs the user's scripts
(``scripts``), marks the end of their loading for the registrations made later
(``registry.mark_started``) and starts what they need (worker processes, REST dispatch threads,
``reload``).
This is the top of the run time: it is the module that cffi's embedding imports first, and it
imports every callback family, whose C entry points thereby exist.
"""

import os
import sys
import threading
import tracemalloc

from ..callbacks import registry
from ..core.config import ConfigError, read_configuration, use_virtualenv
from ..core.context import STATE, ffi, lib
from ..core import tracebacks
from ..core.log import log_error, log_warning, log_info, log_exception, install_logging
from ..core.script_env import keep_fork_start_method
from ..workers import pool
from . import reload
from .module import orthanc_module, set_verbose
from .scripts import load_script

CHILD_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workers", "child")

_loaded = {"modules": [], "paths": {}}
_memory = {"thread": None, "stop": None}   # the thread of Python.DisplayMemoryUsage

MEMORY_PERIOD = 1.0   # seconds between two lines of Python.DisplayMemoryUsage, as the official plugin


def _display_memory_usage(stop):
    """``Python.DisplayMemoryUsage``: the official plugin's line, each second, with the memory that
    Python's allocations hold (traced by ``tracemalloc`` since the plugin started), into Orthanc's
    log at warning level (the official plugin prints it on the standard output, always shown)."""
    while True:
        try:
            log_warning("Python memory usage: %0.03fMB" % (tracemalloc.get_traced_memory()[0] / (1024.0 * 1024.0)))
        except BaseException:
            log_exception("Python.DisplayMemoryUsage")
        if stop.wait(MEMORY_PERIOD):
            return


def _start_memory_display():
    _stop_memory_display()
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    stop = threading.Event()
    t = threading.Thread(target=_display_memory_usage, args=(stop,), name="PY-MEMORY", daemon=True)
    _memory.update(thread=t, stop=stop)
    t.start()


def _stop_memory_display():
    t, stop = _memory["thread"], _memory["stop"]
    _memory.update(thread=None, stop=None)
    if t is not None:
        stop.set()
        t.join(10)
        tracemalloc.stop()


@ffi.def_extern(error=0)
def pythanc_initialize(context):
    STATE.ctx = context
    try:
        log_warning("Python plugin is initializing (pythanc, Python %s)" % sys.version.split()[0])
        options = read_configuration()
        if not options["scripts"]:
            log_warning('The options "PythonScript" and "Python.Path" are not provided: '
                        'Python scripting is disabled')
            return 1
        if options["venv"]:
            use_virtualenv(options["venv"])
        if options["allow_threads"] is not None:
            log_info('pythanc always releases the GIL while it calls Orthanc (as the official plugin does with '
                     '"Python.AllowThreads": true): the option "Python.AllowThreads" changes nothing')
        if options["display_memory_usage"]:
            _start_memory_display()
        module = orthanc_module()
        sys.modules["orthanc"] = module
        set_verbose(module, options["verbose"])
        tracebacks.set_full(options["verbose"])   # PythonVerbose: pythanc's frames in tracebacks too
        if CHILD_FOLDER not in sys.path:  # "import orthanc" in the script's multiprocessing children
            sys.path.append(CHILD_FOLDER)
        install_logging(options["logging_level"])
        keep_fork_start_method()
        registry.reset()
        pool.configure(options["workers"], options["worker_timeout"], options["scripts"], module,
                       logging_level=options["logging_level"])
        for path in options["scripts"]:
            loaded = load_script(path)
            _loaded["modules"].append(loaded.__name__)
            _loaded["paths"][loaded.__name__] = os.path.abspath(path)
        # From here on Orthanc may run callbacks: a registration that needs Orthanc follows the
        # rules for registrations after start-up (callbacks/registry.py).
        registry.mark_started()
        pool.start()
        if options["rest_threads"]:
            lib.pythanc_start_rest_threads(options["rest_threads"])
        if options["reload"]:
            reload.start(dict(_loaded["paths"]))
        return 1
    except ConfigError as e:
        log_error(str(e))
    except BaseException:
        log_exception(None, first_line="Error during the installation of the Python script, traceback:")
    return 0


@ffi.def_extern()
def pythanc_finalize():
    try:
        log_warning("Python plugin is finalizing")
        reload.stop()
        _stop_memory_display()
        registry.shutdown()
        pool.stop()
        for name in _loaded["modules"]:
            sys.modules.pop(name, None)
        _loaded["modules"] = []
        _loaded["paths"] = {}
    except BaseException:
        log_exception("finalization of the Python plugin")
    finally:
        STATE.ctx = None
