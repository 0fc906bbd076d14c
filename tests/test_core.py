"""The core of pythanc against a real Orthanc: loading, configuration, REST callbacks, changes,
stored instances, errors, object lifetimes, GIL release and /tools/reset."""

import http.server
import json
import os
import re
import subprocess
import sys
import threading

import pytest

from pythanc.testing import free_port, wait_until

from conftest import ORTHANC_VERSION, GET_VALUES_DECODED

PYTHANC = os.path.join(os.path.dirname(sys.executable), "pythanc")


def test_plugin_identity_and_cli(orthanc_server, write_script):
    server = orthanc_server(script=write_script("print('loaded')\n"))
    info = server.get("/plugins/python").json()
    assert info["ID"] == "python"
    import pythanc
    assert info["Version"] == pythanc.__version__
    path = subprocess.run([PYTHANC, "plugin-path"], capture_output=True, text=True, check=True).stdout.strip()
    assert os.path.isabs(path) and os.path.isfile(path)
    cov = subprocess.run([PYTHANC, "coverage"], capture_output=True, text=True, check=True).stdout
    assert "OrthancPluginRestApiGet" in cov and "reachable from Python" in cov
    percent = float(cov.rsplit("(", 1)[1].split("%")[0])
    totals = json.loads(subprocess.run([PYTHANC, "coverage", "--json"], capture_output=True, text=True,
                                       check=True).stdout)
    assert percent == totals["percent"] == round(100.0 * totals["reachable"] / totals["functions"], 1)
    # the callback registrations of newer SDKs that are still to hand-write (listed as such) aside
    pending = totals["totals"].get("to hand-write", 0)
    assert totals["reachable"] + pending >= 0.95 * totals["functions"]


def test_no_script_means_disabled(orthanc_server):
    server = orthanc_server(script=None)
    assert server.get("/system").status_code == 200
    server.wait_for_log(r'"PythonScript" and "Python.Path" are not provided: Python scripting is disabled')


def test_python_section_path_and_relative_script(orthanc_server, tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "helper_mod.py").write_text("VALUE = 'from-helper'\n")
    (scripts / "main_script.py").write_text(
        "import sys, helper_mod\nprint('helper says', helper_mod.VALUE, '__name__', __name__)\n")
    # "Python": {"Path": ...} relative to Orthanc's working directory; the script's folder is importable
    server = orthanc_server(config={"Python": {"Path": "scripts/main_script.py"}}, cwd=str(tmp_path))
    server.wait_for_log(r"helper says from-helper __name__ main_script")


REST_SCRIPT = r'''
import json, orthanc

def Echo(output, uri, **request):
    kw = {}
    for k, v in request.items():
        kw[k] = {"type": type(v).__name__,
                 "value": v.decode("latin-1") if isinstance(v, bytes) else v}
    output.AnswerBuffer(json.dumps({"uri": uri, "kw": kw}), "application/json")

orthanc.RegisterRestCallback("/echo(/.*)?", Echo)
orthanc.RegisterRestCallback("/ov/(.*)", Echo)
orthanc.RegisterRestCallback("/ov/special", lambda output, uri, **r: output.AnswerBuffer("special", "text/plain"))
orthanc.RegisterRestCallback("/system", lambda output, uri, **r: output.AnswerBuffer("overridden", "text/plain"))

def Boom(output, uri, **request):
    raise RuntimeError("deliberate failure in Boom")
orthanc.RegisterRestCallback("/boom", Boom)

def Status(output, uri, **request):
    output.SendHttpStatus(404, "not here at all", 3)
orthanc.RegisterRestCallback("/status", Status)

def Internal(output, uri, **request):
    output.AnswerBuffer(orthanc.RestApiGetAfterPlugins("/system"), "text/plain")
orthanc.RegisterRestCallback("/internal", Internal)
'''


def test_rest_callback_arguments(orthanc_server, write_script):
    server = orthanc_server(script=write_script(REST_SCRIPT))
    r = server.get("/echo/a%20b?x=1&y=%C3%A9t%C3%A9&x=2&flag", headers={"X-Custom": "Value"})
    assert r.status_code == 200
    d = r.json()
    assert d["uri"] == "/echo/a b"
    kw = d["kw"]
    assert sorted(kw) == ["get", "groups", "headers", "method"]
    assert kw["method"] == {"type": "str", "value": "GET"}
    assert kw["groups"] == {"type": "tuple", "value": ["/a b"]}
    assert kw["get"]["type"] == "dict"
    assert kw["get"]["value"] == {"x": "2", "y": "\u00e9t\u00e9" if GET_VALUES_DECODED else "%C3%A9t%C3%A9", "flag": ""}
    assert kw["headers"]["value"]["x-custom"] == "Value"

    d = server.post("/echo", data=b"\x00\x01body").json()
    assert sorted(d["kw"]) == ["body", "groups", "headers", "method"]
    assert d["kw"]["body"] == {"type": "bytes", "value": "\x00\x01body"}
    assert d["kw"]["groups"]["value"] == [""]
    assert d["kw"]["method"]["value"] == "POST"
    d = server.put("/echo/x", data=b"").json()
    assert d["kw"]["body"] == {"type": "bytes", "value": ""} and d["kw"]["method"]["value"] == "PUT"
    d = server.delete("/echo/x").json()
    assert sorted(d["kw"]) == ["groups", "headers", "method"] and d["kw"]["method"]["value"] == "DELETE"


def test_rest_routes_order_and_core_override(orthanc_server, write_script):
    server = orthanc_server(script=write_script(REST_SCRIPT))
    # the first registered expression that matches wins, as with the official plugin
    assert server.get("/ov/special").json()["kw"]["groups"]["value"] == ["special"]
    # a plugin route overrides a core route for HTTP clients and for the *AfterPlugins calls
    assert server.get("/system").text == "overridden"
    assert server.get("/internal").text == "overridden"


MANY_ROUTES_SCRIPT = r'''
import orthanc

def make(n):
    def OnRest(output, uri, **request):
        output.AnswerBuffer("route %d %s %s" % (n, uri, ",".join(request["groups"])), "text/plain")
    return OnRest

# 70 expressions: the first 64 get a C entry point each, the others share one (see prelude.c)
for n in range(70):
    orthanc.RegisterRestCallback("/many/%d(/.*)?" % n, make(n))
# the same expression again: the first registration keeps answering
orthanc.RegisterRestCallback("/many/5(/.*)?", make(500))
# overlapping expressions: the first registered one that matches answers
orthanc.RegisterRestCallback("/many/x/(.*)", make(1000))
orthanc.RegisterRestCallback("/many/x/special", make(1001))
'''


def test_many_routes_each_reach_their_callback(orthanc_server, write_script):
    server = orthanc_server(script=write_script(MANY_ROUTES_SCRIPT))
    for n in (0, 1, 7, 8, 5, 63, 64, 65, 69):
        assert server.get("/many/%d" % n).text == "route %d /many/%d " % (n, n)
        assert server.get("/many/%d/a" % n).text == "route %d /many/%d/a /a" % (n, n)
    assert server.get("/many/x/special").text == "route 1000 /many/x/special special"
    assert server.get("/many/70").status_code == 404
    assert server.get("/many/x/y").text == "route 1000 /many/x/y y"


def test_exception_in_callback_answers_500_and_logs_traceback(orthanc_server, write_script):
    path = write_script(REST_SCRIPT, name="rest_script.py")
    server = orthanc_server(script=path)
    r = server.get("/boom")
    assert r.status_code == 500
    assert r.json()["Message"] == "Error encountered within the plugin engine"
    server.wait_for_log(r"Error in the REST callback, traceback:")
    server.wait_for_log(r'File "%s", line \d+, in Boom' % path.replace("/", r"\/"))
    server.wait_for_log(r"RuntimeError: deliberate failure in Boom")
    # Orthanc goes on serving
    assert server.get("/echo").status_code == 200
    assert server.get("/statistics").status_code == 200


def test_send_http_status_compat(orthanc_server, write_script):
    server = orthanc_server(script=write_script(REST_SCRIPT))
    r = server.get("/status")
    assert r.status_code == 404 and r.content == b"not"


@pytest.mark.parametrize("body,expected", [
    ("def broken(:\n", "SyntaxError"),
    ("raise ValueError('cannot start')\n", "ValueError: cannot start"),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
])
def test_script_failing_at_load_stops_orthanc(orthanc_server, write_script, body, expected):
    server = orthanc_server(script=write_script("print('before failure')\n" + body), wait=False)
    code = server.wait_exit(60)
    assert code != 0
    log = server.log()
    assert "Error during the installation of the Python script, traceback:" in log
    assert expected in log
    if expected != "SyntaxError":  # a script with a syntax error runs no line at all
        assert "before failure" in log


@pytest.mark.parametrize("config,message", [
    ({"PythonVerbose": "yes"}, 'The configuration option "PythonVerbose" is not a Boolean as expected'),
    ({"PythonScript": 42}, 'The configuration option "PythonScript" is not a string as expected'),
    ({"PythonScript": "/nonexistent/script.py"}, "Inexistent Python script: /nonexistent/script.py"),
    ({"PythonScript": "/tmp/script.txt"}, 'Python script must have the ".py" file extension'),
])
def test_bad_configuration_is_fatal(orthanc_server, config, message):
    server = orthanc_server(config=config, wait=False)
    assert server.wait_exit(60) != 0
    assert message in server.log()


VERBOSE_SCRIPT = r'''
import orthanc

def OnRest(output, uri, **request):
    orthanc.RestApiGet("/system")
    output.AnswerBuffer("ok", "text/plain")
    print("ANSWERED", flush=True)

orthanc.RegisterRestCallback("/verbose", OnRest)
'''


@pytest.mark.parametrize("verbose", [True, False])
def test_python_verbose_logs_each_sdk_call(orthanc_server, write_script, verbose):
    # Orthanc runs with --verbose in both cases, so INFO lines would show if they were logged.
    server = orthanc_server(script=write_script(VERBOSE_SCRIPT), config={"PythonVerbose": verbose},
                            verbose=True)
    assert server.get("/verbose").text == "ok"
    server.wait_for_log("ANSWERED")
    calls = ["pythanc: calling orthanc.RegisterRestCallback()", "pythanc: calling orthanc.RestApiGet()",
             "pythanc: calling RestOutput.AnswerBuffer()"]
    log = server.log()
    if verbose:
        for line in calls:
            assert line in log
    else:
        assert "pythanc: calling" not in log


IMPORT_TRACE_SCRIPT = r'''
import orthanc
import sys

def OnRest(output, uri, **request):
    import colorsys  # a module nothing else imports, imported while Orthanc serves
    output.AnswerBuffer(str(sys.flags.verbose), "text/plain")

orthanc.RegisterRestCallback("/flag", OnRest)
'''


@pytest.mark.parametrize("config, traced", [
    ({"PythonVerbose": True}, True),
    ({"Python": {"Verbose": True}}, True),
    ({"PythonVerbose": False, "Python": {"Verbose": False}}, False),
    # Options of the same names elsewhere in the configuration do not count.
    ({"Other": {"PythonVerbose": True, "Python": {"Verbose": True}, "Verbose": True},
      "Python": {"Other": {"Verbose": True}}}, False),
    ({"Python": {"Note": "has \\\"quotes\\\" and {braces}, ", "Skip": [1, {"Verbose": True}],
                 "Verbose": True}}, True),
])
def test_python_verbose_turns_on_the_import_trace(orthanc_server, write_script, config, traced):
    # The official plugin sets Python's verbose flag: Python's own trace of imports on stderr.
    server = orthanc_server(script=write_script(IMPORT_TRACE_SCRIPT), config=config)
    assert server.get("/flag").text == ("1" if traced else "0")
    line = re.compile(r"^import 'colorsys' # ", re.M)
    if traced:
        wait_until(lambda: line.search(server.log()), 30, "the import of colorsys in the log")
        assert re.search(r"^import 'json' # ", server.log(), re.M)  # pythanc's own start-up is traced
    else:
        assert not re.search(r"^import '", server.log(), re.M)


LIFETIME_SCRIPT = r'''
import orthanc
KEPT = {}

def Keep(output, uri, **request):
    KEPT["output"] = output
    output.AnswerBuffer("kept", "text/plain")

def OnStored(instance, instance_id):
    KEPT["instance"] = instance

def UseLater(output, uri, **request):
    results = []
    for name, call in (("output", lambda: KEPT["output"].AnswerBuffer("late", "text/plain")),
                       ("instance", lambda: KEPT["instance"].GetInstanceSize())):
        try:
            call()
            results.append("%s: no error" % name)
        except orthanc.OrthancException as e:
            results.append("%s: OrthancException %d %s" % (name, e.args[0], e.args[1]))
    output.AnswerBuffer("\n".join(results), "text/plain")

orthanc.RegisterRestCallback("/keep", Keep)
orthanc.RegisterRestCallback("/use-later", UseLater)
orthanc.RegisterOnStoredInstanceCallback(OnStored)
'''


def test_objects_used_after_their_callback_raise(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(LIFETIME_SCRIPT))
    assert server.get("/keep").text == "kept"
    server.upload(testdata("ct-a1-1.dcm"))
    text = server.get("/use-later").text
    assert "output: OrthancException 6 This orthanc.RestOutput is no longer valid" in text
    assert "instance: OrthancException 6 This orthanc.DicomInstance is no longer valid" in text
    assert server.get("/system").status_code == 200


def test_wrong_argument_types_raise_python_errors(orthanc_server, write_script):
    script = r'''
import orthanc
def Probe(output, uri, **request):
    out = []
    for label, call in [
        ("int-for-str", lambda: orthanc.RestApiGet(42)),
        ("none-for-str", lambda: orthanc.LogWarning(None)),
        ("nul-in-str", lambda: orthanc.RestApiGet("/sys\0tem")),
        ("str-for-int", lambda: orthanc.GetFontName("x")),
        ("negative-uint", lambda: orthanc.GetCommandLineArgument(-1)),
        ("huge-uint", lambda: orthanc.GetCommandLineArgument(2**40)),
        ("wrong-class", lambda: orthanc.ConvertPixelFormat if False else orthanc.Image.GetImageWidth(output)),
        ("unknown-uri", lambda: orthanc.RestApiGet("/nonexistent")),
        ("short-image-buffer", lambda: orthanc.CompressPngImage(orthanc.PixelFormat.GRAYSCALE8, 4, 4, 4, b"abc")),
        ("construct", lambda: orthanc.Image()),
    ]:
        try:
            call()
            out.append(label + " ok")
        except Exception as e:
            out.append("%s %s %s" % (label, type(e).__name__, e))
    output.AnswerBuffer("\n".join(out), "text/plain")
orthanc.RegisterRestCallback("/probe", Probe)
'''
    server = orthanc_server(script=write_script(script))
    lines = dict(l.split(" ", 1) for l in server.get("/probe").text.splitlines())
    assert lines["int-for-str"].startswith("TypeError argument 'uri' must be str, not int")
    assert lines["none-for-str"].startswith("TypeError argument 'message' must be str")
    assert lines["nul-in-str"].startswith("ValueError argument 'uri' must not contain NUL")
    assert lines["str-for-int"].startswith("TypeError argument 'fontIndex' must be int")
    assert lines["negative-uint"].startswith("ValueError argument 'argument' is out of range")
    assert lines["huge-uint"].startswith("ValueError argument 'argument' is out of range")
    assert lines["wrong-class"].startswith("TypeError")
    assert lines["unknown-uri"] == "OrthancException (17, 'Unknown resource')"
    assert lines["short-image-buffer"].startswith("ValueError argument 'buffer' holds 3 bytes, but 16 are needed")
    assert lines["construct"].startswith("TypeError")
    assert server.get("/system").status_code == 200


CHANGES_SCRIPT = r'''
import json, orthanc
def OnChange(change_type, level, resource):
    if change_type == orthanc.ChangeType.ORTHANC_STARTED:
        # the REST API can be called from the change thread without deadlock
        version = json.loads(orthanc.RestApiGet("/system"))["Version"]
        print("STARTED, Orthanc", version, flush=True)
    elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
        print("STOPPED", flush=True)
    elif change_type == orthanc.ChangeType.NEW_INSTANCE:
        print("NEW_INSTANCE %s" % resource, flush=True)
orthanc.RegisterOnChangeCallback(OnChange)
'''


def test_changes_in_order_and_stopped_delivered(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(CHANGES_SCRIPT))
    server.wait_for_log(r"STARTED, Orthanc %s" % re.escape(".".join(map(str, ORTHANC_VERSION))))
    ids = [server.upload(testdata("ct-a1-%d.dcm" % i))["ID"] for i in range(1, 5)]
    seen = server.wait_for_log(r"NEW_INSTANCE (\S+)", count=4)
    assert seen == ids
    server.stop()
    log = server.log()
    assert log.count("STOPPED") == 1
    assert log.index("STOPPED") > log.index("NEW_INSTANCE " + ids[-1])


def test_tools_reset_reruns_script_without_duplicates(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(CHANGES_SCRIPT + r'''
orthanc.RegisterRestCallback("/ping", lambda output, uri, **r: output.AnswerBuffer("pong", "text/plain"))
print("SCRIPT LOADED", flush=True)
'''))
    server.wait_for_log(r"STARTED, Orthanc")
    assert server.post("/tools/reset").status_code == 200
    server.wait_for_log(r"SCRIPT LOADED", count=2)
    server.wait_for_log(r"STARTED, Orthanc", count=2)
    server.wait_ready()
    assert server.get("/ping").text == "pong"
    iid = server.upload(testdata("ct-a1-1.dcm"))["ID"]
    server.wait_for_log(r"NEW_INSTANCE " + iid)
    assert server.get("/ping").text == "pong"
    # exactly one delivery per change: no duplicate callback after the reset
    server.stop()
    assert server.log().count("NEW_INSTANCE " + iid) == 1
    assert server.log().count("STOPPED") == 2


class _BlockingHandler(http.server.BaseHTTPRequestHandler):
    release = None
    entered = None

    def do_GET(self):
        self.entered.set()
        self.release.wait(60)
        body = b"released"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_sdk_calls_release_the_gil(orthanc_server, write_script):
    """A callback blocked inside an SDK call (HttpGet) must not stop another Python callback."""
    port = free_port()
    release = threading.Event()
    entered = threading.Event()
    handler = type("H", (_BlockingHandler,), {"release": release, "entered": entered})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        server = orthanc_server(script=write_script(r'''
import orthanc
def Slow(output, uri, **r):
    output.AnswerBuffer(orthanc.HttpGet("http://127.0.0.1:%d/", "", ""), "text/plain")
orthanc.RegisterRestCallback("/slow", Slow)
orthanc.RegisterRestCallback("/fast", lambda output, uri, **r: output.AnswerBuffer("fast", "text/plain"))
''' % port))
        result = {}
        slow = threading.Thread(target=lambda: result.update(slow=server.get("/slow", timeout=120).text))
        slow.start()
        # wait until the slow callback is inside HttpGet: the blocking server got its request
        assert entered.wait(60)
        # while it blocks (holding no GIL), another Python callback answers
        assert server.get("/fast", timeout=30).text == "fast"
        release.set()
        slow.join(60)
        assert result.get("slow") == "released"
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
