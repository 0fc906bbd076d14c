"""Loading the user's scripts: each file runs as a module named after its stem."""

import importlib.util
import os
import stat
import sys

from ..core.config import ConfigError
from ..core.log import log_warning


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
