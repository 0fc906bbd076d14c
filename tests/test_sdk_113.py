# SPDX-License-Identifier: GPL-3.0-or-later
"""The official plugin 7.1's API of SDK 1.12/1.13 on a real Orthanc: storage area 3 with custom data,
queues and key-value stores (across a restart, and from a worker process), SetStableStatus,
streamed answers, jobs made with OrthancPluginCreateJob2, the options AllowThreads and
DisplayMemoryUsage.  Each test is skipped where the installed SDK header lacks its C functions;
the parity tests run the same script under the official plugin of this Debian release."""

import json
import os
import socket
import time

import pytest

from pythanc.testing import wait_until

from conftest import TESTDATA, needs_sdk, official_plugin


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Storage area 3: custom data

STORAGE3 = r'''
import json, orthanc
files = {}
calls = []

def Create(uuid, content_type, compression_type, content, instance):
    none = getattr(orthanc.CompressionType, "NONE", 0)   # SDK 1.12.8+: "no compression" has a value
    calls.append(["create", uuid, content_type, compression_type == none, len(content),
                  None if instance is None else instance.GetInstanceSize()])
    files[uuid] = content
    if content_type == 1:
        return (0, ("custom:" + uuid).encode())
    return (0, None)                       # an attachment without custom data

def Read(uuid, content_type, range_start, size, custom_data):
    calls.append(["read", uuid, content_type, range_start, size, custom_data.decode()])
    return (0, files[uuid][range_start:range_start + size])

def Remove(uuid, content_type, custom_data):
    calls.append(["remove", uuid, content_type, custom_data.decode()])
    del files[uuid]
    return 0

orthanc.RegisterStorageArea3(Create, Read, Remove)
for again in (lambda: orthanc.RegisterStorageArea3(Create, Read, Remove),
              lambda: orthanc.RegisterStorageArea(lambda *a: None, lambda *a: b"", lambda *a: None)):
    try:
        again()
    except RuntimeError as e:
        print("second storage area: %s" % e)

def Stats(output, uri, **request):
    output.AnswerBuffer(json.dumps({"calls": calls, "files": len(files)}), "application/json")
orthanc.RegisterRestCallback("/storage-stats", Stats)

def CustomData(output, uri, **request):
    uuid = request["groups"][0]
    if request["method"] == "POST":
        orthanc.SetAttachmentCustomData(uuid, request["body"])
    output.AnswerBuffer(orthanc.GetAttachmentCustomData(uuid), "application/octet-stream")
orthanc.RegisterRestCallback("/custom-data/(.*)", CustomData)
'''


@needs_sdk("OrthancPluginRegisterStorageArea3", "OrthancPluginGetAttachmentCustomData")
def test_storage_area3_custom_data(orthanc_server, write_script):
    server = orthanc_server(script=write_script(STORAGE3), config={"MaximumStorageCacheSize": 0})
    server.wait_for_log(r"second storage area: Cannot register twice a custom storage area", count=2)
    assert server.get("/system").json()["StorageAreaPlugin"]
    original = read(os.path.join(TESTDATA, "ct-a1-1.dcm"))
    iid = server.upload(original)["ID"]
    calls = server.get("/storage-stats").json()["calls"]
    create = [c for c in calls if c[0] == "create" and c[2] == 1][0]
    uuid = create[1]
    # content type 1 (DICOM), no compression, the instance being stored given as a DicomInstance
    assert create[2:] == [1, True, len(original), len(original)]
    # the custom data returned by create is Orthanc's, for the official API and for read/remove
    assert server.get("/custom-data/" + uuid).content == b"custom:" + uuid.encode()
    assert server.get("/instances/%s/file" % iid).content == original
    reads = [c for c in server.get("/storage-stats").json()["calls"] if c[0] == "read" and c[1] == uuid]
    assert reads and all(c[5] == "custom:" + uuid for c in reads)
    assert [0, len(original)] in [c[3:5] for c in reads]            # the whole file
    # a range read: only the bytes asked for (Orthanc reads ranges of the file, e.g. for a Range header)
    r = server.get("/instances/%s/file" % iid, headers={"Range": "bytes=128-131"})
    if r.status_code == 206:
        assert r.content == original[128:132]
    # an attachment that is not DICOM: no DicomInstance, no custom data
    before = len(server.get("/storage-stats").json()["calls"])
    assert server.put("/instances/%s/attachments/1025" % iid, data=b"user data").status_code == 200
    other = [c for c in server.get("/storage-stats").json()["calls"][before:] if c[0] == "create"][0]
    assert other[3:] == [True, 9, None]
    assert server.get("/instances/%s/attachments/1025/data" % iid).content == b"user data"
    assert server.get("/custom-data/" + other[1]).content == b""
    # SetAttachmentCustomData: the next read receives the new custom data
    assert server.post("/custom-data/" + uuid, data=b"changed").content == b"changed"
    assert server.get("/instances/%s/file" % iid).content == original
    assert ["read", uuid, 1, 0, len(original), "changed"] in server.get("/storage-stats").json()["calls"]
    # delete: remove receives each file's custom data
    assert server.delete("/instances/" + iid).status_code == 200
    stats = server.get("/storage-stats").json()
    assert ["remove", uuid, 1, "changed"] in stats["calls"]
    assert ["remove", other[1], other[2], ""] in stats["calls"]
    assert stats["files"] == 0


STORAGE3_ERRORS = r'''
import orthanc

def Create(uuid, content_type, compression_type, content, instance):
    return "not a tuple"

orthanc.RegisterStorageArea3(Create, lambda *a: (0, b""), lambda *a: 0)
'''


@needs_sdk("OrthancPluginRegisterStorageArea3")
def test_storage_area3_bad_result_fails_the_store(orthanc_server, write_script):
    server = orthanc_server(script=write_script(STORAGE3_ERRORS))
    r = server.post("/instances", data=read(os.path.join(TESTDATA, "ct-a1-1.dcm")))
    assert r.status_code >= 400
    server.wait_for_log(r"The Python storage area create callback has not returned a tuple")
    assert server.get("/system").status_code == 200


# ---------------------------------------------------------------------------------------------
# Queues and key-value stores (Orthanc's database)

QUEUES = r'''
import json, orthanc

def run(ops):
    out = []
    for op in ops:
        name, args = op[0], op[1:]
        if name == "enqueue":
            orthanc.EnqueueValue(args[0], args[1].encode()); out.append(None)
        elif name == "dequeue":
            v = orthanc.DequeueValue(args[0], args[1]); out.append(None if v is None else [type(v).__name__, v.decode()])
        elif name == "reserve":
            v, i = orthanc.ReserveQueueValue(args[0], args[1], args[2])
            out.append(None if v is None else [v.decode(), type(i).__name__])
            if v is not None:
                orthanc.AcknowledgeQueueValue(args[0], i)
        elif name == "size":
            out.append(orthanc.GetQueueSize(args[0]))
        elif name == "store":
            orthanc.StoreKeyValue(args[0], args[1], args[2].encode()); out.append(None)
        elif name == "get":
            v = orthanc.GetKeyValue(args[0], args[1]); out.append(None if v is None else [type(v).__name__, v.decode()])
        elif name == "delete":
            orthanc.DeleteKeyValue(args[0], args[1]); out.append(None)
        elif name == "iterate":
            it = orthanc.CreateKeysValuesIterator(args[0])
            items = []
            while it.Next():
                items.append([it.GetKey(), it.GetValue().decode()])
            out.append(items)
        elif name == "origins":
            out.append([orthanc.QueueOrigin.FRONT, orthanc.QueueOrigin.BACK])
    return out

def Ops(output, uri, **request):
    output.AnswerBuffer(json.dumps(run(json.loads(request["body"]))), "application/json")
orthanc.RegisterRestCallback("/ops", Ops)

if hasattr(orthanc, "IsWorkerProcess"):   # pythanc: the same from a worker process
    orthanc.RegisterRestCallback("/worker-ops", Ops, worker=True)

kept = []
def KeepIterator(output, uri, **request):
    if not kept:
        kept.append(orthanc.CreateKeysValuesIterator("s1"))
        output.AnswerBuffer("kept", "text/plain")
        return
    try:
        kept[0].Next()
        output.AnswerBuffer("still valid", "text/plain")
    except Exception as e:
        output.AnswerBuffer("%s: %s" % (type(e).__name__, e), "text/plain")
if hasattr(orthanc, "IsWorkerProcess"):
    orthanc.RegisterRestCallback("/worker-keep", KeepIterator, worker=True)
'''

WRITE = [["origins"],
         ["enqueue", "q1", "a"], ["enqueue", "q1", "b"], ["enqueue", "q1", "c"], ["enqueue", "q1", "d"],
         ["size", "q1"], ["dequeue", "q1", 1], ["size", "q1"],
         ["store", "s1", "k2", "two"], ["store", "s1", "k1", "one"], ["store", "s1", "k3", "three"],
         ["store", "s1", "k3", "three, again"], ["delete", "s1", "k2"], ["get", "s1", "k1"],
         ["get", "s1", "missing"], ["dequeue", "empty-queue", 0], ["size", "empty-queue"]]
READ = [["size", "q1"], ["dequeue", "q1", 0], ["reserve", "q1", 0, 30], ["size", "q1"], ["get", "s1", "k3"],
        ["get", "s1", "k2"], ["iterate", "s1"], ["iterate", "no-such-store"], ["dequeue", "q1", 0],
        ["dequeue", "q1", 0], ["reserve", "q1", 1, 30]]
EXPECTED_WRITE = [[0, 1], None, None, None, None, 4, ["bytes", "d"], 3, None, None, None, None, None,
                  ["bytes", "one"], None, None, 0]
EXPECTED_READ = [3, ["bytes", "a"], ["b", "int"], 1, ["bytes", "three, again"], None,
                 [["k1", "one"], ["k3", "three, again"]], [], ["bytes", "c"], None, None]


def _queues_across_restart(orthanc_server, script, route, plugin=None):
    kw = {"plugin": plugin} if plugin else {}
    server = orthanc_server(script=script, **kw)
    written = server.post(route, data=json.dumps(WRITE))
    assert written.status_code == 200, server.log()[-3000:]
    server.stop()
    server.start()   # a new Orthanc process on the same storage folder and database
    read_back = server.post(route, data=json.dumps(READ))
    assert read_back.status_code == 200, server.log()[-3000:]
    return written.json(), read_back.json()


@needs_sdk("OrthancPluginEnqueueValue", "OrthancPluginReserveQueueValue", "OrthancPluginCreateKeysValuesIterator")
@pytest.mark.parametrize("route", ["/ops", "/worker-ops"])
def test_queues_and_key_value_stores_survive_a_restart(orthanc_server, write_script, route):
    written, read_back = _queues_across_restart(orthanc_server, write_script(QUEUES), route)
    assert written == EXPECTED_WRITE
    assert read_back == EXPECTED_READ


@needs_sdk("OrthancPluginEnqueueValue", "OrthancPluginReserveQueueValue", "OrthancPluginCreateKeysValuesIterator")
def test_queues_and_key_value_stores_parity_with_the_official_plugin(orthanc_server, write_script):
    plugin = official_plugin()
    script = write_script(QUEUES)
    assert _queues_across_restart(orthanc_server, script, "/ops", plugin=plugin) == \
        _queues_across_restart(orthanc_server, script, "/ops")


@needs_sdk("OrthancPluginCreateKeysValuesIterator")
def test_worker_iterator_is_invalid_after_its_callback(orthanc_server, write_script):
    server = orthanc_server(script=write_script(QUEUES), config={"Python": {"Workers": 1}})
    assert server.get("/worker-keep").text == "kept"
    assert server.get("/worker-keep").text.startswith("OrthancException: ")
    assert "no longer valid" in server.get("/worker-keep").text


# ---------------------------------------------------------------------------------------------
# SetStableStatus

STABLE = r'''
import json, orthanc
def Stable(output, uri, **request):
    study, status = request["groups"]
    try:
        r = orthanc.SetStableStatus(study, int(status))
    except Exception as e:
        r = "%s" % type(e).__name__
    output.AnswerBuffer(json.dumps(r), "application/json")
orthanc.RegisterRestCallback("/stable/(.*)/([01])", Stable)

def Change(change_type, level, resource):
    if change_type == orthanc.ChangeType.STABLE_STUDY:
        print("stable study change %s" % resource)
orthanc.RegisterOnChangeCallback(Change)
'''


def _stable_status_results(orthanc_server, script, plugin=None):
    kw = {"plugin": plugin} if plugin else {}
    server = orthanc_server(script=script, config={"StableAge": 3600}, **kw)
    study = server.upload(read(os.path.join(TESTDATA, "ct-a1-1.dcm")))["ParentStudy"]
    seen = [server.get("/studies/" + study).json()["IsStable"]]
    results = []
    for status in (0, 0, 1, 1, 0):
        results.append(server.get("/stable/%s/%d" % (study, status)).json())
        seen.append(server.get("/studies/" + study).json()["IsStable"])
    server.wait_for_log(r"stable study change " + study)
    results.append(server.get("/stable/no-such-study/0").json())
    return results, seen


@needs_sdk("OrthancPluginSetStableStatus")
def test_set_stable_status(orthanc_server, write_script):
    results, seen = _stable_status_results(orthanc_server, write_script(STABLE))
    assert seen == [False, True, True, False, False, True]
    assert results[:5] == [[0, 1], [0, 0], [0, 1], [0, 0], [0, 1]]   # (0, 1 if the status changed)
    assert results[5] in ([0, 0], "OrthancException")   # an unknown resource: Orthanc 1.13 changes nothing


@needs_sdk("OrthancPluginSetStableStatus")
def test_set_stable_status_parity_with_the_official_plugin(orthanc_server, write_script):
    plugin = official_plugin()
    script = write_script(STABLE)
    official, official_seen = _stable_status_results(orthanc_server, script, plugin=plugin)
    ours, ours_seen = _stable_status_results(orthanc_server, script)
    assert (ours, ours_seen) == (official, official_seen)


# ---------------------------------------------------------------------------------------------
# Streamed answers

STREAM = r'''
import threading, orthanc
go = threading.Event()

def Stream(output, uri, **request):
    go.clear()
    output.StartStreamAnswer("text/plain")
    output.SendStreamChunk(b"first chunk;")
    released = go.wait(120)          # the client has the first chunk (bounded)
    output.SendStreamChunk(b"second chunk (%s);" % (b"released" if released else b"timed out"))
    output.SendStreamChunk(b"last")
orthanc.RegisterRestCallback("/stream", Stream)

def Go(output, uri, **request):
    go.set()
    output.AnswerBuffer("ok", "text/plain")
orthanc.RegisterRestCallback("/go", Go)
'''


def _stream(orthanc_server, script, plugin=None):
    """GET /stream with a raw socket (Orthanc sends a stream answer as it comes, until it closes the
    connection): the bytes of the body received before the route is released, all of the body,
    the head of the answer."""
    kw = {"plugin": plugin} if plugin else {}
    server = orthanc_server(script=script, **kw)
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    try:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n"
                  b"Connection: close\r\n\r\n")
        received = b""
        s.settimeout(1)
        deadline = time.monotonic() + 60
        while b"\r\n\r\n" not in received or not received.split(b"\r\n\r\n", 1)[1]:
            assert time.monotonic() < deadline, "no first chunk within 60 s: %r" % received
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            assert data, "connection closed: %r" % received
            received += data
        head, first = received.split(b"\r\n\r\n", 1)
        released = server.get("/go").text      # the route sends its next chunks only now
        s.settimeout(60)
        while True:
            data = s.recv(65536)
            if not data:
                break
            received += data
    finally:
        s.close()
    status, *headers = head.decode("latin-1").split("\r\n")
    headers = dict(h.split(": ", 1) for h in headers)
    return first, received.split(b"\r\n\r\n", 1)[1], status, headers.get("Content-Type"), released


@needs_sdk("OrthancPluginStartStreamAnswer", "OrthancPluginSendStreamChunk")
def test_streamed_answer_chunk_by_chunk(orthanc_server, write_script):
    first, body, status, content_type, released = _stream(orthanc_server, write_script(STREAM))
    # the client had the first chunk while the callback was still waiting to send the next ones
    assert first == b"first chunk;"
    assert body == b"first chunk;second chunk (released);last"
    assert status == "HTTP/1.1 200 OK" and content_type.startswith("text/plain") and released == "ok"


@needs_sdk("OrthancPluginStartStreamAnswer", "OrthancPluginSendStreamChunk")
def test_streamed_answer_parity_with_the_official_plugin(orthanc_server, write_script):
    plugin = official_plugin()
    script = write_script(STREAM)
    official = _stream(orthanc_server, script, plugin=plugin)
    assert _stream(orthanc_server, script) == official


# ---------------------------------------------------------------------------------------------
# Jobs through OrthancPluginCreateJob2

JOB2 = r'''
import json, orthanc
import pythanc.callbacks.jobs as pythanc_jobs

def Start(output, uri, **request):
    state = {"i": 0}
    def step():
        state["i"] += 1
        return orthanc.JobStepStatus.SUCCESS if state["i"] >= 3 else orthanc.JobStepStatus.CONTINUE
    job = orthanc.CreateJob("PyJob2", step, progress=lambda: state["i"] / 3.0,
                            content=lambda: {"steps": state["i"], "text": "\u00e9t\u00e9"})
    output.AnswerBuffer(json.dumps({"ID": job.SubmitJob(0), "CreateJob2": pythanc_jobs._CREATE_JOB2}),
                        "application/json")
orthanc.RegisterRestCallback("/start-job", Start)
'''


@needs_sdk("OrthancPluginCreateJob2")
def test_create_job_uses_create_job2(orthanc_server, write_script):
    server = orthanc_server(script=write_script(JOB2))
    started = server.post("/start-job", data="{}").json()
    assert started["CreateJob2"] is True
    job = wait_until(lambda: (lambda j: j if j["State"] in ("Success", "Failure") else None)(
        server.get("/jobs/" + started["ID"]).json()), what="job done")
    assert job["State"] == "Success" and job["Type"] == "PyJob2"
    assert job["Content"] == {"steps": 3, "text": "\u00e9t\u00e9"}
    assert job["Progress"] == 100
    # Orthanc warns about each job made by the deprecated OrthancPluginCreateJob
    assert "deprecated OrthancPluginCreateJob" not in server.log()


# ---------------------------------------------------------------------------------------------
# The official plugin's options AllowThreads and DisplayMemoryUsage

OPTIONS = r'''
import orthanc
data = [bytes(1024) for _ in range(2048)]    # 2 MB that Python's allocator holds
'''


def test_allow_threads_and_display_memory_usage(orthanc_server, write_script):
    server = orthanc_server(script=write_script(OPTIONS), verbose=True,
                            config={"Python": {"AllowThreads": True, "DisplayMemoryUsage": True}})
    server.wait_for_log(r'the option "Python.AllowThreads" changes nothing')
    server.wait_for_log(r"Python memory usage: \d+\.\d{3}MB", count=2, timeout=60)
    sizes = [float(x) for x in __import__("re").findall(r"Python memory usage: (\d+\.\d{3})MB", server.log())]
    assert max(sizes) >= 2.0          # the script's allocations are traced
    assert server.get("/system").status_code == 200
    server.stop()
    assert server.returncode == 0


def test_allow_threads_false_and_no_memory_display(orthanc_server, write_script):
    server = orthanc_server(script=write_script(OPTIONS), verbose=True,
                            config={"Python": {"AllowThreads": False, "DisplayMemoryUsage": False}})
    server.wait_for_log(r'the option "Python.AllowThreads" changes nothing')
    assert "Python memory usage" not in server.log()


@pytest.mark.parametrize("option", ["AllowThreads", "DisplayMemoryUsage"])
def test_official_options_must_be_booleans(orthanc_server, write_script, option):
    server = orthanc_server(script=write_script(OPTIONS), config={"Python": {option: "yes"}}, wait=False)
    wait_until(lambda: server.process.poll() is not None, what="Orthanc exits", timeout=60)
    assert 'The configuration option "Python.%s" is not a Boolean as expected' % option in server.log()
