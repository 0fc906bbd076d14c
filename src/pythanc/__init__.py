"""pythanc: Orthanc plugins written in Python.

Inside Orthanc, scripts ``import orthanc`` (generated from the installed SDK header).  Outside,
this package offers the command line (``pythanc run``, ``pythanc plugin-path``, ``pythanc
coverage``) and the pytest plugin (:mod:`pythanc.testing`).
"""

import os

__version__ = "0.1.0"


def plugin_path():
    """Absolute path of the plugin library to list in Orthanc's ``"Plugins"`` option."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "libpythanc.so")
