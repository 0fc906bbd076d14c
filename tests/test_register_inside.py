"""``orthanc.Register*`` called from inside callbacks (issue 16): each either works or raises a
clear exception, and Orthanc keeps serving and stops on SIGTERM.  The policy per kind is in the
README, "Registering from inside a callback"."""

import json
import os
import subprocess
import threading
import time

import requests

from pythanc.testing import free_port, wait_until

from conftest import TESTDATA, SDK_FUNCTIONS, dcmtk

with open(os.path.join(TESTDATA, "manifest.json")) as _f:
    MANIFEST = json.load(_f)


def read(name):
    with open(os.path.join(TESTDATA, name), "rb") as f:
        return f.read()


def serving(server, timeout=10):
    """``GET /system`` answers within ``timeout`` seconds."""
    return server.get("/system", timeout=timeout).status_code == 200


def get(server, path, timeout=15):
    """``GET path``; a 503 (a pythanc route reached while a route is being added, see the README) is
    retried after a moment, as its Retry-After header says, for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        r = server.get(path, timeout=timeout)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        assert r.headers.get("Retry-After") == "1", r.headers
        time.sleep(0.01)


def stops(server):
    """Orthanc stops on SIGTERM (``stop`` raises if it has to kill it), with exit code 0."""
    return server.stop(timeout=30) == 0


# ---------------------------------------------------------------------------------------------
# The original report

REPRO = r'''
import orthanc

def Added(output, uri, **request):
    output.AnswerBuffer("added route", "text/plain")

def Add(output, uri, **request):
    orthanc.RegisterRestCallback("/added", Added)
    output.AnswerBuffer("registered", "text/plain")

orthanc.RegisterRestCallback("/add", Add)
'''


def test_register_rest_route_inside_rest_callback(orthanc_server, write_script):
    """RegisterRestCallback inside a REST callback hung the whole server: the callback never
    returned, every request waited (GET /system too), SIGTERM did not stop Orthanc."""
    server = orthanc_server(script=write_script(REPRO))
    try:
        r = server.get("/add", timeout=15)
    except requests.Timeout:
        raise AssertionError("the REST callback that registers a route did not return within 15 s")
    assert r.status_code == 200 and r.text == "registered"
    assert serving(server)
    wait_until(lambda: server.get("/added", timeout=10).status_code == 200, timeout=20,
               what="the route registered from a REST callback answers")
    assert server.get("/added", timeout=10).text == "added route"
    assert serving(server)
    assert stops(server)


# ---------------------------------------------------------------------------------------------
# Every Register* function, from inside every kind of callback that the test can drive

EVERYWHERE = r'''
import json, threading, traceback, orthanc

CONTEXTS = ["rest", "dicom_filter", "stored", "http_filter", "timer", "job", "find", "change"]
RESULTS = {}   # context -> {function name: "works" or "<exception type>: <message>"}
CALLS = {"stored": 0, "received": 0, "metrics": 0, "http_filter": 0, "change": 0}
LOCK = threading.Lock()


def count(what):
    with LOCK:
        CALLS[what] += 1


def answer(text):
    def callback(output, uri, **request):
        output.AnswerBuffer(text, "text/plain")
    return callback


def nothing(*args, **kwargs):
    return None


def late_received(dicom, origin):
    count("received")
    return orthanc.ReceivedInstanceAction.KEEP_AS_IS, None


def late_http_filter(uri, **request):
    count("http_filter")
    return True


class Dav:
    @staticmethod
    def is_existing_folder(path):
        return path == []
    @staticmethod
    def list_folder(path):
        return ([], [])
    retrieve_file = store_file = create_folder = delete_item = staticmethod(nothing)


# Plausible arguments for each Register* function of the module, in context `ctx` (number `i`).
CALL = {
    "RegisterRestCallback": lambda ctx, i: orthanc.RegisterRestCallback(
        "/late/rest/" + ctx, answer("late REST route of " + ctx)),
    "RegisterChunkedRestCallback": lambda ctx, i: orthanc.RegisterChunkedRestCallback(
        "/late/chunked/" + ctx, get=answer("late chunked route of " + ctx)),
    "RegisterOnChangeCallback": lambda ctx, i: orthanc.RegisterOnChangeCallback(lambda *change: count("change")),
    "RegisterOnStoredInstanceCallback": lambda ctx, i: orthanc.RegisterOnStoredInstanceCallback(
        lambda instance, instance_id: count("stored")),
    "RegisterIncomingHttpRequestFilter": lambda ctx, i: orthanc.RegisterIncomingHttpRequestFilter(late_http_filter),
    "RegisterReceivedInstanceCallback": lambda ctx, i: orthanc.RegisterReceivedInstanceCallback(late_received),
    "RegisterIncomingCStoreInstanceFilter": lambda ctx, i: orthanc.RegisterIncomingCStoreInstanceFilter(
        lambda instance: 0),
    "RegisterIncomingDicomInstanceFilter": lambda ctx, i: orthanc.RegisterIncomingDicomInstanceFilter(
        lambda instance: True),
    "RegisterFindCallback": lambda ctx, i: orthanc.RegisterFindCallback(nothing),
    "RegisterWorklistCallback": lambda ctx, i: orthanc.RegisterWorklistCallback(nothing),
    "RegisterMoveCallback": lambda ctx, i: orthanc.RegisterMoveCallback(nothing),
    "RegisterMoveCallback2": lambda ctx, i: orthanc.RegisterMoveCallback2(nothing, lambda d: 0, nothing, nothing),
    "RegisterFindCallback2": lambda ctx, i: orthanc.RegisterFindCallback2(nothing),
    "RegisterWorklistCallback2": lambda ctx, i: orthanc.RegisterWorklistCallback2(nothing),
    "RegisterMoveCallback3": lambda ctx, i: orthanc.RegisterMoveCallback3(nothing, lambda d: 0, nothing, nothing),
    "RegisterStorageCommitmentScpCallback2": lambda ctx, i: orthanc.RegisterStorageCommitmentScpCallback2(
        nothing, lambda sop_class, sop_instance, handler: 0),
    "RegisterHttpAuthentication": lambda ctx, i: orthanc.RegisterHttpAuthentication(
        lambda uri, **request: orthanc.HttpAuthenticationStatus.GRANTED),
    "RegisterAuditLogHandler": lambda ctx, i: orthanc.RegisterAuditLogHandler(nothing),
    "RegisterStorageArea": lambda ctx, i: orthanc.RegisterStorageArea(nothing, nothing, nothing),
    "RegisterStorageArea2": lambda ctx, i: orthanc.RegisterStorageArea2(nothing, nothing, None, nothing),
    "RegisterStorageArea3": lambda ctx, i: orthanc.RegisterStorageArea3(nothing, nothing, nothing),
    "RegisterRefreshMetricsCallback": lambda ctx, i: orthanc.RegisterRefreshMetricsCallback(
        lambda: count("metrics")),
    "RegisterStorageCommitmentScpCallback": lambda ctx, i: orthanc.RegisterStorageCommitmentScpCallback(
        nothing, lambda sop_class, sop_instance, handler: 0),
    "RegisterDecodeImageCallback": lambda ctx, i: orthanc.RegisterDecodeImageCallback(nothing),
    "RegisterTranscoderCallback": lambda ctx, i: orthanc.RegisterTranscoderCallback(nothing),
    "RegisterJobsUnserializer": lambda ctx, i: orthanc.RegisterJobsUnserializer(nothing),
    "RegisterWebDavCollection": lambda ctx, i: orthanc.RegisterWebDavCollection(
        "/late-dav-" + ctx, Dav.is_existing_folder, Dav.list_folder, Dav.retrieve_file, Dav.store_file,
        Dav.create_folder, Dav.delete_item),
    "RegisterErrorCode": lambda ctx, i: orthanc.RegisterErrorCode(1000 + i, 418, "late error code of " + ctx),
    "RegisterDictionaryTag": lambda ctx, i: orthanc.RegisterDictionaryTag(
        0x4321, 0x1000 + i, orthanc.ValueRepresentation.LO, "PythancLate%d" % i, 1, 1),
    "RegisterPrivateDictionaryTag": lambda ctx, i: orthanc.RegisterPrivateDictionaryTag(
        0x4323, 0x1010 + i, orthanc.ValueRepresentation.LO, "PythancPrivateLate%d" % i, 1, 1, "PYTHANC"),
}


def register_everything(ctx):
    """Call every Register* function of the module (enumerated now) and record what happens."""
    out = {}
    for name in sorted(n for n in dir(orthanc) if n.startswith("Register")):
        if name not in CALL:
            out[name] = "no arguments known for it"
            continue
        try:
            CALL[name](ctx, CONTEXTS.index(ctx))
            out[name] = "works"
        except Exception as e:
            out[name] = "%s: %s" % (type(e).__name__, e)
    with LOCK:
        RESULTS[ctx] = out
    return out


try:   # the same at import, for comparison (see AS_AT_IMPORT in the test)
    orthanc.RegisterErrorCode(999, 418, "error code registered at import")
    AT_IMPORT = {"RegisterErrorCode": "works"}
except Exception as e:
    AT_IMPORT = {"RegisterErrorCode": "%s: %s" % (type(e).__name__, e)}


def first_time(ctx):
    with LOCK:
        if ctx in RESULTS or ("started " + ctx) in CALLS:
            return False
        CALLS["started " + ctx] = 1
        return True


# -- the callbacks of each kind, registered while the script is imported -------------------------

def TryRest(output, uri, **request):
    output.AnswerBuffer(json.dumps(register_everything("rest")), "application/json")
orthanc.RegisterRestCallback("/try/rest", TryRest)


def TryTimer(output, uri, **request):
    threading.Timer(0.01, register_everything, ("timer",)).start()
    output.AnswerBuffer("started", "text/plain")
orthanc.RegisterRestCallback("/try/timer", TryTimer)


def TryJob(output, uri, **request):
    def step():
        register_everything("job")
        return orthanc.JobStepStatus.SUCCESS
    output.AnswerBuffer(orthanc.CreateJob("RegisterInside", step).SubmitJob(0), "text/plain")
orthanc.RegisterRestCallback("/try/job", TryJob)


def Results(output, uri, **request):
    with LOCK:
        output.AnswerBuffer(json.dumps({"results": RESULTS, "calls": CALLS, "import": AT_IMPORT}),
                            "application/json")
orthanc.RegisterRestCallback("/results", Results)


def OnHttpRequest(uri, **request):
    if uri == "/try/http-filter" and first_time("http_filter"):
        register_everything("http_filter")
    return True
orthanc.RegisterIncomingHttpRequestFilter(OnHttpRequest)


def OnDicomInstance(instance):
    if first_time("dicom_filter"):
        register_everything("dicom_filter")
    return True
orthanc.RegisterIncomingDicomInstanceFilter(OnDicomInstance)


def OnStored(instance, instance_id):
    if first_time("stored"):
        register_everything("stored")
orthanc.RegisterOnStoredInstanceCallback(OnStored)


def OnChange(change_type, level, resource_id):
    if change_type == orthanc.ChangeType.STABLE_STUDY and first_time("change"):
        register_everything("change")
orthanc.RegisterOnChangeCallback(OnChange)


def OnFind(answers, query, issuer_aet, called_aet):
    if first_time("find"):
        register_everything("find")
orthanc.RegisterFindCallback(OnFind)
'''

CONTEXTS = ["rest", "dicom_filter", "stored", "http_filter", "timer", "job", "find", "change"]

# Registered while the script was imported: later registrations of these kinds are Python only.
KINDS_AT_IMPORT = {"RegisterRestCallback", "RegisterIncomingHttpRequestFilter",
                   "RegisterIncomingDicomInstanceFilter", "RegisterOnStoredInstanceCallback",
                   "RegisterOnChangeCallback", "RegisterFindCallback"}
# Orthanc accepts their first registration at any time (under its locks, read at each use).
ANY_TIME = {"RegisterReceivedInstanceCallback", "RegisterIncomingCStoreInstanceFilter",
            "RegisterRefreshMetricsCallback", "RegisterDictionaryTag", "RegisterPrivateDictionaryTag",
            "RegisterChunkedRestCallback"}
# The same outcome as at import.  RegisterErrorCode raises OrthancException(<the code Orthanc
# assigned>, ...) there too, as with the official plugin: its C function returns the new code
# where the other functions of its form return an error code, and 0 (success) is never assigned.
AS_AT_IMPORT = {"RegisterErrorCode"}
# Their first registration is accepted only while the scripts load: then RuntimeError, with why.
FIRST_AT_START_ONLY = {
    "RegisterWorklistCallback": "its DICOM server takes a plugin's worklist handler only when it starts",
    "RegisterMoveCallback": "its DICOM server takes a plugin's C-MOVE handler only when it starts",
    "RegisterMoveCallback2": "its DICOM server takes a plugin's C-MOVE handler only when it starts",
    "RegisterDecodeImageCallback": "under the lock that it holds while it decodes or transcodes",
    "RegisterTranscoderCallback": "under the lock that it holds while it decodes or transcodes",
    "RegisterJobsUnserializer": "Orthanc calls jobs unserializers only when it starts",
}
# Each call needs Orthanc while it starts: always RuntimeError afterwards.
AT_START_ONLY = {
    "RegisterStorageArea": "Orthanc chooses its storage area when it starts",
    "RegisterStorageArea2": "Orthanc chooses its storage area when it starts",
    "RegisterStorageArea3": "Orthanc chooses its storage area when it starts",
    "RegisterWebDavCollection": "Orthanc mounts the WebDAV collections of plugins only when its HTTP server starts",
}
# The registrations of an SDK newer than the oldest supported (1.10): the module has them only where
# the installed header has their C function.
NEWER_SDK = {"RegisterStorageArea3": "OrthancPluginRegisterStorageArea3"}
ONCE = {"RegisterStorageCommitmentScpCallback": "RuntimeError: Can only register once for storage commitment SCP"}
# SDK 1.12.10+: the versions 2 of the DICOM handlers.  Orthanc takes one handler of each kind, of
# either version: after the version 1 (at import, or earlier in the same context: Register* are
# called in sorted order), RuntimeError naming both.
SINCE_1_12_10 = {"RegisterFindCallback2": "OrthancPluginRegisterFindCallback2",
                 "RegisterWorklistCallback2": "OrthancPluginRegisterWorklistCallback2",
                 "RegisterMoveCallback3": "OrthancPluginRegisterMoveCallback2",
                 "RegisterStorageCommitmentScpCallback2": "OrthancPluginRegisterStorageCommitmentScpCallback2"}
if all(c in SDK_FUNCTIONS for c in SINCE_1_12_10.values()):
    FIRST_AT_START_ONLY.update({
        "RegisterWorklistCallback2": "its DICOM server takes a plugin's worklist handler only when it starts",
        "RegisterMoveCallback3": "its DICOM server takes a plugin's C-MOVE handler only when it starts"})
    EXCLUDED = {
        "RegisterFindCallback2": "RuntimeError: orthanc.RegisterFindCallback2() cannot be used in an Orthanc run "
                                 "where orthanc.RegisterFindCallback() was called: ",
        "RegisterStorageCommitmentScpCallback2": "RuntimeError: orthanc.RegisterStorageCommitmentScpCallback2() "
                                                 "cannot be used in an Orthanc run where "
                                                 "orthanc.RegisterStorageCommitmentScpCallback() was called: "}
else:
    EXCLUDED = {}
# SDK 1.12.9+ (pythanc only): the first registration only while the scripts load.
SINCE_1_12_9 = {
    "RegisterHttpAuthentication": ("OrthancPluginRegisterHttpAuthentication",
                                   "Orthanc takes one authentication callback per process"),
    "RegisterAuditLogHandler": ("OrthancPluginRegisterAuditLogHandler",
                                "Orthanc keeps the audit log handlers in a list"),
}
FIRST_AT_START_ONLY.update({name: why for name, (c, why) in SINCE_1_12_9.items() if c in SDK_FUNCTIONS})


def expected(name):
    """The documented outcome of ``orthanc.<name>`` called from a callback, in EVERYWHERE."""
    if name in KINDS_AT_IMPORT or name in ANY_TIME:
        return "works"
    if name in EXCLUDED:
        return EXCLUDED[name]
    if name in FIRST_AT_START_ONLY:
        return ("RuntimeError: orthanc.%s() was called after the scripts were loaded (from a callback or a "
                "thread), and nothing of its kind was registered while they were loaded: Orthanc accepts the "
                "first one only then, because " % name)
    if name in AS_AT_IMPORT:
        return "OrthancException: ("
    if name in AT_START_ONLY:
        return ("RuntimeError: orthanc.%s() can be called only while the scripts are loaded (at import), "
                "not later from a callback or a thread: %s" % (name, AT_START_ONLY[name]))
    raise AssertionError("no documented outcome for orthanc.%s: classify it in this test and in the README"
                         % name)


def test_every_register_function_inside_every_callback(orthanc_server, write_script):
    findscu = dcmtk("findscu")
    config = {"StableAge": 1, "DicomModalities": {"FINDSCU": ["FINDSCU", "127.0.0.1", free_port()]}}
    server = orthanc_server(script=write_script(EVERYWHERE), config=config)

    def results():
        return get(server, "/results").json()["results"]

    def wait_for(ctx):
        return wait_until(lambda: results().get(ctx), timeout=30, what="the registrations in the %s context" % ctx)

    # a REST callback
    rest = get(server, "/try/rest")
    assert rest.status_code == 200, rest.text
    # an incoming DICOM instance filter and an on-stored-instance callback (a REST upload)
    assert server.post("/instances", data=read("ct-a1-1.dcm"), timeout=15).status_code == 200
    wait_for("dicom_filter")
    wait_for("stored")
    # an HTTP filter (the URI has no route: 404, but the filter ran)
    assert server.get("/try/http-filter", timeout=15).status_code == 404
    wait_for("http_filter")
    # a thread of the script (threading.Timer), a job step
    assert get(server, "/try/timer").text == "started"
    wait_for("timer")
    assert get(server, "/try/job").status_code == 200
    wait_for("job")
    # a C-FIND callback
    cp = subprocess.run([findscu, "-aet", "FINDSCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port),
                         "-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=X"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    wait_for("find")
    # an on-change callback (STABLE_STUDY of the upload above, after StableAge)
    wait_for("change")
    assert serving(server)

    found = results()
    assert sorted(found) == sorted(CONTEXTS)
    names = sorted(found["rest"])
    assert names == sorted(n for n in KINDS_AT_IMPORT | ANY_TIME | AS_AT_IMPORT | set(FIRST_AT_START_ONLY) |
                           set(AT_START_ONLY) | set(ONCE) | set(EXCLUDED)
                           if NEWER_SDK.get(n, "") in SDK_FUNCTIONS | {""})
    at_import = get(server, "/results").json()["import"]
    for name in AS_AT_IMPORT:
        assert at_import[name].startswith(expected(name)), at_import
    commitment = []
    for ctx in CONTEXTS:
        for name in names:
            got = found[ctx][name]
            if name in ONCE:
                commitment.append(got)
                assert got in ("works", ONCE[name]), (ctx, name, got)
                continue
            want = expected(name)
            if want == "works":
                assert got == "works", (ctx, name, got)
            else:
                assert got.startswith(want), (ctx, name, got)
                if name in FIRST_AT_START_ONLY:
                    assert FIRST_AT_START_ONLY[name] in got, (ctx, name, got)
                    assert got.endswith("Register it when the script is imported." if "Move" in name else
                                        "Register one when the script is imported; further ones then work at "
                                        "any time, from anywhere."), (ctx, name, got)
    # Orthanc accepts one storage commitment SCP: the first context that asked got it
    assert commitment.count("works") == 1, commitment

    # what was registered works: the routes answer ...
    for ctx in CONTEXTS:
        for kind in ("rest", "chunked"):
            uri = "/late/%s/%s" % (kind, ctx)
            wait_until(lambda: get(server, uri).status_code == 200, timeout=30, what="GET %s answers" % uri)
            assert get(server, uri).text == "late %s route of %s" % (
                "REST" if kind == "rest" else "chunked", ctx)
    # ... the callbacks are called
    assert server.post("/instances", data=read("ct-a1-2.dcm"), timeout=15).status_code == 200
    assert server.get("/tools/metrics-prometheus", timeout=15).status_code == 200
    calls = wait_until(lambda: (lambda c: c if all(c[k] >= len(CONTEXTS) for k in
                                                   ("stored", "received", "metrics", "http_filter")) else None)(
        get(server, "/results").json()["calls"]), timeout=30, what="the late callbacks are called")
    assert calls["change"] >= 1
    assert server.get("/instances/%s" % MANIFEST["ct-a1-2.dcm"]["instance"], timeout=15).status_code == 200
    assert serving(server)
    assert stops(server)


# ---------------------------------------------------------------------------------------------
# A kind that Orthanc accepts only while the plugin starts, with nothing registered then

NOTHING_AT_IMPORT = r'''
import json, orthanc

def Try(output, uri, **request):
    out = {}
    for name, call in (("RegisterOnChangeCallback", lambda: orthanc.RegisterOnChangeCallback(print)),
                       ("RegisterOnStoredInstanceCallback", lambda: orthanc.RegisterOnStoredInstanceCallback(print)),
                       ("RegisterFindCallback", lambda: orthanc.RegisterFindCallback(print)),
                       ("RegisterIncomingHttpRequestFilter",
                        lambda: orthanc.RegisterIncomingHttpRequestFilter(lambda uri, **kw: True))):
        try:
            call()
            out[name] = "works"
        except RuntimeError as e:
            out[name] = "RuntimeError: %s" % e
    output.AnswerBuffer(json.dumps(out), "application/json")
orthanc.RegisterRestCallback("/try", Try)
'''


def test_first_registration_of_unlocked_kind_after_start_raises(orthanc_server, write_script):
    """Orthanc 1.10 adds change and stored-instance callbacks to lists that it reads without a lock,
    and takes a C-FIND handler only when its DICOM server starts: registered first from a callback,
    they raise, and say why and what to do.  An HTTP filter (under Orthanc's lock) just works."""
    server = orthanc_server(script=write_script(NOTHING_AT_IMPORT))
    out = server.get("/try", timeout=15).json()
    assert out["RegisterIncomingHttpRequestFilter"] == "works"
    for name, why in (("RegisterOnChangeCallback", "Orthanc 1.10 adds a change callback to a list that it reads "
                       "without a lock while it delivers changes"),
                      ("RegisterOnStoredInstanceCallback", "Orthanc 1.10 adds a stored-instance callback to a "
                       "list that it reads without a lock while it stores instances"),
                      ("RegisterFindCallback", "its DICOM server takes a plugin's C-FIND handler only when it "
                       "starts")):
        assert out[name] == (
            "RuntimeError: orthanc.%s() was called after the scripts were loaded (from a callback or a thread), "
            "and nothing of its kind was registered while they were loaded: Orthanc accepts the first one only "
            "then, because %s. Register one when the script is imported; further ones then work at any time, "
            "from anywhere." % (name, why)), out[name]
    # the second call fails the same way (nothing half-registered)
    assert server.get("/try", timeout=15).json() == dict(out, RegisterIncomingHttpRequestFilter="works")
    assert serving(server)
    assert stops(server)


# ---------------------------------------------------------------------------------------------
# Routes added while REST callbacks that make nested REST calls keep arriving

UNDER_LOAD = r'''
import threading, time, orthanc

def Plain(output, uri, **request):
    output.AnswerBuffer("plain", "text/plain")
orthanc.RegisterRestCallback("/plain", Plain)

def Nested(output, uri, **request):
    # a nested call through the plugins takes Orthanc's route lock again: it must never meet a
    # route registration waiting for the lock that this request holds (the sleep keeps requests
    # running most of the time, before their nested call)
    time.sleep(0.002)
    output.AnswerBuffer(orthanc.RestApiGetAfterPlugins("/plain"), "text/plain")
orthanc.RegisterRestCallback("/nested", Nested)

def answer(n):
    return lambda output, uri, **request: output.AnswerBuffer("dynamic %d" % n, "text/plain")

def RegisterMany(output, uri, **request):
    def run():
        for n in range(20):
            orthanc.RegisterRestCallback("/dynamic/%d" % n, answer(n))
    threading.Thread(target=run).start()
    orthanc.RegisterRestCallback("/dynamic-from-callback", answer(-1))
    output.AnswerBuffer("ok", "text/plain")
orthanc.RegisterRestCallback("/register-many", RegisterMany)
'''


def test_routes_added_under_load_of_nested_calls(orthanc_server, write_script):
    """Routes registered (from a callback and from a thread) while clients keep calling a route
    whose callback makes a nested REST call: no hang; a request that comes exactly while a route is
    being added answers 503 (retry), every other one 200; every route eventually answers."""
    server = orthanc_server(script=write_script(UNDER_LOAD))
    statuses = []
    errors = []
    stop = threading.Event()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.get(server.url + "/nested", timeout=15)
                    statuses.append((r.status_code, r.text))
                except requests.RequestException as e:
                    errors.append(repr(e))
                    return

    clients = [threading.Thread(target=client) for _ in range(3)]
    for t in clients:
        t.start()
    try:
        wait_until(lambda: len(statuses) >= 50, timeout=30, what="the clients run")
        assert server.get("/register-many", timeout=15).text == "ok"
        deadline = time.monotonic() + 60
        for uri in ["/dynamic-from-callback"] + ["/dynamic/%d" % n for n in range(20)]:
            wait_until(lambda: server.get(uri, timeout=15).status_code == 200,
                       timeout=max(1.0, deadline - time.monotonic()), what="GET %s answers" % uri)
        assert serving(server)
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    assert not errors, errors[:3]
    assert all(not t.is_alive() for t in clients)
    assert statuses and all(s == (200, "plain") or s[0] == 503 for s in statuses), \
        [s for s in statuses if s != (200, "plain")][:5]
    assert server.get("/dynamic/7", timeout=10).text == "dynamic 7"
    assert stops(server)
