"""The SDK's other callbacks against a real Orthanc, driven through the real protocols: HTTP
filters, received-instance and C-STORE filters, C-FIND/worklist/C-MOVE SCP handlers (dcmtk), a
Python storage area, jobs, metrics, image decoding, transcoding, chunked REST, WebDAV, storage
commitment.  Each test also checks that an exception in the callback leaves Orthanc serving."""

import json
import os
import subprocess


from pythanc.testing import free_port, wait_until

from conftest import TESTDATA, GET_VALUES_DECODED, dcmtk

with open(os.path.join(TESTDATA, "manifest.json")) as _f:
    MANIFEST = json.load(_f)


def run(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def assert_serving(server):
    assert server.get("/system").status_code == 200


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# HTTP filter

HTTP_FILTER = r'''
import json, orthanc
seen = []

def Filter(uri, **kw):
    seen.append(dict(kw, uri=uri))
    h = kw["headers"]
    if h.get("x-boom"):
        raise RuntimeError("deliberate failure in the filter")
    if h.get("x-nonbool"):
        return 1
    return h.get("x-deny") != "yes"

orthanc.RegisterIncomingHttpRequestFilter(Filter)
orthanc.RegisterIncomingHttpRequestFilter(lambda uri, **kw: uri != "/blocked-by-second")

def Seen(output, uri, **request):
    output.AnswerBuffer(json.dumps(seen[-2]), "application/json")   # the request before this one
orthanc.RegisterRestCallback("/seen", Seen)
orthanc.RegisterRestCallback("/py", lambda output, uri, **r: output.AnswerBuffer("ok", "text/plain"))
'''


def test_http_filter(orthanc_server, write_script):
    server = orthanc_server(script=write_script(HTTP_FILTER))
    deny = {"X-Deny": "yes"}
    # denied on core routes and plugin routes alike
    assert server.get("/system", headers=deny).status_code == 403
    assert server.get("/py", headers=deny).status_code == 403
    assert server.post("/tools/find", data="{}", headers=deny).status_code == 403
    assert server.get("/py").text == "ok"
    assert server.get("/blocked-by-second").status_code == 403
    # the arguments
    assert server.get("/py?a=1&b=x%20y", headers={"X-Custom": "Value"}).status_code == 200
    seen = server.get("/seen").json()
    assert seen["uri"] == "/py" and seen["method"] == 1 and seen["ip"] == "127.0.0.1"
    assert seen["headers"]["x-custom"] == "Value"
    assert seen["get"] == {"a": "1", "b": "x y" if GET_VALUES_DECODED else "x%20y"}
    assert server.post("/py", data=b"body").status_code == 200
    seen = server.get("/seen").json()
    assert seen["method"] == 2 and "get" not in seen
    # errors: 500, logged, Orthanc still serving
    assert server.get("/py", headers={"X-Boom": "1"}).status_code == 500
    server.wait_for_log(r"Error in the Python incoming-http-request filter, traceback:")
    server.wait_for_log(r"deliberate failure in the filter")
    assert server.get("/py", headers={"X-Nonbool": "1"}).status_code == 500
    server.wait_for_log(r"The Python incoming-http-request filter has not returned a Boolean")
    assert_serving(server)


# ---------------------------------------------------------------------------------------------
# Received instances, C-STORE filter, DICOM instance filter

RECEIVED = r'''
import orthanc

def Received(dicom, origin):
    print("received origin=%d size=%d" % (origin, len(dicom)))
    if b"003-MODIFY" in dicom:
        return orthanc.ReceivedInstanceAction.MODIFY, dicom.replace(b"fox^fiona", b"fox^felix")
    if b"001-DISCARD" in dicom:
        return orthanc.ReceivedInstanceAction.DISCARD, None
    if b"002-KEEP" in dicom:
        return "not a tuple"
    if b"COMPAT-B" in dicom:
        raise RuntimeError("deliberate failure in the received-instance callback")
    return orthanc.ReceivedInstanceAction.KEEP_AS_IS, None

def Second(dicom, origin):
    # chained: sees what the first callback produced
    if b"fox^felix" in dicom:
        return orthanc.ReceivedInstanceAction.MODIFY, dicom.replace(b"fox^felix", b"fox^fritz")
    return orthanc.ReceivedInstanceAction.KEEP_AS_IS, None

orthanc.RegisterReceivedInstanceCallback(Received)
orthanc.RegisterReceivedInstanceCallback(Second)
'''


def test_received_instance_modify_discard(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(RECEIVED))
    rx3 = MANIFEST["rx-3.dcm"]["instance"]
    server.post("/instances", data=read(testdata("rx-3.dcm")))
    tags = server.get("/instances/%s/simplified-tags" % rx3).json()
    assert tags["PatientName"] == "fox^fritz"
    server.wait_for_log(r"received origin=3 size=%d" % MANIFEST["rx-3.dcm"]["size"])
    # through C-STORE too (origin 2)
    server.delete("/instances/%s" % rx3)
    cp = run([dcmtk("storescu"), "-aet", "STORESCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port),
              testdata("rx-3.dcm")])
    assert cp.returncode == 0, cp.stderr
    server.wait_for_log(r"received origin=2")
    assert server.get("/instances/%s/simplified-tags" % rx3).json()["PatientName"] == "fox^fritz"
    # DISCARD: nothing stored
    server.post("/instances", data=read(testdata("rx-1.dcm")))
    assert server.get("/instances/%s" % MANIFEST["rx-1.dcm"]["instance"]).status_code == 404
    # wrong result, exception: kept as is, logged
    assert server.post("/instances", data=read(testdata("rx-2.dcm"))).status_code == 200
    server.wait_for_log(r"The Python received-instance callback has not returned a tuple as expected")
    assert server.get("/instances/%s" % MANIFEST["rx-2.dcm"]["instance"]).status_code == 200
    assert server.post("/instances", data=read(testdata("mr-b1-1.dcm"))).status_code == 200
    server.wait_for_log(r"deliberate failure in the received-instance callback")
    assert server.get("/instances/%s" % MANIFEST["mr-b1-1.dcm"]["instance"]).status_code == 200
    assert_serving(server)


CSTORE_FILTER = r'''
import json, orthanc

def Filter(instance):
    tags = json.loads(instance.GetInstanceSimplifiedJson())
    print("C-STORE filter: %s from %s" % (tags["PatientID"], instance.GetInstanceRemoteAet()))
    if tags["PatientID"] == "001-DISCARD":
        return 0xA700
    if tags["PatientID"] == "003-MODIFY":
        raise RuntimeError("deliberate failure in the C-STORE filter")
    if tags["PatientID"] == "COMPAT-B":
        return "not an int"
    return 0

orthanc.RegisterIncomingCStoreInstanceFilter(Filter)

def DicomFilter(instance):
    tags = json.loads(instance.GetInstanceSimplifiedJson())
    if tags["PatientID"] == "COMPAT-C":
        raise RuntimeError("deliberate failure in the DICOM instance filter")
    return tags["PatientID"] != "COMPAT-A"

orthanc.RegisterIncomingDicomInstanceFilter(DicomFilter)
'''


def test_cstore_filter_and_dicom_instance_filter(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(CSTORE_FILTER))
    storescu = dcmtk("storescu")

    def store(name):
        return run([storescu, "-v", "-aet", "STORESCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port),
                    testdata(name)])

    cp = store("rx-1.dcm")
    assert "Refused: OutOfResources" in cp.stdout + cp.stderr
    server.wait_for_log(r"C-STORE filter: 001-DISCARD from STORESCU")
    assert server.get("/instances/%s" % MANIFEST["rx-1.dcm"]["instance"]).status_code == 404
    cp = store("rx-2.dcm")
    assert cp.returncode == 0 and "Refused" not in cp.stdout + cp.stderr
    assert server.get("/instances/%s" % MANIFEST["rx-2.dcm"]["instance"]).status_code == 200
    # errors: the SCU gets a failure, the instance is not stored
    cp = store("rx-3.dcm")   # as with the official plugin, an error gives the SCU 0xA700
    assert "Received Store Response (Refused: OutOfResources)" in cp.stdout + cp.stderr
    server.wait_for_log(r"deliberate failure in the C-STORE filter")
    assert server.get("/instances/%s" % MANIFEST["rx-3.dcm"]["instance"]).status_code == 404
    cp = store("mr-b1-1.dcm")
    assert "Received Store Response (Refused: OutOfResources)" in cp.stdout + cp.stderr
    server.wait_for_log(r"The Python incoming C-STORE filter has not returned an integer")
    assert server.get("/instances/%s" % MANIFEST["mr-b1-1.dcm"]["instance"]).status_code == 404
    # the DICOM instance filter applies to REST uploads too
    r = server.post("/instances", data=read(testdata("ct-a1-1.dcm")))
    assert r.status_code == 200 and r.json()["Status"] == "FilteredOut"
    assert server.get("/instances/%s" % MANIFEST["ct-a1-1.dcm"]["instance"]).status_code == 404
    assert server.post("/instances", data=read(testdata("ct-c1-1.dcm"))).status_code == 500
    server.wait_for_log(r"deliberate failure in the DICOM instance filter")
    assert server.get("/instances/%s" % MANIFEST["ct-c1-1.dcm"]["instance"]).status_code == 404
    assert_serving(server)


# ---------------------------------------------------------------------------------------------
# C-FIND, worklists, C-MOVE

def modalities(**aets):
    """``DicomModalities`` for the SCUs/SCPs of a test (AET -> port)."""
    return {"DicomModalities": {aet: [aet, "127.0.0.1", port] for aet, port in aets.items()}}


FIND = r'''
import json, orthanc

def OnFind(answers, query, issuer_aet, called_aet):
    q = {query.GetFindQueryTagName(i): query.GetFindQueryValue(i) for i in range(query.GetFindQuerySize())}
    print("C-FIND from %s to %s: %s" % (issuer_aet, called_aet, json.dumps(q, sort_keys=True)))
    if q.get("PatientID") == "BOOM":
        raise RuntimeError("deliberate failure in the C-FIND callback")
    for i in range(2):
        answers.FindAddAnswer(orthanc.CreateDicom(json.dumps({
            "PatientID": "PY-%d" % i, "PatientName": "PYTHON^ANSWER%d" % i, "QueryRetrieveLevel": "PATIENT",
            "SpecificCharacterSet": "ISO_IR 192"}), None, orthanc.CreateDicomFlags.NONE))

orthanc.RegisterFindCallback(OnFind)

def OnWorklist(answers, query, issuer_aet, called_aet):
    q = query.WorklistGetDicomQuery()
    print("worklist from %s, query of %d bytes" % (issuer_aet, len(q)))
    if b"BOOM" in q:
        raise RuntimeError("deliberate failure in the worklist callback")
    item = orthanc.CreateDicom(json.dumps({"PatientID": "WL-1", "PatientName": "WORK^LIST",
                                           "AccessionNumber": "ACC-42", "SpecificCharacterSet": "ISO_IR 192"}),
                               None, orthanc.CreateDicomFlags.NONE)
    print("worklist match: %d" % query.WorklistIsMatch(item))
    answers.WorklistAddAnswer(query, item)

orthanc.RegisterWorklistCallback(OnWorklist)
'''


def test_cfind_and_worklist_scp(orthanc_server, write_script):
    server = orthanc_server(script=write_script(FIND), config=modalities(FINDSCU=free_port()))
    findscu = dcmtk("findscu")
    base = [findscu, "-v", "-aet", "FINDSCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port)]
    cp = run(base + ["-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=PY*", "-k", "PatientName"])
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out
    assert "PYTHON^ANSWER0" in out and "PYTHON^ANSWER1" in out
    server.wait_for_log(r'C-FIND from FINDSCU to ORTHANC: \{"PatientID": "PY\*", "PatientName": "", '
                        r'"QueryRetrieveLevel": "PATIENT"\}')
    cp = run(base + ["-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=BOOM"])
    assert "Failed: UnableToProcess" in cp.stdout + cp.stderr
    server.wait_for_log(r"Error in the Python C-FIND SCP callback, traceback:")
    assert_serving(server)
    # worklist
    cp = run(base + ["-W", "-k", "PatientName", "-k", "AccessionNumber"])
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out
    assert "WORK^LIST" in out and "ACC-42" in out
    server.wait_for_log(r"worklist from FINDSCU, query of \d+ bytes")
    server.wait_for_log(r"worklist match: 1")
    cp = run(base + ["-W", "-k", "PatientName=BOOM"])
    assert "Failed: UnableToProcess" in cp.stdout + cp.stderr
    server.wait_for_log(r"Error in the Python C-FIND SCP for worklist callback, traceback:")
    assert_serving(server)


MOVE = r'''
import json, orthanc

def OnMove(**request):
    print("C-MOVE " + json.dumps(request, sort_keys=True))
    if request["PatientID"] == "BOOM":
        raise RuntimeError("deliberate failure in the C-MOVE callback")
    found = json.loads(orthanc.RestApiPost("/tools/lookup", request["StudyInstanceUID"]))
    orthanc.RestApiPost("/modalities/%s/store" % request["TargetAET"], json.dumps([found[0]["ID"]]))

orthanc.RegisterMoveCallback(OnMove)
'''


class StoreScp:
    """dcmtk's storescp, started (and stopped, by PID) by the test."""

    def __init__(self, folder, aet="STORESCP"):
        self.port = free_port()
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.process = subprocess.Popen([dcmtk("storescp"), "-aet", aet, "-od", folder, str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def files(self):
        return sorted(os.listdir(self.folder))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def test_cmove_scp_sends_to_storescp(orthanc_server, write_script, testdata, tmp_path):
    scp = StoreScp(str(tmp_path / "received"))
    try:
        server = orthanc_server(script=write_script(MOVE), config=modalities(STORESCP=scp.port, MOVESCU=free_port()))
        for i in (1, 2):
            server.upload(testdata("ct-a1-%d.dcm" % i))
        study_uid = MANIFEST["ct-a1-1.dcm"]["StudyInstanceUID"]
        movescu = dcmtk("movescu")
        base = [movescu, "-v", "-aet", "MOVESCU", "-aec", "ORTHANC", "-aem", "STORESCP", "-S",
                "127.0.0.1", str(server.dicom_port)]
        cp = run(base + ["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + study_uid])
        assert cp.returncode == 0, cp.stdout + cp.stderr
        wait_until(lambda: len(scp.files()) == 2, what="2 files received by storescp")
        line = server.wait_for_log(r"C-MOVE (\{.*\})")[0]
        request = json.loads(line)
        assert request == {"AccessionNumber": "", "Level": "STUDY", "OriginatorAET": "MOVESCU",
                           "OriginatorID": request["OriginatorID"], "PatientID": "", "SOPInstanceUID": "",
                           "SeriesInstanceUID": "", "SourceAET": "ORTHANC", "StudyInstanceUID": study_uid,
                           "TargetAET": "STORESCP"}
        assert isinstance(request["OriginatorID"], int)
        # an exception: a failed sub-operation
        cp = run(base + ["-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=BOOM", "-k",
                         "StudyInstanceUID=" + study_uid])
        out = cp.stdout + cp.stderr
        assert "Received Final Move Response (Warning: SubOperationsCompleteOneOrMoreFailures)" in out, out
        server.wait_for_log(r"deliberate failure in the C-MOVE callback")
        assert_serving(server)
    finally:
        scp.stop()


# ---------------------------------------------------------------------------------------------
# Storage area

STORAGE = r'''
import json, orthanc
files = {}
calls = []
fail = set()

def Create(uuid, content_type, data):
    calls.append(["create", uuid, content_type, len(data)])
    if "create" in fail:
        raise RuntimeError("deliberate failure in the storage create callback")
    files[(uuid, content_type)] = data

def Read(uuid, content_type):
    calls.append(["read", uuid, content_type])
    if "read" in fail:
        raise RuntimeError("deliberate failure in the storage read callback")
    if "read-type" in fail:
        return "not bytes"
    return files[(uuid, content_type)]

def Remove(uuid, content_type):
    calls.append(["remove", uuid, content_type])
    if "remove" in fail:
        raise RuntimeError("deliberate failure in the storage remove callback")
    del files[(uuid, content_type)]

orthanc.RegisterStorageArea(Create, Read, Remove)
try:
    orthanc.RegisterStorageArea(Create, Read, Remove)
except RuntimeError as e:
    print("second storage area: %s" % e)

def Stats(output, uri, **request):
    output.AnswerBuffer(json.dumps({"calls": calls, "files": len(files)}), "application/json")
orthanc.RegisterRestCallback("/storage-stats", Stats)

def Fail(output, uri, **request):
    fail.clear()
    fail.update(json.loads(request["body"]))
    output.AnswerBuffer("ok", "text/plain")
orthanc.RegisterRestCallback("/storage-fail", Fail)
'''


def test_storage_area_in_python(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(STORAGE), config={"MaximumStorageCacheSize": 0})
    server.wait_for_log(r"second storage area: Cannot register twice a custom storage area")
    assert server.get("/system").json()["StorageAreaPlugin"]
    original = read(testdata("ct-a1-1.dcm"))
    iid = server.upload(original)["ID"]
    stats = server.get("/storage-stats").json()
    creates = [c for c in stats["calls"] if c[0] == "create"]
    assert ["create", creates[0][1], 1, len(original)] in creates   # content type 1: DICOM
    uuid = creates[0][1]
    assert server.get("/instances/%s/file" % iid).content == original
    assert ["read", uuid, 1] in server.get("/storage-stats").json()["calls"]
    # nothing of it went to Orthanc's own storage folder (only the index is there)
    assert not any(len(n) == 2 and os.path.isdir(os.path.join(server.storage, n)) for n in os.listdir(server.storage))
    # errors
    server.post("/storage-fail", data=json.dumps(["read"]))
    assert server.get("/instances/%s/file" % iid).status_code == 500
    server.wait_for_log(r"deliberate failure in the storage read callback")
    server.post("/storage-fail", data=json.dumps(["read-type"]))
    assert server.get("/instances/%s/file" % iid).status_code == 500
    server.wait_for_log(r"The Python storage area read callback has not returned bytes as expected")
    server.post("/storage-fail", data=json.dumps(["create"]))
    assert server.post("/instances", data=read(testdata("ct-a1-2.dcm"))).status_code == 500
    server.wait_for_log(r"deliberate failure in the storage create callback")
    assert_serving(server)
    server.post("/storage-fail", data=json.dumps([]))
    # delete
    assert server.delete("/instances/%s" % iid).status_code == 200
    stats = server.get("/storage-stats").json()
    assert ["remove", uuid, 1] in stats["calls"] and stats["files"] == 0
    # an exception in remove is logged; the DELETE still succeeds
    iid = server.upload(original)["ID"]
    server.post("/storage-fail", data=json.dumps(["remove"]))
    assert server.delete("/instances/%s" % iid).status_code == 200
    server.wait_for_log(r"deliberate failure in the storage remove callback")
    assert_serving(server)


# ---------------------------------------------------------------------------------------------
# Jobs, metrics

JOBS = r'''
import gc, json, orthanc

def make(kind, steps):
    state = {"i": 0}
    def step():
        if kind == "boom":
            raise RuntimeError("deliberate failure in the job step")
        if kind == "bad":
            return "not a status"
        state["i"] += 1
        return orthanc.JobStepStatus.SUCCESS if state["i"] >= steps else orthanc.JobStepStatus.CONTINUE
    return orthanc.CreateJob("PyJob", step, progress=lambda: state["i"] / steps,
                             content=lambda: {"steps": state["i"], "kind": kind},
                             stop=lambda reason: print("job %s stopped, reason %d" % (kind, reason)))

def Start(output, uri, **request):
    body = json.loads(request["body"])
    job = make(body["kind"], body["steps"])
    job_id = job.SubmitJob(0)
    try:
        job.SubmitJob(0)
    except orthanc.OrthancException as e:
        print("second submit refused: %s" % e.args[0])
    output.AnswerBuffer(json.dumps({"ID": job_id}), "application/json")
orthanc.RegisterRestCallback("/start-job", Start)

def Unsubmitted(output, uri, **request):
    make("ok", 1)   # never submitted: freed with the Python object
    gc.collect()
    output.AnswerBuffer("ok", "text/plain")
orthanc.RegisterRestCallback("/unsubmitted-job", Unsubmitted)

def Refresh():
    orthanc.SetMetricsValue("py_custom_metric", 42.5, orthanc.MetricsType.DEFAULT)
orthanc.RegisterRefreshMetricsCallback(Refresh)
orthanc.RegisterRefreshMetricsCallback(lambda: 1 / 0)
'''


def wait_job(server, job_id, states=("Success", "Failure")):
    return wait_until(lambda: (lambda j: j if j["State"] in states else None)(server.get("/jobs/" + job_id).json()),
                      what="job %s done" % job_id)


def test_python_job_and_metrics(orthanc_server, write_script):
    server = orthanc_server(script=write_script(JOBS))
    job_id = server.post("/start-job", data=json.dumps({"kind": "ok", "steps": 3})).json()["ID"]
    assert job_id in server.get("/jobs").json()
    job = wait_job(server, job_id)
    assert job["State"] == "Success", job
    assert job["Type"] == "PyJob" and job["Progress"] == 100
    assert job["Content"] == {"steps": 3, "kind": "ok"}
    server.wait_for_log(r"second submit refused: 6")  # BadSequenceOfCalls: the job belongs to Orthanc
    server.wait_for_log(r"job ok stopped, reason 1")
    # failures
    job = wait_job(server, server.post("/start-job", data=json.dumps({"kind": "boom", "steps": 1})).json()["ID"])
    assert job["State"] == "Failure"
    server.wait_for_log(r"Error in the Python job step callback, traceback:")
    job = wait_job(server, server.post("/start-job", data=json.dumps({"kind": "bad", "steps": 1})).json()["ID"])
    assert job["State"] == "Failure"
    server.wait_for_log(r"The Python job step callback \(job type PyJob\) has not returned an orthanc.JobStepStatus")
    assert server.get("/unsubmitted-job").text == "ok"
    assert_serving(server)
    # metrics
    text = server.get("/tools/metrics-prometheus").text
    assert "py_custom_metric 42.5" in text
    server.wait_for_log(r"Error in the Python refresh-metrics callback, traceback:")
    assert_serving(server)


# ---------------------------------------------------------------------------------------------
# Image decoding, transcoding

DECODE = r'''
import orthanc

def Decode(dicom, frame):
    print("decoder called for frame %d" % frame)
    if b"COMPAT-B" in dicom:
        image = orthanc.CreateImage(orthanc.PixelFormat.GRAYSCALE8, 7, 5)
        return image
    if b"COMPAT-C" in dicom:
        raise RuntimeError("deliberate failure in the image decoder")
    if b"001-DISCARD" in dicom:
        return "not an image"
    return None

orthanc.RegisterDecodeImageCallback(Decode)

def Transcode(buffer, allowed, allow_new_uid):
    print("transcoder called: %s %s" % (",".join(allowed), allow_new_uid))
    if b"fox^fiona" in buffer:
        return buffer.replace(b"fox^fiona", b"fox^tcode")
    if b"COMPAT-C" in buffer:
        raise RuntimeError("deliberate failure in the transcoder")
    return None

orthanc.RegisterTranscoderCallback(Transcode)
'''


def png_size(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_decode_image_and_transcoder(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(DECODE))
    b = server.upload(testdata("mr-b1-1.dcm"))["ID"]
    r = server.get("/instances/%s/frames/0/preview" % b)
    assert r.status_code == 200 and png_size(r.content) == (7, 5)   # decoded by Python
    server.wait_for_log(r"decoder called for frame 0")
    # errors and None: Orthanc's own decoder takes over (64x64)
    c = server.upload(testdata("ct-c1-1.dcm"))["ID"]
    assert png_size(server.get("/instances/%s/frames/0/preview" % c).content) == (64, 64)
    server.wait_for_log(r"deliberate failure in the image decoder")
    rx1 = server.upload(testdata("rx-1.dcm"))["ID"]
    assert png_size(server.get("/instances/%s/frames/0/preview" % rx1).content) == (32, 32)
    server.wait_for_log(r"must be orthanc.Image, not str")
    a = server.upload(testdata("ct-a1-1.dcm"))["ID"]
    assert png_size(server.get("/instances/%s/frames/0/preview" % a).content) == (64, 64)
    assert_serving(server)
    # transcoding
    rx3 = server.upload(testdata("rx-3.dcm"))["ID"]
    r = server.post("/instances/%s/modify" % rx3, data=json.dumps({"Transcode": "1.2.840.10008.1.2", "Force": True}))
    assert r.status_code == 200, r.text
    assert b"fox^tcode" in r.content
    server.wait_for_log(r"transcoder called: 1.2.840.10008.1.2 (True|False)")
    r = server.post("/instances/%s/modify" % c, data=json.dumps({"Transcode": "1.2.840.10008.1.2", "Force": True}))
    assert r.status_code == 200, r.text   # Orthanc's own transcoder did it
    server.wait_for_log(r"deliberate failure in the transcoder")
    assert_serving(server)


# ---------------------------------------------------------------------------------------------
# Chunked REST, WebDAV

CHUNKED = r'''
import hashlib, json, orthanc

class Reader:
    def __init__(self, uri, request):
        self.uri, self.request = uri, request
        self.chunks, self.sha = 0, hashlib.sha256()
        self.size = 0
    def add_chunk(self, chunk):
        if chunk.startswith(b"BOOM"):
            raise RuntimeError("deliberate failure in add_chunk")
        self.chunks += 1
        self.size += len(chunk)
        self.sha.update(chunk)
    def execute(self, output):
        output.AnswerBuffer(json.dumps({"uri": self.uri, "method": self.request["method"],
                                        "groups": self.request["groups"], "size": self.size,
                                        "sha256": self.sha.hexdigest()}), "application/json")
    def finalize(self):
        print("reader finalized after %d bytes" % self.size)

def Get(output, uri, **request):
    output.AnswerBuffer(json.dumps({"get": request.get("get"), "method": request["method"]}), "application/json")

orthanc.RegisterChunkedRestCallback("/chunked/(.*)", get=Get, post=lambda uri, **r: Reader(uri, r),
                                    delete=lambda output, uri, **r: output.AnswerBuffer("deleted", "text/plain"))
'''


def test_chunked_rest_callback(orthanc_server, write_script):
    import hashlib
    server = orthanc_server(script=write_script(CHUNKED))
    parts = [b"a" * 1000, b"b" * 70000, b"c" * 5]

    def gen(items):
        for p in items:
            yield p

    r = server.post("/chunked/up", data=gen(parts))   # Transfer-Encoding: chunked
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {"uri": "/chunked/up", "method": "POST", "groups": ["up"], "size": 71005,
                    "sha256": hashlib.sha256(b"".join(parts)).hexdigest()}
    server.wait_for_log(r"reader finalized after 71005 bytes")
    r = server.post("/chunked/plain", data=b"xyz")   # a body with Content-Length also goes through the reader
    assert r.json()["size"] == 3
    assert server.get("/chunked/x?k=v").json() == {"get": {"k": "v"}, "method": "GET"}
    assert server.delete("/chunked/x").text == "deleted"
    assert server.put("/chunked/x", data=b"1").status_code in (404, 405)
    assert server.post("/chunked/x", data=gen([b"BOOM"])).status_code == 500
    server.wait_for_log(r"deliberate failure in add_chunk")
    assert_serving(server)


WEBDAV = r'''
import orthanc
tree = {"hello.txt": b"Hello WebDAV", "sub": {}}

def node(path):
    n = tree
    for p in path:
        if not isinstance(n, dict) or p not in n:
            return None
        n = n[p]
    return n

def IsFolder(path):
    if path == ["boom"]:
        raise RuntimeError("deliberate failure in is_existing_folder")
    return isinstance(node(path), dict)

def List(path):
    n = node(path)
    if not isinstance(n, dict):
        return None
    return ([k for k, v in n.items() if isinstance(v, dict)],
            [(k, len(v), "text/plain", None) for k, v in n.items() if not isinstance(v, dict)])

def Retrieve(path):
    n = node(path)
    if not isinstance(n, bytes):
        return None
    return n, "text/plain", "20240102T030405"

def Store(path, data):
    parent = node(path[:-1])
    if path[0] == "readonly" or not isinstance(parent, dict):
        return False
    parent[path[-1]] = data
    print("stored %s (%d bytes)" % ("/".join(path), len(data)))
    return True

def CreateFolder(path):
    node(path[:-1])[path[-1]] = {}
    return True

def Delete(path):
    del node(path[:-1])[path[-1]]
    return True

orthanc.RegisterWebDavCollection("/pydav", IsFolder, List, Retrieve, Store, CreateFolder, Delete)
'''


def test_webdav_collection(orthanc_server, write_script):
    server = orthanc_server(script=write_script(WEBDAV))
    r = server.request("PROPFIND", "/pydav/", headers={"Depth": "1"})
    assert r.status_code == 207, r.text
    assert "hello.txt" in r.text and "sub" in r.text
    r = server.get("/pydav/hello.txt")
    assert r.status_code == 200 and r.content == b"Hello WebDAV"
    assert server.put("/pydav/sub/new.txt", data=b"12345").status_code in (200, 201, 204)
    server.wait_for_log(r"stored sub/new.txt \(5 bytes\)")
    assert server.get("/pydav/sub/new.txt").content == b"12345"
    assert server.request("MKCOL", "/pydav/folder").status_code in (200, 201)
    assert "folder" in server.request("PROPFIND", "/pydav/", headers={"Depth": "1"}).text
    assert server.delete("/pydav/sub/new.txt").status_code in (200, 204)
    assert server.get("/pydav/sub/new.txt").status_code == 404
    assert server.put("/pydav/readonly/x.txt", data=b"1").status_code == 403   # store_file returned False
    assert server.request("PROPFIND", "/pydav/boom", headers={"Depth": "1"}).status_code >= 400
    server.wait_for_log(r"deliberate failure in is_existing_folder")
    assert_serving(server)


# ---------------------------------------------------------------------------------------------
# C-MOVE with drivers, storage commitment, jobs after a restart, /tools/reset

MOVE2 = r'''
import json, orthanc

class Driver:
    def __init__(self, request):
        self.request = request
        study = json.loads(orthanc.RestApiPost("/tools/lookup", request["StudyInstanceUID"]))[0]["ID"]
        self.instances = [i["ID"] for i in json.loads(orthanc.RestApiGet("/studies/%s/instances" % study))]
        self.done = 0

def Create(**request):
    if request["PatientID"] == "BOOM-CREATE":
        raise RuntimeError("deliberate failure in create")
    return Driver(request)

def Size(driver):
    if driver.request["PatientID"] == "BOOM-SIZE":
        return "not an int"
    return len(driver.instances)

def Apply(driver):
    orthanc.RestApiPost("/modalities/%s/store" % driver.request["TargetAET"],
                        json.dumps([driver.instances[driver.done]]))
    driver.done += 1

def Free(driver):
    print("driver freed after %d sub-operations" % driver.done)

orthanc.RegisterMoveCallback2(Create, Size, Apply, Free)
try:
    orthanc.RegisterMoveCallback(lambda **kw: None)
except RuntimeError as e:
    print("second C-MOVE handler: %s" % e)
'''


def test_cmove_scp_with_drivers(orthanc_server, write_script, testdata, tmp_path):
    scp = StoreScp(str(tmp_path / "received"))
    try:
        server = orthanc_server(script=write_script(MOVE2), config=modalities(STORESCP=scp.port, MOVESCU=free_port()))
        server.wait_for_log(r"second C-MOVE handler: Can only register one C-MOVE SCP handler")
        for i in (1, 2, 3):
            server.upload(testdata("ct-a1-%d.dcm" % i))
        study_uid = MANIFEST["ct-a1-1.dcm"]["StudyInstanceUID"]
        base = [dcmtk("movescu"), "-v", "-aet", "MOVESCU", "-aec", "ORTHANC", "-aem", "STORESCP", "-S",
                "127.0.0.1", str(server.dicom_port), "-k", "QueryRetrieveLevel=STUDY",
                "-k", "StudyInstanceUID=" + study_uid]
        cp = run(base)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "Received Final Move Response (Success)" in cp.stdout + cp.stderr
        wait_until(lambda: len(scp.files()) == 3, what="3 files received by storescp")
        server.wait_for_log(r"driver freed after 3 sub-operations")
        cp = run(base + ["-k", "PatientID=BOOM-SIZE"])
        assert "Received Final Move Response (Success)" not in cp.stdout + cp.stderr
        server.wait_for_log(r"The Python C-MOVE get_move_size callback has not returned an int")
        cp = run(base + ["-k", "PatientID=BOOM-CREATE"])
        assert "Received Final Move Response (Success)" not in cp.stdout + cp.stderr
        server.wait_for_log(r"deliberate failure in create")
        assert_serving(server)
    finally:
        scp.stop()


COMMITMENT = r'''
import orthanc
R = orthanc.StorageCommitmentFailureReason

def Scp(job_id, transaction_uid, sop_classes, sop_instances, remote_aet, called_aet):
    print("commitment %s from %s to %s: %s" % (transaction_uid, remote_aet, called_aet, ",".join(sop_instances)))
    return {"known": set(sop_instances[:1])}

def Lookup(sop_class, sop_instance, handler):
    if sop_instance.endswith(".4"):
        raise RuntimeError("deliberate failure in the storage commitment lookup")
    return R.SUCCESS if sop_instance in handler["known"] else R.NO_SUCH_OBJECT_INSTANCE

orthanc.RegisterStorageCommitmentScpCallback(Scp, Lookup)
'''


def test_storage_commitment_scp(orthanc_server, write_script):
    port_a, port_b = free_port(), free_port()
    scu = orthanc_server(config={"DicomAet": "ORTHANCA", "DicomPort": port_a,
                                 "DicomModalities": {"ORTHANCB": ["ORTHANCB", "127.0.0.1", port_b]}})
    scp = orthanc_server(script=write_script(COMMITMENT),
                         config={"DicomAet": "ORTHANCB", "DicomPort": port_b,
                                 "DicomModalities": {"ORTHANCA": ["ORTHANCA", "127.0.0.1", port_a]}})
    ct = [MANIFEST["ct-a1-%d.dcm" % i] for i in (1, 2)]
    body = {"DicomInstances": [[m["SOPClassUID"], m["SOPInstanceUID"]] for m in ct]}
    r = scu.post("/modalities/ORTHANCB/storage-commitment", data=json.dumps(body))
    assert r.status_code == 200, r.text
    uid = r.json()["ID"]
    report = wait_until(lambda: (lambda j: j if j.get("Status") != "Pending" else None)(
        scu.get("/storage-commitment/" + uid).json()), what="storage commitment report")
    assert report["Status"] == "Failure"   # one of the two instances is unknown
    assert report["Success"] == [{"SOPClassUID": ct[0]["SOPClassUID"], "SOPInstanceUID": ct[0]["SOPInstanceUID"]}]
    [failure] = report["Failures"]
    assert failure["SOPInstanceUID"] == ct[1]["SOPInstanceUID"]
    assert failure["FailureReason"] == 0x0112   # DICOM's code for NO_SUCH_OBJECT_INSTANCE
    scp.wait_for_log(r"commitment %s from ORTHANCA to ORTHANCB: %s,%s" % (uid, ct[0]["SOPInstanceUID"],
                                                                           ct[1]["SOPInstanceUID"]))
    # an exception in lookup: logged, never reported as a success
    m4 = MANIFEST["ct-a1-4.dcm"]
    r = scu.post("/modalities/ORTHANCB/storage-commitment",
                 data=json.dumps({"DicomInstances": [[m4["SOPClassUID"], m4["SOPInstanceUID"]]]}))
    uid = r.json()["ID"]
    scp.wait_for_log(r"deliberate failure in the storage commitment lookup")
    assert scu.get("/storage-commitment/" + uid).json()["Status"] != "Success"
    assert_serving(scp)


JOBS_RESTART = r'''
import json, orthanc, threading
release = threading.Event()

def make(done):
    state = {"i": done}
    def step():
        if not release.is_set():
            release.wait(0.05)
            return orthanc.JobStepStatus.CONTINUE
        state["i"] += 1
        return orthanc.JobStepStatus.SUCCESS
    return orthanc.CreateJob("PyRestartJob", step, content=lambda: {"i": state["i"]},
                             serialized=lambda: {"i": state["i"], "version": 1})

def Start(output, uri, **request):
    output.AnswerBuffer(make(10).SubmitJob(0), "text/plain")
orthanc.RegisterRestCallback("/start", Start)

def Release(output, uri, **request):
    release.set()
    output.AnswerBuffer("ok", "text/plain")
orthanc.RegisterRestCallback("/release", Release)

def Unserialize(job_type, serialized):
    print("unserialize %s %s" % (job_type, json.dumps(json.loads(serialized), sort_keys=True)))
    if job_type != "PyRestartJob":
        return None
    return make(json.loads(serialized)["i"])

orthanc.RegisterJobsUnserializer(lambda job_type, serialized: None)   # tried first, declines
orthanc.RegisterJobsUnserializer(Unserialize)
'''


def test_job_unserialized_after_restart(orthanc_server, write_script):
    server = orthanc_server(script=write_script(JOBS_RESTART))
    job_id = server.post("/start").text
    wait_until(lambda: server.get("/jobs/" + job_id).json()["State"] == "Running", what="job running")
    server.stop()
    server.start()
    server.wait_for_log(r'unserialize PyRestartJob \{"Type": "PyRestartJob", "i": 10, "version": 1\}')
    assert job_id in server.get("/jobs").json()
    server.post("/release")
    job = wait_job(server, job_id)
    assert job["State"] == "Success" and job["Content"] == {"i": 11} and job["Type"] == "PyRestartJob"


RESET = r'''
import orthanc
count = {"filter": 0}
def Filter(uri, **kw):
    if uri == "/counted":
        count["filter"] += 1
    return True
orthanc.RegisterIncomingHttpRequestFilter(Filter)
orthanc.RegisterRestCallback("/counted", lambda output, uri, **r: output.AnswerBuffer(str(count["filter"]), "text/plain"))
orthanc.RegisterRefreshMetricsCallback(lambda: orthanc.SetMetricsValue("py_reset_metric", 7, orthanc.MetricsType.DEFAULT))
print("script imported")
'''


def test_registrations_after_tools_reset(orthanc_server, write_script):
    server = orthanc_server(script=write_script(RESET))
    assert server.get("/counted").text == "1"
    server.post("/tools/reset")
    server.wait_for_log(r"script imported", count=2)
    server.wait_ready()
    # one filter call per request after the reset (the old registrations are gone)
    assert server.get("/counted").text == "1"
    assert server.get("/counted").text == "2"
    assert "py_reset_metric 7" in server.get("/tools/metrics-prometheus").text
