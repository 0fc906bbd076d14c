"""Worker processes: ``"Python": {"Workers": N}`` and ``worker=True`` (pythanc/_workers.py)."""

import os
import re
import signal
import threading
import time

import pytest

from conftest import pid_alive
from pythanc.testing import wait_until

COMPUTATION = re.compile(r"computation done in \d+\.\d{3} seconds\n")
CT_A1_1 = "ct-a1-1.dcm"




def concurrently(fn, n):
    """Run ``fn(i)`` on ``n`` threads; returns the results (or the exceptions), in order."""
    results = [None] * n

    def call(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # reported by the caller
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads)
    return results


# ---- the seed's /computation, offloaded ---------------------------------------------------------

WRAPPER_12 = '''\
import orthanc
SAMPLE = {sample!r}
with open(SAMPLE) as f:
    source = f.read()
source = source.replace("orthanc.RegisterRestCallback('/computation', OnRest)", "")
exec(compile(source, SAMPLE, "exec"), globals())

orthanc.RegisterRestCallback('/computation', OnRest, worker=True)
orthanc.RegisterRestCallback('/computation-here', OnRest)
'''


def test_seed_computation_offloaded_answers_concurrent_calls(orthanc_server, seed, tmp_path):
    sample = seed("12-multiprocessing-slow-computation.py")
    with open(sample) as f:
        assert "orthanc.RegisterRestCallback('/computation', OnRest)" in f.read()
    script = tmp_path / "wrapper12.py"
    script.write_text(WRAPPER_12.format(sample=sample))
    server = orthanc_server(script=str(script), config={"Python": {"Workers": 3}})

    t0 = time.monotonic()
    r = server.get("/computation", timeout=300)
    t1 = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert COMPUTATION.fullmatch(r.text), r.text
    assert r.headers["Content-Type"].startswith("text/plain")

    t0 = time.monotonic()
    results = concurrently(lambda i: server.get("/computation", timeout=300), 3)
    t3 = time.monotonic() - t0
    for r in results:
        assert not isinstance(r, Exception), repr(r)
        assert r.status_code == 200, r.text
        assert COMPUTATION.fullmatch(r.text), r.text
    # reported, never asserted (the machine may be busy)
    print("\n/computation with workers: t1=%.2fs t3=%.2fs speed-up 3*t1/t3=%.2f" % (t1, t3, 3 * t1 / t3))

    if os.environ.get("PYTHANC_MEASURE_IN_PROCESS"):
        t0 = time.monotonic()
        server.get("/computation-here", timeout=300)
        h1 = time.monotonic() - t0
        t0 = time.monotonic()
        concurrently(lambda i: server.get("/computation-here", timeout=300), 3)
        h3 = time.monotonic() - t0
        print("/computation in process: t1=%.2fs t3=%.2fs speed-up 3*t1/t3=%.2f" % (h1, h3, 3 * h1 / h3))
    assert server.get("/system").status_code == 200


# ---- the orthanc module in a worker ------------------------------------------------------------

API_SCRIPT = '''\
import os
from urllib.parse import unquote
import orthanc

def Fetch(output, uri, **request):
    # the same bytes whether computed here or in Orthanc's process
    answer = orthanc.RestApiGet(unquote(request["get"]["uri"]))
    output.AnswerBuffer(answer, "application/octet-stream")

def Info(output, uri, **request):
    import json
    try:
        orthanc.RestApiGet("/nope")
        error = None
    except orthanc.OrthancException as e:
        error = list(e.args)
    output.SetHttpHeader("X-Pid", str(os.getpid()))
    output.AnswerBuffer(json.dumps({
        "pid": os.getpid(),
        "worker": orthanc.IsWorkerProcess(),
        "stable_study": orthanc.ChangeType.STABLE_STUDY,
        "error": error,
        "method": request["method"],
        "groups": list(request["groups"]),
        "get": request.get("get"),
        "body_size": len(request.get("body", b"")),
        "counter": orthanc.IncrementSharedValue("calls"),
    }), "application/json")

def Echo(output, uri, **request):
    body = request["body"]
    output.AnswerBuffer(body[::-1], "application/octet-stream")

def Big(output, uri, **request):
    n = int(request["get"]["n"])
    output.AnswerBuffer(bytes(range(256)) * (n // 256), "application/octet-stream")

def NotAllowed(output, uri, **request):
    output.SendMethodNotAllowed("GET")

def Redirect(output, uri, **request):
    output.Redirect("/system")

def Fails(output, uri, **request):
    raise ValueError("expected failure in a worker")

def Shared(output, uri, **request):
    if request["method"] == "PUT":
        orthanc.SetSharedValue("text", request["body"].decode())
        output.AnswerBuffer("stored", "text/plain")
    else:
        output.AnswerBuffer(orthanc.GetSharedValue("text", "none"), "text/plain")

def SharedHere(output, uri, **request):
    output.AnswerBuffer(orthanc.GetSharedValue("text", "none"), "text/plain")

def FetchHere(output, uri, **request):
    output.AnswerBuffer(orthanc.RestApiGet(unquote(request["get"]["uri"])), "application/octet-stream")

orthanc.RegisterRestCallback("/w/fetch", Fetch, worker=True)
orthanc.RegisterRestCallback("/here/fetch", FetchHere)
orthanc.RegisterRestCallback("/w/info(/.*)?", Info, worker=True)
orthanc.RegisterRestCallback("/w/echo", Echo, worker=True)
orthanc.RegisterRestCallback("/w/big", Big, worker=True)
orthanc.RegisterRestCallback("/w/not-allowed", NotAllowed, worker=True)
orthanc.RegisterRestCallback("/w/redirect", Redirect, worker=True)
orthanc.RegisterRestCallback("/w/fails", Fails, worker=True)
orthanc.RegisterRestCallback("/w/shared", Shared, worker=True)
orthanc.RegisterRestCallback("/here/shared", SharedHere)
'''


@pytest.fixture
def api_server(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(API_SCRIPT, "api_script.py"),
                            config={"Python": {"Workers": 2}})
    server.upload(testdata(CT_A1_1))
    return server


def test_rest_api_from_a_worker_returns_the_same_bytes(api_server):
    server = api_server
    instance = server.get("/instances").json()[0]
    for uri in ("/system", "/instances/%s/file" % instance, "/instances/%s/tags" % instance, "/patients"):
        here = server.get("/here/fetch", params={"uri": uri})
        there = server.get("/w/fetch", params={"uri": uri})
        assert here.status_code == 200 and there.status_code == 200, (here.text, there.text)
        assert there.content == here.content
        assert len(there.content) > 0


def test_worker_request_arguments_enums_and_errors(api_server):
    server = api_server
    info = server.get("/w/info/abc", params={"a": "1"}).json()
    assert info["worker"] is True
    assert info["pid"] != server.process.pid
    assert info["stable_study"] == 9
    assert info["error"][0] == 17  # UNKNOWN_RESOURCE, with the same args as in Orthanc's process
    assert isinstance(info["error"][1], str)
    assert info["method"] == "GET" and info["groups"] == ["/abc"] and info["get"] == {"a": "1"}
    r = server.post("/w/info", data=b"x" * 100000)
    assert r.json()["method"] == "POST" and r.json()["body_size"] == 100000
    assert r.headers["X-Pid"] == str(r.json()["pid"])
    # the shared counter is the same for every worker
    counters = [server.get("/w/info").json()["counter"] for _ in range(4)]
    assert counters == sorted(counters) and len(set(counters)) == 4


def test_large_bodies_and_answers_cross(api_server):
    server = api_server
    body = os.urandom(20 * 1024 * 1024)
    r = server.post("/w/echo", data=body, timeout=120)
    assert r.status_code == 200
    assert r.content == body[::-1]
    for n in (0, 256, 64 * 1024, 5 * 1024 * 1024):
        r = server.get("/w/big", params={"n": n}, timeout=120)
        assert r.status_code == 200
        assert r.content == bytes(range(256)) * (n // 256)


def test_rest_output_methods_are_forwarded(api_server):
    server = api_server
    r = server.get("/w/not-allowed")
    assert r.status_code == 405
    r = server.get("/w/redirect", allow_redirects=False)
    assert r.status_code in (301, 302, 303, 307) and r.headers["Location"].endswith("/system")
    r = server.get("/w/fails")
    assert r.status_code == 500
    server.wait_for_log(r"expected failure in a worker")
    assert server.get("/system").status_code == 200


def test_shared_values_between_worker_and_orthanc(api_server):
    server = api_server
    assert server.get("/here/shared").text == "none"
    assert server.put("/w/shared", data=b"hello").text == "stored"
    assert server.get("/here/shared").text == "hello"
    assert all(server.get("/w/shared").text == "hello" for _ in range(4))


# ---- crashes, hangs, stop --------------------------------------------------------------------

CRASH_SCRIPT = '''\
import os
from urllib.parse import unquote
import threading
import time
import orthanc

def Pid(output, uri, **request):
    output.AnswerBuffer(str(os.getpid()), "text/plain")

def Exit(output, uri, **request):
    os._exit(1)

def Hang(output, uri, **request):
    orthanc.SetSharedValue("hanging", os.getpid())
    while True:
        time.sleep(0.1)

def Busy(output, uri, **request):
    orthanc.IncrementSharedValue("busy")
    deadline = time.monotonic() + float(request["get"].get("seconds", "5"))
    while time.monotonic() < deadline:
        pass
    output.AnswerBuffer("done", "text/plain")

def Count(output, uri, **request):
    output.AnswerBuffer(str(orthanc.GetSharedValue(request["get"]["key"], 0)), "text/plain")

orthanc.RegisterRestCallback("/pid", Pid, worker=True)
orthanc.RegisterRestCallback("/exit", Exit, worker=True)
orthanc.RegisterRestCallback("/hang", Hang, worker=True)
orthanc.RegisterRestCallback("/busy", Busy, worker=True)
orthanc.RegisterRestCallback("/count", Count)
'''


def test_killed_worker_gives_an_error_and_is_replaced(orthanc_server, write_script):
    server = orthanc_server(script=write_script(CRASH_SCRIPT, "crash_script.py"),
                            config={"Python": {"Workers": 1}})
    pid = int(server.get("/pid").text)
    assert pid_alive(pid)

    # the test kills the worker (by the PID it reported) while it holds a request
    result = {}
    t = threading.Thread(target=lambda: result.update(r=server.get("/hang", timeout=120)))
    t.start()
    wait_until(lambda: server.get("/count", params={"key": "hanging"}).text == str(pid))
    os.kill(pid, signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    assert result["r"].status_code == 500
    server.wait_for_log(r"worker process %d died" % pid)

    # the next request succeeds, on a new worker
    r = server.get("/pid", timeout=120)
    assert r.status_code == 200
    assert int(r.text) != pid

    # a callback that makes its own process exit
    pid2 = int(r.text)
    assert server.get("/exit", timeout=120).status_code == 500
    r = server.get("/pid", timeout=120)
    assert r.status_code == 200 and int(r.text) not in (pid, pid2)
    wait_until(lambda: not pid_alive(pid2), 30)
    assert server.get("/system").status_code == 200


def test_hung_worker_times_out_and_is_replaced(orthanc_server, write_script):
    server = orthanc_server(script=write_script(CRASH_SCRIPT, "crash_script.py"),
                            config={"Python": {"Workers": 1, "WorkerTimeout": 3}})
    pid = int(server.get("/pid").text)
    r = server.get("/hang", timeout=120)
    assert r.status_code == 500
    server.wait_for_log(r"did not finish the callback within 3 s")
    wait_until(lambda: not pid_alive(pid), 30)
    r = server.get("/pid", timeout=120)
    assert r.status_code == 200 and int(r.text) != pid


def test_orthanc_stops_cleanly_with_busy_workers(orthanc_server, write_script):
    server = orthanc_server(script=write_script(CRASH_SCRIPT, "crash_script.py"),
                            config={"Python": {"Workers": 2}})
    pids = {int(server.get("/pid").text) for _ in range(4)}
    results = {}

    def busy(i):
        try:
            results[i] = server.get("/busy", params={"seconds": "4"}, timeout=120).status_code
        except Exception as e:  # the connection may be cut when Orthanc stops
            results[i] = e

    threads = [threading.Thread(target=busy, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: server.get("/count", params={"key": "busy"}).text == "2")
    server.stop(timeout=60)
    assert not server.alive()
    for t in threads:
        t.join(120)
    # the workers stopped with Orthanc
    wait_until(lambda: not any(pid_alive(p) for p in pids), 30)


# ---- stored instances and changes, offloaded -------------------------------------------------

STORED_SCRIPT = '''\
import json
import os
from urllib.parse import unquote
import orthanc

def OnStored(instance, instanceId):
    tags = json.loads(instance.GetInstanceSimplifiedJson())
    data = instance.GetInstanceData()
    orthanc.SetSharedValue("stored-" + instanceId, {
        "pid": os.getpid(),
        "size": instance.GetInstanceSize(),
        "data_size": len(data),
        "magic": data[128:132].decode("ascii", "replace"),
        "patient": tags.get("PatientID"),
        "origin": instance.GetInstanceOrigin(),
    })

def OnChange(changeType, level, resourceId):
    if changeType == orthanc.ChangeType.NEW_INSTANCE:
        orthanc.SetSharedValue("changed-" + resourceId, {
            "pid": os.getpid(),
            "level": level,
            "tags": json.loads(orthanc.RestApiGet("/instances/%s/simplified-tags" % resourceId)),
        })

def Get(output, uri, **request):
    value = orthanc.GetSharedValue(request["get"]["key"])
    output.AnswerBuffer(json.dumps(value), "application/json")

orthanc.RegisterOnStoredInstanceCallback(OnStored, worker=True)
orthanc.RegisterOnChangeCallback(OnChange, worker=True)
orthanc.RegisterRestCallback("/get", Get)
'''


def test_stored_instance_and_change_callbacks_offloaded(orthanc_server, write_script, testdata):
    import pydicom
    path = testdata(CT_A1_1)
    server = orthanc_server(script=write_script(STORED_SCRIPT, "stored_script.py"),
                            config={"Python": {"Workers": 2}})
    iid = server.upload(path)["ID"]
    stored = wait_until(lambda: server.get("/get", params={"key": "stored-" + iid}).json())
    assert stored["pid"] != server.process.pid
    assert stored["size"] == stored["data_size"] == len(server.get("/instances/%s/file" % iid).content)
    assert stored["magic"] == "DICM"
    assert stored["patient"] == pydicom.dcmread(path).PatientID
    assert stored["origin"] == 3  # REST_API

    changed = wait_until(lambda: server.get("/get", params={"key": "changed-" + iid}).json())
    assert changed["pid"] != server.process.pid
    assert changed["level"] == 3  # ResourceType.INSTANCE
    assert changed["tags"]["PatientID"] == stored["patient"]


# ---- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("section,message", [
    ({"Workers": "four"}, 'The configuration option "Python.Workers" is not a non-negative integer'),
    ({"Workers": -1}, 'The configuration option "Python.Workers" is not a non-negative integer'),
    ({"WorkerTimeout": 0}, 'The configuration option "Python.WorkerTimeout" is not a positive number'),
])
def test_bad_worker_options_are_fatal(orthanc_server, write_script, section, message):
    server = orthanc_server(script=write_script("import orthanc\n", "plain.py"), config={"Python": section},
                            wait=False)
    assert server.wait_exit(60) != 0
    assert message in server.log()


# ---- multiprocessing in a script, with any start method ------------------------------------------

MP_SCRIPT = '''\
import math
import multiprocessing
import orthanc

CTX = multiprocessing.get_context({method!r})

def Square(x):
    # runs in a multiprocessing child, which imported this script (and so "orthanc")
    return (x * x, orthanc.ChangeType.STABLE_STUDY)

# children that import this script must not start a pool of their own
POOL = CTX.Pool(2) if multiprocessing.parent_process() is None else None

def OnRest(output, uri, **request):
    output.AnswerBuffer(repr(POOL.map(math.sqrt, [4, 9])) + repr(POOL.map(Square, [3])), "text/plain")

orthanc.RegisterRestCallback("/mp", OnRest)
'''


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_script_multiprocessing_with_explicit_start_method(orthanc_server, write_script, method):
    server = orthanc_server(script=write_script(MP_SCRIPT.format(method=method), "mp_%s.py" % method),
                            config={"Python": {"Workers": 1}})
    r = server.get("/mp", timeout=60)
    assert r.status_code == 200, r.text
    assert r.text == "[2.0, 3.0][(9, 9)]"
    server.stop(timeout=60)


DEFAULT_METHOD_SCRIPT = '''\
import json
import multiprocessing
import orthanc

# nothing chose a method for the script: pythanc only changed the default
CHOSEN_BEFORE = multiprocessing.get_start_method(allow_none=True)
{choose}

def OnRest(output, uri, **request):
    output.AnswerBuffer(json.dumps([CHOSEN_BEFORE, multiprocessing.get_start_method()]), "application/json")

orthanc.RegisterRestCallback("/start-method", OnRest)
'''


@pytest.mark.parametrize("choose,expected", [
    ("", "fork"),
    ("multiprocessing.set_start_method('spawn')", "spawn"),
])
def test_multiprocessing_default_start_method_stays_fork(orthanc_server, write_script, choose, expected):
    """Python 3.14 made "forkserver" the default; scripts written for the official plugin assume
    "fork" (seed samples 13 and 14 create a Pool at import): pythanc keeps "fork" as the default
    on every Python, without choosing it for the script, which can still choose another method."""
    script = write_script(DEFAULT_METHOD_SCRIPT.format(choose=choose), "start_method_%s.py" % expected)
    server = orthanc_server(script=script)
    assert server.get("/start-method").json() == [None, expected]


# ---- a REST callback's answer, in a worker and in Orthanc's process -----------------------------

ANSWER_SCRIPT = r'''
import orthanc

def AnswerThenRaise(output, uri, **request):
    output.AnswerBuffer("answered " + request["groups"][0], "text/plain")
    raise ValueError("raised after the answer " + request["groups"][0])

def AnswerTwice(output, uri, **request):
    output.AnswerBuffer(b"first", "text/plain")
    output.AnswerBuffer(b"second", "text/plain")   # refused by Orthanc, which logs it; no exception
    orthanc.LogWarning("after two answers " + request["groups"][0])

def AnswerThenCall(output, uri, **request):
    output.AnswerBuffer(b"then", "text/plain")
    orthanc.LogWarning("after the answer %s: %s" % (request["groups"][0], orthanc.RestApiGet("/system")[:1]))

def BadMime(output, uri, **request):
    try:
        output.AnswerBuffer(b"x", 42)
    except TypeError as e:
        output.AnswerBuffer(("TypeError: %s" % e).replace("42", "<42>"), "text/plain")

for where, worker in (("here", False), ("worker", True)):
    orthanc.RegisterRestCallback("/answer-raise/(%s)" % where, AnswerThenRaise, worker=worker)
    orthanc.RegisterRestCallback("/answer-twice/(%s)" % where, AnswerTwice, worker=worker)
    orthanc.RegisterRestCallback("/answer-call/(%s)" % where, AnswerThenCall, worker=worker)
    orthanc.RegisterRestCallback("/bad-mime/(%s)" % where, BadMime, worker=worker)
'''


def test_rest_answers_in_a_worker_as_in_orthancs_process(orthanc_server, write_script):
    """The same callbacks in Orthanc's process and in a worker: what the client and the log see.
    An answer followed by an exception, a second answer (Orthanc refuses it and logs that, the
    SDK function returns nothing: no exception, as with the official plugin), a forwarded call
    after the answer, and a wrong argument to AnswerBuffer."""
    server = orthanc_server(script=write_script(ANSWER_SCRIPT), config={"Python": {"Workers": 1}})
    seen = {}
    for n, where in enumerate(("here", "worker")):
        r = server.get("/answer-raise/" + where)
        server.wait_for_log(r"raised after the answer " + where)
        seen[where, "raise"] = (r.status_code, r.text)
        r = server.get("/answer-twice/" + where)
        server.wait_for_log(r"after two answers " + where)
        server.wait_for_log(r"plugin service 2000: Bad sequence of calls", count=n + 1)
        seen[where, "twice"] = (r.status_code, r.text)
        r = server.get("/answer-call/" + where)
        server.wait_for_log(r"after the answer %s: b'\{'" % where)
        seen[where, "call"] = (r.status_code, r.text)
        r = server.get("/bad-mime/" + where)
        seen[where, "mime"] = (r.status_code, r.text)
    assert seen["here", "raise"] == (200, "answered here")
    assert seen["worker", "raise"] == (200, "answered worker")
    assert seen["here", "twice"] == seen["worker", "twice"] == (200, "first")
    assert seen["here", "call"] == seen["worker", "call"] == (200, "then")
    assert seen["here", "mime"][0] == 200 and seen["here", "mime"][1].startswith("TypeError: ")
    assert seen["worker", "mime"] == seen["here", "mime"]
    assert server.get("/system").status_code == 200
