"""Shared test helpers.  The ``orthanc_server`` fixture comes from pythanc's own pytest plugin
(:mod:`pythanc.testing`), the same one that script authors use."""

import glob
import os
import re
import shutil

import pytest

from pythanc.testing import orthanc_version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("PYTHANC_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
SEEDS = os.path.join(SHARED, "seed-samples")
TESTDATA = os.path.join(SHARED, "testdata")

# What depends on the Orthanc under test (never on one release): its version, and what follows.
ORTHANC_VERSION = orthanc_version()
# Orthanc 1.13 percent-decodes the values of GET arguments before plugins see them (the REST
# callback's ``get`` and the HTTP filter's); 1.10 and 1.12 pass them as the client sent them.
GET_VALUES_DECODED = ORTHANC_VERSION is not None and ORTHANC_VERSION >= (1, 13, 0)

# The SDK header that pythanc was built from (orthanc-dev's), and the C functions it defines.
SDK_HEADER = os.environ.get("PYTHANC_SDK_HEADER", "/usr/include/orthanc/OrthancCPlugin.h")


def _sdk_functions(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return frozenset()
    return frozenset(re.findall(r"\bORTHANC_PLUGIN_INLINE\b[^;{}()]*?\b(OrthancPlugin\w+)\s*\(", text))


SDK_FUNCTIONS = _sdk_functions(SDK_HEADER)


def needs_sdk(*c_functions):
    """A mark that skips a test unless the installed SDK header defines every one of ``c_functions``
    (``@needs_sdk("OrthancPluginRegisterFindCallback2")``); the reason names what is missing."""
    missing = [c for c in c_functions if c not in SDK_FUNCTIONS]
    return pytest.mark.skipif(bool(missing), reason="the installed SDK (%s) has no %s" % (
        SDK_HEADER, ", ".join(missing)))


def official_plugin():
    """The official Python plugin of this Debian release (orthanc-python: libOrthancPython.so.4.0 on
    Debian 12, 5.0 on 13, 7.1 on testing), for parity tests; skips the test if it is not installed."""
    found = sorted(glob.glob("/usr/lib/orthanc/libOrthancPython.so*"))
    if not found:
        pytest.skip("the official plugin (orthanc-python) is not installed")
    return found[-1]


@pytest.fixture
def seed():
    """``seed('02-extending-rest-api.py')`` -> absolute path of a seed sample (loaded from shared/)."""
    def path(name):
        p = os.path.join(SEEDS, name)
        if not os.path.isfile(p):
            pytest.fail("seed sample missing: %s" % p)
        return p
    return path


@pytest.fixture
def testdata():
    def path(name):
        return os.path.join(TESTDATA, name)
    return path


@pytest.fixture
def write_script(tmp_path):
    """``write_script(text, name='script.py')`` -> path of a script file holding ``text``."""
    def write(text, name="script.py"):
        p = tmp_path / name
        p.write_text(text)
        return str(p)
    return write


def pid_alive(pid):
    """Whether process ``pid`` runs: a zombie (ended, not reaped yet) counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def dcmtk(name):
    """dcmtk's tool ``name`` (not another program of the same name earlier in PATH); skips the test
    if dcmtk is not installed."""
    p = os.path.join("/usr/bin", name)
    if os.path.exists(p):
        return p
    p = shutil.which(name)
    if p is None:
        pytest.skip("dcmtk's %s is not installed" % name)
    return p
