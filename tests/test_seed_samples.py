"""Acceptance tests: the 14 Python samples of the Orthanc Book page "Python plugin for Orthanc"
(shared/seed-samples/, see its README), each run in a real Orthanc with pythanc, loaded from
that folder.  Each test checks what the page says the sample does."""

import io
import json
import os
import re
import socket
import subprocess
import threading

import pytest

from pythanc.testing import wait_until

CT_A1_1_ID = "135d2c1b-d16dc721-2feced4d-8ac285d2-b96f5731"


@pytest.fixture
def manifest(testdata):
    with open(testdata("manifest.json")) as f:
        return json.load(f)


def read_text(path):
    with open(path) as f:
        return f.read()




# ---- 01 ----------------------------------------------------------------------------------------

def test_01_hello(orthanc_server, seed):
    server = orthanc_server(script=seed("01-hello.py"))
    server.wait_for_log(r"Hello world!")
    assert server.get("/system").status_code == 200


# ---- 02 ----------------------------------------------------------------------------------------

def test_02_extending_rest_api(orthanc_server, seed):
    server = orthanc_server(script=seed("02-extending-rest-api.py"))

    r = server.get("/toto", params={"hello": "world"})
    assert r.status_code == 200
    assert r.text == "ok\n"
    assert r.headers["Content-Type"].startswith("text/plain")
    server.wait_for_log(r"Accessing uri: /toto")
    # the pprinted request dict (sorted keys, one per line as it is longer than 80 chars)
    log = server.log()
    for key in ("method", "groups", "get", "headers"):
        assert "'%s':" % key in log, key
    assert "'method': 'GET'" in log
    assert re.search(r"'groups': \('to', 't'\)", log), log[-3000:]
    assert "'get': {'hello': 'world'}" in log

    r = server.get("/tata")
    assert r.status_code == 200
    assert r.text == "ok\n"
    server.wait_for_log(r"Accessing uri: /tata")
    assert "'groups': ()," in server.log()

    assert server.get("/titi").status_code == 404


# ---- 03 ----------------------------------------------------------------------------------------

def test_03_listening_changes(orthanc_server, seed, testdata, manifest, tmp_path):
    source = read_text(seed("03-listening-changes.py"))
    assert "/tmp/sample.dcm" in source
    sample = tmp_path / "sample.dcm"
    with open(testdata("ct-a1-1.dcm"), "rb") as f:
        sample.write_bytes(f.read())
    script = tmp_path / "03-listening-changes.py"
    script.write_text(source.replace("/tmp/sample.dcm", str(sample)))
    instance_id = manifest["ct-a1-1.dcm"]["instance"]

    server = orthanc_server(script=str(script))
    server.wait_for_log(r"(?m)^Started$")
    # the start-up upload happened
    wait_until(lambda: instance_id in server.get("/instances").json(), 30, "the start-up upload")
    server.wait_for_log(r"A new instance was uploaded: %s" % re.escape(instance_id))

    # another upload is reported too
    other = manifest["mr-b1-1.dcm"]["instance"]
    assert server.upload(testdata("mr-b1-1.dcm"))["ID"] == other
    server.wait_for_log(r"A new instance was uploaded: %s" % re.escape(other))

    assert "Stopped" not in server.log()
    assert server.stop(timeout=60) == 0
    assert re.search(r"(?m)^Stopped$", server.log()), server.log()[-3000:]


# ---- 04 ----------------------------------------------------------------------------------------

def test_04_accessing_new_instance(orthanc_server, seed, testdata, manifest):
    server = orthanc_server(script=seed("04-accessing-new-instance.py"))

    a = manifest["ct-a1-1.dcm"]
    assert server.upload(testdata("ct-a1-1.dcm"))["ID"] == a["instance"]
    found = server.wait_for_log(
        r"Received instance %s of size (\d+) \(transfer syntax ([0-9.]+), SOP class UID ([0-9.]+)\)"
        % re.escape(a["instance"]))
    size, syntax, sop_class = found[0]
    assert int(size) == a["size"] == os.path.getsize(testdata("ct-a1-1.dcm"))
    assert syntax.startswith("1.2.840.10008.1.2")
    assert sop_class == a["SOPClassUID"]
    server.wait_for_log(r"This instance was received through the REST API")
    # the pprinted simplified JSON tags
    server.wait_for_log(r"'PatientName': '%s'" % re.escape(a["PatientName"]))
    server.wait_for_log(r"'SOPInstanceUID': '%s'" % re.escape(a["SOPInstanceUID"]))
    assert "received through the DICOM protocol" not in server.log()

    b = manifest["mr-b1-1.dcm"]
    done = server.store_scu(testdata("mr-b1-1.dcm"))
    assert done.returncode == 0, done.stdout + done.stderr
    server.wait_for_log(r"Received instance %s of size \d+ \(transfer syntax [0-9.]+, SOP class UID %s\)"
                        % (re.escape(b["instance"]), re.escape(b["SOPClassUID"])))
    server.wait_for_log(r"This instance was received through the DICOM protocol")
    server.wait_for_log(r"'PatientName': '%s'" % re.escape(b["PatientName"]))
    assert len(re.findall(r"received through the REST API", server.log())) == 1


# ---- 05 ----------------------------------------------------------------------------------------

def test_05_pydicom(orthanc_server, seed, testdata, manifest):
    server = orthanc_server(script=seed("05-pydicom.py"))
    a = manifest["ct-a1-1.dcm"]
    server.upload(testdata("ct-a1-1.dcm"))

    r = server.get("/pydicom/%s" % a["instance"])
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert "Patient's Name" in text and a["PatientName"] in text
    assert a["SOPInstanceUID"] in text
    assert "Study Date" in text and a["StudyDate"] in text
    assert "(0010,0020) Patient ID" in text and a["PatientID"] in text

    import pydicom
    assert text == str(pydicom.dcmread(testdata("ct-a1-1.dcm")))

    r = server.post("/pydicom/%s" % a["instance"], data=b"x")
    assert r.status_code == 405
    assert "GET" in r.headers.get("Allow", "")


# ---- 06 ----------------------------------------------------------------------------------------

def test_06_autorouting(orthanc_server, seed, testdata, manifest, tmp_path):
    from pythanc.testing import free_port

    port = free_port()
    received = tmp_path / "storescp"
    received.mkdir()
    out = open(str(tmp_path / "storescp.log"), "wb")
    scp = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received), str(port)],
                           stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def listening():
            if scp.poll() is not None:
                raise AssertionError("storescp exited with %s: %s"
                                     % (scp.returncode, (tmp_path / "storescp.log").read_text()))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(listening, 30, "storescp to listen")

        server = orthanc_server(script=seed("06-autorouting.py"), config={
            "DicomModalities": {"sample": ["STORESCP", "127.0.0.1", port]},
            "StableAge": 1,
        })
        names = ["ct-a1-%d.dcm" % i for i in range(1, 5)]
        for name in names:
            server.upload(testdata(name))
        study = manifest["ct-a1-1.dcm"]["study"]

        server.wait_for_log(r"Stable study: %s" % re.escape(study), timeout=60)
        files = wait_until(lambda: len(os.listdir(str(received))) >= 4 and os.listdir(str(received)),
                           60, "storescp to receive the 4 instances")

        import pydicom
        got = set()
        for f in files:
            got.add(str(wait_until(lambda: _read_uid(os.path.join(str(received), f)), 30,
                                   "a complete file %s" % f)))
        assert got == {manifest[n]["SOPInstanceUID"] for n in names}
    finally:
        scp.terminate()
        try:
            scp.wait(10)
        except subprocess.TimeoutExpired:
            scp.kill()
            scp.wait(10)
        out.close()


def _read_uid(path):
    import pydicom
    try:
        return pydicom.dcmread(path).SOPInstanceUID
    except Exception:
        return None


# ---- 07 ----------------------------------------------------------------------------------------

def test_07_pil_thumbnail(orthanc_server, seed, testdata, manifest):
    from PIL import Image

    server = orthanc_server(script=seed("07-pil-thumbnail.py"))
    for name in ("ct-a1-1.dcm", "rgb-2frames.dcm"):
        server.upload(testdata(name))
        r = server.get("/pydicom/%s" % manifest[name]["instance"])
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/plain")  # as written in the sample
        assert r.content[:3] == b"\xff\xd8\xff"
        image = Image.open(io.BytesIO(r.content))
        assert image.format == "JPEG"
        assert image.size == (64, 64)

    assert server.post("/pydicom/%s" % manifest["ct-a1-1.dcm"]["instance"], data=b"").status_code == 405


# ---- 08 ----------------------------------------------------------------------------------------

def test_08_inspect_api(orthanc_server, seed):
    server = orthanc_server(script=seed("08-inspect-api.py"))
    server.wait_for_log(r"Function RestApiGet\(\):")
    log = server.log()

    # functions, with the documentation from the SDK header
    m = re.search(r"Function RestApiGet\(\):\n  Documentation: (.*)", log)
    assert m and m.group(1).strip() not in ("", "None"), log[-3000:]
    assert "GET" in m.group(1) or "REST" in m.group(1)
    for fn in ("RestApiPost", "RegisterRestCallback", "RegisterOnChangeCallback", "LogWarning",
               "GetDicomForInstance"):
        assert "Function %s():" % fn in log, fn
    m = re.search(r"Function LogWarning\(\):\n  Documentation: (.*)", log)
    assert m and m.group(1).strip() not in ("", "None")

    # classes, enumeration values, methods
    for cls in ("ChangeType", "InstanceOrigin", "RestOutput", "DicomInstance"):
        assert re.search(r"(?m)^Class %s:\n  Documentation: " % cls, log), cls
    assert "  - Enumeration value STABLE_STUDY: 9" in log
    assert "  - Enumeration value ORTHANC_STARTED: 10" in log
    assert "  - Enumeration value REST_API: 3" in log
    m = re.search(r"  - Method AnswerBuffer\(\): (.*)", log)
    assert m and m.group(1).strip() not in ("", "None"), log[-3000:]
    m = re.search(r"  - Method GetInstanceSize\(\): (.*)", log)
    assert m and m.group(1).strip() not in ("", "None")


# ---- 09 ----------------------------------------------------------------------------------------

def test_09_periodic_execution(orthanc_server, seed):
    server = orthanc_server(script=seed("09-periodic-execution.py"))
    server.wait_for_log(r"Starting the scheduler")
    server.wait_for_log(r"In Hello\(\)", timeout=30, count=3)
    assert "Stopping the scheduler" not in server.log()
    code = server.stop(timeout=30)  # raises if Orthanc does not exit within the bound
    assert code == 0, server.log()[-3000:]
    assert "Stopping the scheduler" in server.log()
    # the scheduler is not running any more: the log of a stopped process does not grow
    log = server.log()
    assert log.index("Starting the scheduler") < log.rindex("Stopping the scheduler")


# ---- 10 ----------------------------------------------------------------------------------------

def test_10_filtering_metadata(orthanc_server, seed, testdata, manifest):
    server = orthanc_server(script=seed("10-filtering-metadata.py"), config={"UserMetadata": {"Sample": 1024}})
    names = ["ct-a1-1.dcm", "ct-a1-2.dcm", "mr-b1-1.dcm"]
    for name in names:
        server.upload(testdata(name))
    tagged = manifest["ct-a1-2.dcm"]["instance"]
    r = server.put("/instances/%s/metadata/Sample" % tagged, data=b"hello-world")
    assert r.status_code == 200, r.text
    assert server.get("/instances/%s/metadata/Sample" % tagged).text == "hello-world"

    def find(query):
        r = server.post("/tools/find", data=json.dumps(query))
        assert r.status_code == 200, r.text
        return r.json()

    # no Metadata filter: behaves like the core route
    assert sorted(find({"Level": "Instance", "Query": {}})) == sorted(manifest[n]["instance"] for n in names)
    # a Metadata filter selects the tagged instance only
    assert find({"Level": "Instance", "Query": {}, "Metadata": {"Sample": "^hello"}}) == [tagged]
    assert find({"Level": "Instance", "Query": {}, "Metadata": {"Sample": "nope"}}) == []
    # combined with a DICOM query
    assert find({"Level": "Instance", "Query": {"PatientID": "COMPAT-B"}, "Metadata": {"Sample": "^hello"}}) == []
    assert find({"Level": "Instance", "Query": {"PatientID": "COMPAT-A"},
                 "Metadata": {"Sample": "hello-w"}}) == [tagged]
    # with "Expand": the resources, with their metadata
    expanded = find({"Level": "Instance", "Query": {}, "Metadata": {"Sample": "^hello"}, "Expand": True})
    assert len(expanded) == 1
    assert expanded[0]["ID"] == tagged
    assert expanded[0]["Type"] == "Instance"
    assert expanded[0]["Metadata"]["Sample"] == "hello-world"
    assert expanded[0]["MainDicomTags"]["SOPInstanceUID"] == manifest["ct-a1-2.dcm"]["SOPInstanceUID"]
    # series level: no series carries the metadata
    assert find({"Level": "Series", "Query": {}, "Metadata": {"Sample": "^hello"}}) == []
    assert len(find({"Level": "Series", "Query": {}, "Expand": True})) == 2

    assert server.get("/tools/find").status_code == 405


# ---- 11 ----------------------------------------------------------------------------------------

def test_11_paging(orthanc_server, seed, testdata, manifest):
    server = orthanc_server(script=seed("11-paging.py"))
    names = ["ct-c1-1.dcm", "rgb-2frames.dcm", "mr-b1-1.dcm", "ct-a1-1.dcm"]
    for name in names:
        server.upload(testdata(name))
    by_date = [manifest[n]["study"] for n in sorted(names, key=lambda n: manifest[n]["StudyDate"])]
    assert len(set(manifest[n]["StudyDate"] for n in names)) == len(names)

    def ids(path):
        r = server.get(path)
        assert r.status_code == 200, r.text
        studies = r.json()
        assert all(s["Type"] == "Study" for s in studies)
        return [s["ID"] for s in studies]

    assert ids("/sort-studies") == by_date
    dates = [s["MainDicomTags"]["StudyDate"] for s in server.get("/sort-studies").json()]
    assert dates == sorted(dates)
    assert ids("/sort-studies?offset=1&limit=2") == by_date[1:3]
    assert ids("/sort-studies?offset=2") == by_date[2:]
    assert ids("/sort-studies?limit=1") == by_date[:1]
    assert ids("/sort-studies?offset=3&limit=10") == by_date[3:]
    assert ids("/sort-studies?offset=10") == []
    assert server.post("/sort-studies", data=b"").status_code == 405


# ---- 12 ----------------------------------------------------------------------------------------

COMPUTATION = re.compile(r"computation done in \d+\.\d{3} seconds\n")


def test_12_slow_computation(orthanc_server, seed):
    server = orthanc_server(script=seed("12-multiprocessing-slow-computation.py"))
    r = server.get("/computation", timeout=300)
    assert r.status_code == 200, r.text
    assert COMPUTATION.fullmatch(r.text), r.text
    assert r.headers["Content-Type"].startswith("text/plain")


# ---- 13 ----------------------------------------------------------------------------------------

def test_13_multiprocessing_pool(orthanc_server, seed):
    server = orthanc_server(script=seed("13-multiprocessing-pool.py"))
    results = [None] * 3

    def call(i):
        try:
            results[i] = server.get("/computation", timeout=300)
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(320)
    assert not any(t.is_alive() for t in threads)
    for r in results:
        assert not isinstance(r, Exception), repr(r)
        assert r.status_code == 200, r.text
        assert COMPUTATION.fullmatch(r.text), r.text
    # Orthanc still serves requests, and stops cleanly with the pool alive
    assert server.get("/system").status_code == 200
    server.stop(timeout=60)


# ---- 14 ----------------------------------------------------------------------------------------

WRAPPER_14 = '''\
import io
import multiprocessing
import orthanc
import pydicom

SAMPLE = {sample!r}
with open(SAMPLE) as f:
    source = f.read()
source = source.replace({old!r}, {new!r})
exec(compile(source, SAMPLE, "exec"), globals())

# created after the sample's functions, so that the worker processes know them
POOL = multiprocessing.Pool(2)

orthanc.RegisterRestCallback("/parse", OnRest)
'''


def test_14_multiprocessing_pydicom_fragment(orthanc_server, seed, testdata, manifest, tmp_path):
    import pydicom

    sample = seed("14-multiprocessing-pydicom-fragment.py")
    old = "19816330-cb02e1cf-df3a8fe8-bf510623-ccefe9f5"
    assert old in read_text(sample)
    assert manifest["ct-a1-1.dcm"]["instance"] == CT_A1_1_ID
    wrapper = tmp_path / "wrapper14.py"
    wrapper.write_text(WRAPPER_14.format(sample=sample, old=old, new=CT_A1_1_ID))

    server = orthanc_server(script=str(wrapper))
    assert server.upload(testdata("ct-a1-1.dcm"))["ID"] == CT_A1_1_ID
    r = server.get("/parse", timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == str(pydicom.dcmread(testdata("ct-a1-1.dcm")))
    assert manifest["ct-a1-1.dcm"]["PatientName"] in r.text
    # a second call is served by the same pool
    assert server.get("/parse", timeout=120).text == r.text
