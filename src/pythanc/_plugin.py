"""The plugin's life cycle: what runs when Orthanc initialises and finalises pythanc.

``OrthancPluginInitialize`` (C, ``_build/prelude.c``) starts Python, then calls
:func:`pythanc_initialize` here, which reads the configuration, installs the generated module as
``orthanc`` and imports the user's script.  Callbacks themselves live in ``pythanc/_callbacks.py``.
"""

import functools
import importlib.util
import json
import logging
import os
import stat
import sys
import traceback
import types

from _pythanc_cffi import ffi, lib

from . import _convert, _callbacks, _workers
from ._convert import STATE

_orthanc_module = None


def _log(sdk_log, msg, to_stderr):
    """Write ``msg`` to Orthanc's log with ``sdk_log`` (``lib.OrthancPluginLogError``, ...); outside
    an initialised plugin, to stderr if ``to_stderr``."""
    c = STATE.ctx
    if c is not None:
        sdk_log(c, msg.encode("utf-8", "replace").replace(b"\0", b"?"))
    elif to_stderr:
        sys.stderr.write(msg + "\n")


def log_error(msg):
    _log(lib.OrthancPluginLogError, msg, True)


def log_warning(msg):
    _log(lib.OrthancPluginLogWarning, msg, True)


def log_info(msg):
    _log(lib.OrthancPluginLogInfo, msg, False)


def log_exception(what):
    """Log the current exception with its traceback (file and line) in Orthanc's log."""
    log_error("Error in the %s, traceback:\n%s" % (what, traceback.format_exc().rstrip()))


# Threads that run the REST callbacks (see "REST dispatch threads" in prelude.c); 0: Orthanc's HTTP
# threads call Python themselves, as with the official plugin.
DEFAULT_REST_THREADS = 2


class ConfigError(Exception):
    pass


def read_configuration():
    """The plugin's options: ``PythonScript``/``Python.Path`` and ``PythonVerbose``/``Python.Verbose``."""
    raw = lib.OrthancPluginGetConfiguration(STATE.ctx)
    config = json.loads(_convert._take_string(raw)) if raw != ffi.NULL else {}
    section = config.get("Python", {})
    if not isinstance(section, dict):
        raise ConfigError('The configuration option "Python" is not an object as expected')

    def option(value, kind, name):
        if value is not None and not isinstance(value, kind):
            raise ConfigError('The configuration option "%s" is not a %s as expected'
                              % (name, "Boolean" if kind is bool else "string"))
        return value

    script = option(config.get("PythonScript"), str, "PythonScript")
    if script is None:
        script = option(section.get("Path"), str, "Python.Path")
    verbose = bool(option(config.get("PythonVerbose"), bool, "PythonVerbose")) or \
        bool(option(section.get("Verbose"), bool, "Python.Verbose"))
    scripts = [script] if script else []
    extra = section.get("Scripts", [])
    if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
        raise ConfigError('The configuration option "Python.Scripts" is not a list of strings as expected')
    for x in extra:
        if os.path.abspath(x) not in [os.path.abspath(y) for y in scripts]:
            scripts.append(x)
    venv = option(section.get("VirtualEnv"), str, "Python.VirtualEnv")
    reload_ = bool(option(section.get("Reload"), bool, "Python.Reload"))
    workers = section.get("Workers", 0)
    if type(workers) is not int or workers < 0:
        raise ConfigError('The configuration option "Python.Workers" is not a non-negative integer as expected')
    timeout = section.get("WorkerTimeout", _workers.DEFAULT_TIMEOUT)
    if type(timeout) not in (int, float) or timeout <= 0:
        raise ConfigError('The configuration option "Python.WorkerTimeout" is not a positive number of '
                          'seconds as expected')
    rest_threads = section.get("RestThreads", DEFAULT_REST_THREADS)
    if type(rest_threads) is not int or not 0 <= rest_threads <= 64:
        raise ConfigError('The configuration option "Python.RestThreads" is not an integer between 0 '
                          'and 64 as expected')
    return {"script": script, "scripts": scripts, "verbose": verbose, "section": section,
            "venv": venv, "reload": reload_, "workers": workers, "worker_timeout": timeout,
            "rest_threads": rest_threads}


def use_virtualenv(path):
    """Make the packages of the virtualenv at ``path`` importable (before the base installation's)."""
    import glob
    import site
    path = os.path.abspath(path)
    candidates = glob.glob(os.path.join(path, "lib", "python%d.%d" % sys.version_info[:2], "site-packages"))
    if not candidates:
        raise ConfigError('Python.VirtualEnv: %s has no lib/python%d.%d/site-packages (a virtualenv of '
                          'another Python version?)' % ((path,) + sys.version_info[:2]))
    before = list(sys.path)
    site.addsitedir(candidates[0])  # also runs the .pth files of that environment
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + [p for p in sys.path if p not in added]
    log_warning("pythanc: using the packages of the virtualenv %s" % path)


class OrthancLogHandler(logging.Handler):
    """Python's ``logging`` into Orthanc's log: ERROR and above -> LogError, WARNING -> LogWarning,
    the rest -> LogInfo (shown by Orthanc with --verbose).  Records carry the logger's name."""

    def emit(self, record):
        try:
            msg = "[%s] %s" % (record.name, self.format(record))
            if record.levelno >= logging.ERROR:
                log_error(msg)
            elif record.levelno >= logging.WARNING:
                log_warning(msg)
            else:
                log_info(msg)
        except Exception:
            self.handleError(record)


def install_logging():
    root = logging.getLogger()
    if not any(isinstance(h, OrthancLogHandler) for h in root.handlers):
        root.addHandler(OrthancLogHandler())
    if root.level == logging.WARNING:  # Python's default: let INFO through, Orthanc filters it
        root.setLevel(logging.INFO)


def orthanc_module():
    """The public ``orthanc`` module: the generated API without its private helpers."""
    global _orthanc_module
    if _orthanc_module is None:
        from ._generated import api
        mod = types.ModuleType("orthanc", api.__doc__)
        for name, value in vars(api).items():
            if name.startswith("_") or name == "OrthancObject":
                continue
            if isinstance(value, type):
                value.__module__ = "orthanc"
            mod.__dict__[name] = value
        _convert.set_error_codes(api.ErrorCode)
        _workers.extend_module(mod)
        _orthanc_module = mod
    return _orthanc_module


_verbose_originals = []   # (class or module dict, name, original function) replaced by set_verbose()


def set_verbose(mod, on):
    """``PythonVerbose``: log each call of an ``orthanc`` function or SDK-object method at INFO
    level (``pythanc: calling orthanc.RestApiGet()``, ``pythanc: calling RestOutput.AnswerBuffer()``),
    as the official plugin logs each SDK call.  The wrappers are installed only when it is on, so
    calls cost nothing more otherwise; an initialisation without it (after /tools/reset with another
    configuration) puts the originals back."""
    for target, name, original in reversed(_verbose_originals):
        if isinstance(target, dict):
            target[name] = original
        else:
            setattr(target, name, original)
    del _verbose_originals[:]
    if not on:
        return

    def wrap(fn, label):
        @functools.wraps(fn)
        def verbose_call(*args, **kwargs):
            log_info("pythanc: calling %s()" % label)
            return fn(*args, **kwargs)
        return verbose_call

    for name, value in list(vars(mod).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, type) and not issubclass(value, BaseException):
            for attr, fn in list(vars(value).items()):
                if not attr.startswith("_") and isinstance(fn, types.FunctionType):
                    _verbose_originals.append((value, attr, fn))
                    setattr(value, attr, wrap(fn, "%s.%s" % (name, attr)))
        elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            _verbose_originals.append((mod.__dict__, name, value))
            mod.__dict__[name] = wrap(value, "orthanc." + name)


def load_script(path):
    """Import the user's script as a module named after its file (as the official plugin does)."""
    path = os.path.abspath(path)
    folder, filename = os.path.split(path)
    stem, ext = os.path.splitext(filename)
    if ext.lower() != ".py":
        raise ConfigError('Python script must have the ".py" file extension: %s' % path)
    if not os.path.isfile(path):
        raise ConfigError("Inexistent Python script: %s" % path)
    try:
        mode = os.stat(path).st_mode
        if mode & stat.S_IWOTH:
            log_warning("pythanc: the Python script %s is writable by every user of this machine: "
                        "anyone could run code inside Orthanc" % path)
    except OSError:
        pass
    log_warning('Using Python script "%s" from directory: %s' % (filename, folder))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return exec_script(stem, path)


def exec_script(name, path):
    """Run the file ``path`` as a fresh module ``name`` (in ``sys.modules`` once it succeeded)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise
    return module


_loaded = {"modules": [], "paths": {}}


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
        sys.modules["orthanc"] = orthanc_module()
        set_verbose(sys.modules["orthanc"], options["verbose"])
        child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child")
        if child not in sys.path:  # "import orthanc" in the script's multiprocessing children
            sys.path.append(child)
        install_logging()
        _callbacks.reset()
        _workers.configure(options["workers"], options["worker_timeout"], options["scripts"])
        for path in options["scripts"]:
            module = load_script(path)
            _loaded["modules"].append(module.__name__)
            _loaded["paths"][module.__name__] = os.path.abspath(path)
        _workers.start()
        if options["rest_threads"]:
            lib.pythanc_start_rest_threads(options["rest_threads"])
        if options["reload"]:
            from . import _reload
            _reload.start(dict(_loaded["paths"]))
        return 1
    except ConfigError as e:
        log_error(str(e))
    except BaseException:
        log_error("Error during the installation of the Python script, traceback:\n%s"
                  % traceback.format_exc().rstrip())
    return 0


@ffi.def_extern()
def pythanc_finalize():
    try:
        log_warning("Python plugin is finalizing")
        from . import _reload
        _reload.stop()
        _callbacks.shutdown()
        _workers.stop()
        for name in _loaded["modules"]:
            sys.modules.pop(name, None)
        _loaded["modules"] = []
        _loaded["paths"] = {}
    except BaseException:
        log_exception("finalization of the Python plugin")
    finally:
        STATE.ctx = None
