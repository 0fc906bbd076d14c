"""The Python environment that scripts find: Python's own defaults, except where scripts written
for the official plugin rely on something else.  Pure Python (no cffi): the worker processes use
it too.
"""

import multiprocessing
import multiprocessing.context
import sys


def keep_fork_start_method():
    """Keep ``fork`` as the default start method of ``multiprocessing`` on Linux.

    Python 3.14 made ``forkserver`` the default.  Scripts written for the official plugin assume the
    old default: a script that creates a ``Pool`` at import (the Orthanc Book's sample) would, with
    ``forkserver``, have every child import the script again and create a pool during its own
    bootstrapping; the children die and the pool replaces them forever.  Only the *default* is
    changed, and only if nothing chose a method yet: a script's ``set_start_method("spawn")`` or
    ``get_context("forkserver")`` work as in any Python program."""
    default = getattr(multiprocessing.context, "_default_context", None)
    if (sys.platform.startswith("linux") and default is not None
            and multiprocessing.get_start_method(allow_none=True) is None
            and getattr(default, "_default_context", None) is not None
            and default._default_context.get_start_method() != "fork"):
        default._default_context = multiprocessing.get_context("fork")
