"""For script authors: virtualenvs, several scripts, reload, stubs, doctor (logging: test_logging.py)."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import SEEDS, pid_alive
from pythanc.testing import orthanc_version, wait_until

BIN = os.path.dirname(sys.executable)


def test_virtualenv_packages_are_importable(orthanc_server, write_script, tmp_path):
    venv = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    (site / "only_in_that_venv").mkdir(parents=True)
    (site / "only_in_that_venv" / "__init__.py").write_text("MARK = 'venv-package-imported'\n")
    script = write_script("import only_in_that_venv\nprint(only_in_that_venv.MARK, flush=True)\n")
    server = orthanc_server(script=script, config={"Python": {"VirtualEnv": str(venv)}})
    server.wait_for_log("venv-package-imported")


def test_virtualenv_missing_package_fails_without_the_option(orthanc_server, write_script):
    server = orthanc_server(script=write_script("import only_in_that_venv\n"), wait=False)
    assert server.wait_exit(60) != 0
    assert "ModuleNotFoundError: No module named 'only_in_that_venv'" in server.log()


def test_several_scripts_and_several_callbacks(orthanc_server, tmp_path, testdata):
    a = tmp_path / "script_a.py"
    b = tmp_path / "script_b.py"
    a.write_text("import orthanc\n"
                 "orthanc.RegisterOnStoredInstanceCallback(lambda i, iid: orthanc.LogWarning('A1 stored ' + iid))\n"
                 "orthanc.RegisterOnStoredInstanceCallback(lambda i, iid: orthanc.LogWarning('A2 stored ' + iid))\n"
                 "orthanc.RegisterRestCallback('/a', lambda o, u, **r: o.AnswerBuffer(__name__, 'text/plain'))\n")
    b.write_text("import orthanc\n"
                 "def OnChange(t, l, r):\n"
                 "    if t == orthanc.ChangeType.NEW_INSTANCE: orthanc.LogWarning('B change ' + r)\n"
                 "orthanc.RegisterOnChangeCallback(OnChange)\n"
                 "orthanc.RegisterOnChangeCallback(lambda t, l, r: t == orthanc.ChangeType.NEW_INSTANCE and "
                 "orthanc.LogWarning('B2 change ' + r))\n"
                 "orthanc.RegisterOnStoredInstanceCallback(lambda i, iid: orthanc.LogWarning('B stored ' + iid))\n"
                 "orthanc.RegisterRestCallback('/b', lambda o, u, **r: o.AnswerBuffer(__name__, 'text/plain'))\n")
    server = orthanc_server(script=str(a), config={"Python": {"Scripts": [str(b)]}})
    assert server.get("/a").text == "script_a"
    assert server.get("/b").text == "script_b"
    iid = server.upload(testdata("ct-a1-1.dcm"))["ID"]
    server.wait_for_log("B2 change " + iid)
    log = server.log()
    order = [log.index(x + " " + iid) for x in ("A1 stored", "A2 stored", "B stored")]
    assert order == sorted(order)
    assert log.index("B change " + iid) < log.index("B2 change " + iid)


def _write(path, text):
    # a new size as well as a new time, so that the change is seen whatever the file system's clock
    path.write_text(text)


def test_reload_on_change_and_keep_previous_on_failure(orthanc_server, tmp_path):
    script = tmp_path / "reloaded.py"
    template = ("import orthanc\n"
                "orthanc.RegisterRestCallback('/version', lambda o, u, **r: o.AnswerBuffer('%s', 'text/plain'))\n")
    _write(script, template % "v1")
    server = orthanc_server(script=str(script), config={"Python": {"Reload": True}})
    assert server.get("/version").text == "v1"

    def wait_version(expected):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.get("/version").text == expected:
                return
            time.sleep(0.1)
        raise AssertionError("never saw %s; log:\n%s" % (expected, server.log()[-3000:]))

    _write(script, template % "version-two")
    wait_version("version-two")
    server.wait_for_log("pythanc: reloaded")

    _write(script, "this is not python (\n")
    server.wait_for_log("does not compile; the previous version keeps running")
    assert server.get("/version").text == "version-two"

    _write(script, template % "v3" + "raise RuntimeError('broken on purpose')\n")
    server.wait_for_log(r"reloading .* failed; the previous version keeps running")
    assert server.get("/version").text == "version-two"

    _write(script, template % "version-four")
    wait_version("version-four")


def _mypy(path):
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--allow-untyped-defs",
                           "--allow-incomplete-defs", "--allow-untyped-calls", "--no-error-summary",
                           "--cache-dir", os.devnull, path], capture_output=True, text=True)


@pytest.mark.parametrize("sample", sorted(f for f in os.listdir(SEEDS) if f.endswith(".py") and f < "14"))
def test_stubs_accept_the_seed_samples(sample):
    r = _mypy(os.path.join(SEEDS, sample))
    problems = [l for l in r.stdout.splitlines() if "orthanc" in l.lower() and "error" in l]
    assert problems == [], r.stdout


def test_stubs_reject_a_wrong_use(tmp_path):
    p = tmp_path / "wrong.py"
    p.write_text("import orthanc\n"
                 "orthanc.RestApiGet(42)\n"
                 "x: str = orthanc.RestApiGet('/system')\n"
                 "orthanc.ChangeType.NO_SUCH_VALUE\n")
    out = _mypy(str(p)).stdout
    assert 'Argument 1 to "RestApiGet" has incompatible type "int"' in out
    assert 'Incompatible types in assignment (expression has type "bytes"' in out
    assert 'has no attribute "NO_SUCH_VALUE"' in out


def test_doctor(tmp_path):
    good = tmp_path / "good.py"
    good.write_text("import orthanc\nimport json\nimport pydicom\n")
    bad = tmp_path / "bad.py"
    bad.write_text("import orthanc\nimport surely_not_installed_pkg\n")
    r = subprocess.run([os.path.join(BIN, "pythanc"), "doctor", "--script", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    version = ".".join(map(str, orthanc_version()))
    sdk = json.loads(subprocess.run([os.path.join(BIN, "pythanc"), "coverage", "--json"], capture_output=True,
                                    text=True).stdout or "{}").get("sdk_version")
    assert "ok:      Orthanc %s" % version in r.stdout and "0 problem(s) found" in r.stdout
    if sdk is not None:
        assert "built for SDK %s" % ".".join(map(str, sdk)) in r.stdout
    r = subprocess.run([os.path.join(BIN, "pythanc"), "doctor", "--script", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "the script imports 'surely_not_installed_pkg', which is not installed" in r.stdout


KILLED_DRIVER = r'''
import sys, time
from pythanc.testing import OrthancServer
server = OrthancServer(script=sys.argv[1])
print(server.process.pid, flush=True)
time.sleep(600)
'''


def test_orthanc_stops_when_its_test_process_is_killed(write_script, tmp_path):
    """A test process that is killed (kill -9 of pytest, a CI timeout) cannot stop its Orthanc: the
    fixture starts Orthanc with a parent-death signal, so that it stops instead of running on."""
    driver = tmp_path / "driver.py"
    driver.write_text(KILLED_DRIVER)
    process = subprocess.Popen([sys.executable, str(driver), write_script("import orthanc\n")],
                               stdout=subprocess.PIPE, text=True)
    orthanc_pid = None
    try:
        orthanc_pid = int(process.stdout.readline())   # printed once Orthanc answers
        assert pid_alive(orthanc_pid)
        process.kill()
        process.wait(30)
        wait_until(lambda: not pid_alive(orthanc_pid), timeout=60,
                   what="Orthanc to stop after its test process was killed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        if orthanc_pid is not None and pid_alive(orthanc_pid):
            os.kill(orthanc_pid, 9)   # the Orthanc this test started, left running without the fix
