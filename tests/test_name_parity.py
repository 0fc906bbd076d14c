# SPDX-License-Identifier: GPL-3.0-or-later
"""Run-time name parity with the official plugin of this Debian release (4.0, 5.0 or 7.1), inside a
real Orthanc: the same script dumps ``dir()`` of the ``orthanc`` module (functions, classes and
their methods, enumerations and their values, exceptions) under the official plugin and under
pythanc, on the same Orthanc.  Every official name must exist in pythanc, with the same enumeration
values, except the registrations still listed in ``not_generated.TO_HANDWRITE`` (so the test
tightens by itself as they are written)."""

import pytest

from pythanc._build import not_generated
from pythanc.testing import OrthancServer

from conftest import official_plugin

DUMP = r'''
import inspect, json, orthanc

def Dump(output, uri, **request):
    out = {"functions": [], "classes": {}, "enumerations": {}, "exceptions": []}
    for name in dir(orthanc):
        if name.startswith("_"):
            continue
        value = getattr(orthanc, name)
        if inspect.isclass(value):
            if issubclass(value, BaseException):
                out["exceptions"].append(name)
                continue
            members = {m: getattr(value, m) for m in dir(value) if not m.startswith("_")}
            if members and all(type(v) is int for v in members.values()):
                out["enumerations"][name] = members
            else:
                out["classes"][name] = sorted(m for m, v in members.items() if callable(v))
        elif callable(value):
            out["functions"].append(name)
    output.AnswerBuffer(json.dumps(out), "application/json")

orthanc.RegisterRestCallback("/name-parity/dump", Dump)
'''

# What pythanc has not written yet (other branches): the Python names of the registrations of
# TO_HANDWRITE.  A name of the official module missing for another reason fails the test.
PENDING = frozenset(not_generated.TO_HANDWRITE.values())


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """The dumps of the official plugin and of pythanc (one Orthanc each), shared by the tests."""
    official = official_plugin()
    result = {}
    for key, plugin in (("official", official), ("pythanc", None)):
        workdir = tmp_path_factory.mktemp("parity-%s" % key)
        script = workdir / "dump.py"
        script.write_text(DUMP)
        server = OrthancServer(script=str(script), plugin=plugin, workdir=str(workdir / "orthanc"))
        try:
            r = server.get("/name-parity/dump")
            assert r.status_code == 200, r.text
            result[key] = r.json()
        finally:
            server.stop()
    return result


def test_official_functions_exist(dumps):
    official, ours = dumps["official"], dumps["pythanc"]
    assert len(official["functions"]) > 50   # the dump saw the official module
    missing = sorted(set(official["functions"]) - set(ours["functions"]) - PENDING)
    assert not missing, "functions of the official plugin missing from pythanc: %s" % missing


def test_official_classes_and_methods_exist(dumps):
    official, ours = dumps["official"], dumps["pythanc"]
    missing = []
    for cls, methods in official["classes"].items():
        if cls not in ours["classes"]:
            missing.append(cls)
            continue
        missing += ["%s.%s" % (cls, m) for m in sorted(set(methods) - set(ours["classes"][cls]))
                    if "%s.%s" % (cls, m) not in PENDING]
    assert not missing, "classes or methods of the official plugin missing from pythanc: %s" % missing


def test_official_enumerations_exist_with_their_values(dumps):
    official, ours = dumps["official"], dumps["pythanc"]
    wrong = []
    for enum, values in official["enumerations"].items():
        theirs = ours["enumerations"].get(enum)
        if theirs is None:
            wrong.append(enum)
            continue
        wrong += ["%s.%s=%s (pythanc: %s)" % (enum, k, v, theirs.get(k)) for k, v in sorted(values.items())
                  if theirs.get(k) != v]
    assert not wrong, "enumerations of the official plugin missing or different in pythanc: %s" % wrong
    assert set(official["exceptions"]) <= set(ours["exceptions"])


def test_pending_names_are_registrations():
    """The exemption is only for what TO_HANDWRITE lists (registrations waiting for their code)."""
    assert all(n.startswith(("Register", "Create")) for n in PENDING)
