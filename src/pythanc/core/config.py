"""The plugin's configuration: the options it reads in Orthanc's configuration, checked.

Top-level ``PythonScript`` and ``PythonVerbose`` (the official plugin's names), and the ``"Python"``
section: ``Path`` and ``Verbose`` (aliases, the top-level keys win), ``Scripts``, ``VirtualEnv``,
``Reload``, ``Workers``, ``WorkerTimeout``, ``RestThreads`` and ``LoggingLevel`` (pythanc's own; see the
README), ``AllowThreads`` and ``DisplayMemoryUsage`` (the official plugin's).
A wrong type is a :class:`ConfigError`, which stops the plugin with a message that names the option.
"""

import glob
import json
import os
import site
import sys

from .context import STATE, ffi, lib
from .convert import _take_string
from .log import log_warning
from .logbridge import LEVELS as LOGGING_LEVELS

# Threads that run the REST callbacks (see "REST dispatch threads" in _build/rest_dispatch.c); 0:
# Orthanc's HTTP threads call Python themselves, as with the official plugin.
DEFAULT_REST_THREADS = 2
# Seconds an offloaded callback may take in a worker process before the worker is replaced.
DEFAULT_WORKER_TIMEOUT = 120.0


class ConfigError(Exception):
    pass


def read_configuration():
    """The plugin's options, as a dict (see the module's documentation)."""
    raw = lib.OrthancPluginGetConfiguration(STATE.ctx)
    config = json.loads(_take_string(raw)) if raw != ffi.NULL else {}
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
    timeout = section.get("WorkerTimeout", DEFAULT_WORKER_TIMEOUT)
    if type(timeout) not in (int, float) or timeout <= 0:
        raise ConfigError('The configuration option "Python.WorkerTimeout" is not a positive number of '
                          'seconds as expected')
    rest_threads = section.get("RestThreads", DEFAULT_REST_THREADS)
    if type(rest_threads) is not int or not 0 <= rest_threads <= 64:
        raise ConfigError('The configuration option "Python.RestThreads" is not an integer between 0 '
                          'and 64 as expected')
    # Python's logging: its defaults unless the option asks for Orthanc's log on the root logger
    logging_level = section.get("LoggingLevel")
    if logging_level is not None:
        if not isinstance(logging_level, str) or logging_level.upper() not in LOGGING_LEVELS:
            raise ConfigError('The configuration option "Python.LoggingLevel" is not one of %s as expected'
                              % ", ".join('"%s"' % x for x in LOGGING_LEVELS))
        logging_level = logging_level.upper()
    # the official plugin's options: AllowThreads (pythanc always releases the GIL in SDK calls, so
    # it changes nothing) and DisplayMemoryUsage (Python's memory, traced, in the log each second)
    allow_threads = option(section.get("AllowThreads"), bool, "Python.AllowThreads")
    memory = bool(option(section.get("DisplayMemoryUsage"), bool, "Python.DisplayMemoryUsage"))
    return {"script": script, "scripts": scripts, "verbose": verbose, "section": section,
            "venv": venv, "reload": reload_, "workers": workers, "worker_timeout": timeout,
            "rest_threads": rest_threads, "logging_level": logging_level, "allow_threads": allow_threads,
            "display_memory_usage": memory}


def use_virtualenv(path):
    """Make the packages of the virtualenv at ``path`` importable (before the base installation's)."""
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
