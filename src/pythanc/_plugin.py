"""The plugin's life cycle: what runs when Orthanc initialises and finalises pythanc.

``OrthancPluginInitialize`` (C, ``_build/prelude.c``) starts Python, then calls
:func:`pythanc_initialize` here, which reads the configuration, installs the generated module as
``orthanc`` and imports the user's script.  Callbacks themselves live in ``pythanc/_callbacks.py``.
"""

import importlib.util
import json
import os
import stat
import sys
import traceback
import types

from _pythanc_cffi import ffi, lib

from . import _convert, _callbacks
from ._convert import STATE

_orthanc_module = None


def log_error(msg):
    c = STATE.ctx
    if c is not None:
        lib.OrthancPluginLogError(c, msg.encode("utf-8", "replace").replace(b"\0", b"?"))
    else:
        sys.stderr.write(msg + "\n")


def log_warning(msg):
    c = STATE.ctx
    if c is not None:
        lib.OrthancPluginLogWarning(c, msg.encode("utf-8", "replace").replace(b"\0", b"?"))
    else:
        sys.stderr.write(msg + "\n")


def log_info(msg):
    c = STATE.ctx
    if c is not None:
        lib.OrthancPluginLogInfo(c, msg.encode("utf-8", "replace").replace(b"\0", b"?"))


def log_exception(what):
    """Log the current exception with its traceback (file and line) in Orthanc's log."""
    log_error("Error in the %s, traceback:\n%s" % (what, traceback.format_exc().rstrip()))


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
    return {"script": script, "verbose": verbose, "section": section}


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
        _orthanc_module = mod
    return _orthanc_module


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
    spec = importlib.util.spec_from_file_location(stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(stem, None)
        raise
    return module


_loaded = {"modules": []}


@ffi.def_extern(error=0)
def pythanc_initialize(context):
    STATE.ctx = context
    try:
        log_warning("Python plugin is initializing (pythanc, Python %s)" % sys.version.split()[0])
        options = read_configuration()
        if not options["script"]:
            log_warning('The options "PythonScript" and "Python.Path" are not provided: '
                        'Python scripting is disabled')
            return 1
        if options["verbose"]:
            _callbacks.VERBOSE = True
        sys.modules["orthanc"] = orthanc_module()
        _callbacks.reset()
        module = load_script(options["script"])
        _loaded["modules"].append(module.__name__)
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
        _callbacks.shutdown()
        for name in _loaded["modules"]:
            sys.modules.pop(name, None)
        _loaded["modules"] = []
    except BaseException:
        log_exception("finalization of the Python plugin")
    finally:
        STATE.ctx = None
