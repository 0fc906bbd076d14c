# SPDX-License-Identifier: GPL-3.0-or-later
"""Several Orthanc processes (replicas) with pythanc on one PostgreSQL index and one storage
folder: what a script sees there, the values shared through the database, and a load of 2,000
instances through two replicas at once, one of them stopped and restarted in the middle.

The PostgreSQL server and the replicas come from tests/replicas.py; everything is real (Debian's
postgresql and orthanc-postgresql, dcmtk's storescu) and stopped by its PID."""

import io
import os
import subprocess
import threading
import time

from conftest import dcmtk
from pythanc.testing import wait_until
from replicas import postgres, replicas  # noqa: F401  (the fixtures, from tests/replicas.py)

SCRIPT = r'''
import json, os, threading, orthanc

CONFIG = json.loads(orthanc.GetConfiguration())
NAME = CONFIG["Name"]
RECORDS = os.path.abspath(NAME + ".records")   # in the replica's own folder (its cwd)
_lock = threading.Lock()

def record(kind, resource):
    with _lock, open(RECORDS, "a") as f:
        f.write("%s %s %d\n" % (kind, resource, os.getpid()))

def OnChange(changeType, level, resource):
    if changeType == orthanc.ChangeType.NEW_INSTANCE:
        record("change", resource)
    elif changeType == orthanc.ChangeType.STABLE_STUDY:
        record("stable", resource)
        # Once per study across the replicas: the first to create the metadata wins.
        if orthanc.CompareAndSetMetadata("/studies/" + resource, 1030, NAME, None) is not None:
            record("claimed", resource)
        record("claimed-or-not", resource)
orthanc.RegisterOnChangeCallback(OnChange)

def OnStored(instance, instanceId):
    record("stored", instanceId)
orthanc.RegisterOnStoredInstanceCallback(OnStored)

def Whoami(output, uri, **request):
    output.AnswerBuffer(json.dumps({"name": NAME, "pid": os.getpid(), "version": 1}), "application/json")
orthanc.RegisterRestCallback("/replica/whoami", Whoami)

def Shared(output, uri, **request):
    if request["method"] == "PUT":
        value = request["body"].decode()
        orthanc.SetSharedValue("k", value)
        orthanc.SetGlobalProperty(5000, value)
    output.AnswerBuffer(json.dumps([orthanc.GetSharedValue("k"), orthanc.GetGlobalProperty(5000, "")]),
                        "application/json")
orthanc.RegisterRestCallback("/replica/shared", Shared)

def Metadata(output, uri, **request):
    study = request["groups"][0]
    resource = "/studies/" + study if study != "not-a-path" else "studies"
    if request["method"] == "PUT":
        revision = request["headers"].get("x-revision") or None
        answer = orthanc.CompareAndSetMetadata(resource, 1031, request["body"].decode(), revision)
    else:
        answer = orthanc.GetMetadataWithRevision(resource, 1031)
    output.AnswerBuffer(json.dumps(answer), "application/json")
orthanc.RegisterRestCallback("/replica/metadata/(.*)", Metadata)

def Increment(output, uri, **request):
    values = [orthanc.IncrementMetadata("/studies/" + request["get"]["study"], 1032) for _ in range(int(request["get"]["n"]))]
    output.AnswerBuffer(json.dumps(values), "application/json")
orthanc.RegisterRestCallback("/replica/increment", Increment)

def Start(output, uri, **request):
    state = {"i": 0}
    def step():
        state["i"] += 1
        record("job-step", str(state["i"]))
        return orthanc.JobStepStatus.SUCCESS if state["i"] >= 3 else orthanc.JobStepStatus.CONTINUE
    job = orthanc.CreateJob("ReplicaJob", step, progress=lambda: state["i"] / 3, content=lambda: {"by": NAME})
    output.AnswerBuffer(job.SubmitJob(0), "text/plain")
orthanc.RegisterRestCallback("/replica/start-job", Start)

def InWorker(output, uri, **request):
    output.AnswerBuffer(json.dumps({"pid": os.getpid(), "ppid": os.getppid()}), "application/json")
if CONFIG.get("Python", {}).get("Workers"):
    orthanc.RegisterRestCallback("/replica/in-worker", InWorker, worker=True)

if not orthanc.IsWorkerProcess():
    print("replica script imported by %s" % NAME)
'''

CHECK_REVISIONS = {"CheckRevisions": True}


def records(server, kind=None):
    """``[(kind, resource, pid)]`` written by the script of one replica (all its runs)."""
    path = os.path.join(server.workdir, server.name + ".records")
    try:
        with open(path) as f:
            rows = [tuple(line.split()) for line in f if line.strip()]
    except FileNotFoundError:
        return []
    return [r for r in rows if kind is None or r[0] == kind]


def no_callback_error(*servers):
    for s in servers:
        assert "Error in the" not in s.log(), s.log()[-4000:]


def make_dicom(i, study=0, patient=None):
    """A small DICOM instance (8x8 pixels) with UIDs derived from ``i`` and ``study``; bytes."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["replicas-i", str(i)])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["replicas-study", str(study)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["replicas-series", str(study)])
    ds.PatientID, ds.PatientName, ds.Modality = patient or "REPLICAS-%d" % study, "Replicas^Test", "OT"
    ds.InstanceNumber = i + 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(range(64))
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def new_instance_changes(server):
    """The IDs of every NewInstance in ``/changes`` (read through ``server``), in order."""
    ids, since = [], 0
    while True:
        page = server.get("/changes?since=%d&limit=1000" % since).json()
        ids += [c["ID"] for c in page["Changes"] if c["ChangeType"] == "NewInstance"]
        since = page["Last"]
        if page["Done"]:
            return ids


# ---- what a script sees ------------------------------------------------------------------------------

def test_changes_and_stored_callbacks_run_on_the_replica_where_the_change_happened(replicas, write_script):
    r = replicas(2, script=write_script(SCRIPT), config=CHECK_REVISIONS)
    a, b = r
    # REST callbacks answer through either replica: each runs the script in its own process.
    wa, wb = a.get("/replica/whoami").json(), b.get("/replica/whoami").json()
    assert (wa["name"], wa["pid"]) == ("replica-A", a.process.pid)
    assert (wb["name"], wb["pid"]) == ("replica-B", b.process.pid)
    ia = a.upload(make_dicom(1, study=1))["ID"]
    ib = b.upload(make_dicom(2, study=1))["ID"]
    wait_until(lambda: [x[1] for x in records(a, "change")] == [ia], what="A's change")
    wait_until(lambda: [x[1] for x in records(b, "change")] == [ib], what="B's change")
    assert [x[1] for x in records(a, "stored")] == [ia] and [x[1] for x in records(b, "stored")] == [ib]
    # Both are in the one index, and /changes lists both whichever replica answers.
    assert sorted(a.get("/instances").json()) == sorted(b.get("/instances").json()) == sorted([ia, ib])
    assert new_instance_changes(a) == new_instance_changes(b) == [ia, ib]
    # The study got instances through both replicas: each replica tracks its own unstable
    # resources, so each signals StableStudy; the script reacts once, by a compare-and-set.
    study = a.get("/instances/%s/study" % ia).json()["ID"]
    wait_until(lambda: records(a, "stable") and records(b, "stable"), what="StableStudy on both")
    wait_until(lambda: records(a, "claimed") + records(b, "claimed"), what="the study claimed")
    wait_until(lambda: len(records(a, "claimed-or-not") + records(b, "claimed-or-not")) == 2, what="both tried")
    claimed = records(a, "claimed") + records(b, "claimed")
    assert [x[1] for x in claimed] == [study]
    assert a.get("/studies/%s/metadata/1030" % study).text in ("replica-A", "replica-B")
    stable = [c for c in a.get("/changes?limit=1000").json()["Changes"] if c["ChangeType"] == "StableStudy"]
    assert [c["ID"] for c in stable] == [study, study]
    no_callback_error(a, b)


def test_jobs_reset_reload_and_workers_are_per_replica(replicas, write_script, tmp_path):
    script = write_script(SCRIPT)
    r = replicas(0, script=script, config=CHECK_REVISIONS, python={"Workers": 1})
    a = r.add(config={"Python": {"Workers": 1, "Reload": True}})
    b = r.add()
    # A Python job runs in the replica that submitted it; the other does not list it.
    job = a.post("/replica/start-job").text
    wait_until(lambda: a.get("/jobs/" + job).json()["State"] == "Success", what="job done")
    assert a.get("/jobs/" + job).json()["Content"] == {"by": "replica-A"}
    assert job not in b.get("/jobs").json() and b.get("/jobs/" + job).status_code == 404
    assert [x[1] for x in records(a, "job-step")] == ["1", "2", "3"] and records(b, "job-step") == []
    # Worker processes belong to their replica.
    for s in (a, b):
        w = s.get("/replica/in-worker").json()
        assert w["ppid"] == s.process.pid and w["pid"] != s.process.pid
    # /tools/reset on A runs A's script again; B is left alone.
    a.post("/tools/reset")
    a.wait_for_log(r"replica script imported by replica-A", count=2, timeout=120)
    a.wait_ready()
    assert b.log().count("replica script imported by replica-B") == 1
    assert a.get("/replica/whoami").json()["pid"] == a.process.pid
    # Python.Reload is per process: A (with "Reload": true) reloads the changed file, B does not.
    with open(script) as f:
        text = f.read()
    with open(script, "w") as f:
        f.write(text.replace('"version": 1', '"version": 2'))
    # (while the new version imports, its routes answer 404: see "Python.Reload" in the README)
    def reloaded():
        answer = a.get("/replica/whoami")
        return answer.status_code == 200 and answer.json()["version"] == 2
    wait_until(reloaded, timeout=60, what="A reloaded")
    assert b.get("/replica/whoami").json()["version"] == 1
    no_callback_error(a, b)


# ---- shared state -------------------------------------------------------------------------------------

def test_shared_values_and_global_properties_are_per_process(replicas, write_script):
    a, b = replicas(2, script=write_script(SCRIPT), config=CHECK_REVISIONS)
    assert a.put("/replica/shared", data="from-A").json() == ["from-A", "from-A"]
    # orthanc.SetSharedValue lives in A's memory; Orthanc keeps the global properties that a plugin
    # sets in the memory of its process too: B sees neither.
    assert b.get("/replica/shared").json() == [None, ""]
    assert b.put("/replica/shared", data="from-B").json() == ["from-B", "from-B"]
    assert a.get("/replica/shared").json() == ["from-A", "from-A"]
    no_callback_error(a, b)


def test_metadata_compare_and_set_across_replicas(replicas, write_script):
    a, b = replicas(2, script=write_script(SCRIPT), config=CHECK_REVISIONS)
    study = a.get("/instances/%s/study" % a.upload(make_dicom(1))["ID"]).json()["ID"]
    url = "/replica/metadata/" + study
    assert b.get(url).json() == [None, None]
    rev = a.put(url, data="one").json()
    assert rev
    # Written through A, read through B, with the same revision.
    assert b.get(url).json() == ["one", rev]
    # A first write (no revision) loses once the value exists; a stale revision loses too.
    assert b.put(url, data="other").json() is None
    rev2 = b.put(url, data="two", headers={"X-Revision": rev}).json()
    assert rev2 and rev2 != rev
    assert a.put(url, data="stale", headers={"X-Revision": rev}).json() is None
    assert a.get(url).json() == ["two", rev2]
    # Wrong arguments name the argument (the REST callback answers 500, the log says why).
    assert a.get("/replica/metadata/not-a-path").status_code == 500
    a.wait_for_log(r"argument 'resource' must be the REST path of a resource")


def test_concurrent_increments_from_three_replicas(replicas, write_script):
    r = replicas(3, script=write_script(SCRIPT), config=CHECK_REVISIONS)
    study = r[0].get("/instances/%s/study" % r[0].upload(make_dicom(1))["ID"]).json()["ID"]
    per_call, calls_per_replica = 20, 2
    results, errors = [], []

    def client(server):
        try:
            results.extend(server.get("/replica/increment", params={"study": study, "n": per_call},
                                      timeout=300).json())
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(s,)) for s in r for _ in range(calls_per_replica)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors
    total = per_call * calls_per_replica * len(r)
    # Every increment from every replica counted once: the values returned are 1..total, each once.
    assert sorted(results) == list(range(1, total + 1))
    assert r[1].get("/studies/%s/metadata/1032" % study).text == str(total)
    no_callback_error(*r)


# ---- load ---------------------------------------------------------------------------------------------

LOAD_INSTANCES = 2000
REST_THREADS = 4
STORESCU_BATCH = 50
STORESCU_PROCESSES = 4


def test_load_two_replicas_rest_and_cstore_one_restarted(replicas, write_script, tmp_path):
    """2,000 instances through two replicas at once, half by REST and half by C-STORE (storescu),
    replica B stopped by its PID mid-load and started again: every instance indexed once, every
    NewInstance change delivered once, to the script of the replica that made it."""
    storescu = dcmtk("storescu")
    r = replicas(2, script=write_script(SCRIPT), config=CHECK_REVISIONS, index={"IndexConnectionsCount": 4})
    a, b = r
    files = [make_dicom(i, study=i // 50) for i in range(LOAD_INSTANCES)]
    half = LOAD_INSTANCES // 2
    rest_files = files[:half]
    folder = tmp_path / "cstore"
    folder.mkdir()
    batches = []
    for k in range(0, LOAD_INSTANCES - half, STORESCU_BATCH):
        paths = []
        for j, data in enumerate(files[half + k:half + k + STORESCU_BATCH]):
            p = folder / ("%d.dcm" % (half + k + j))
            p.write_bytes(data)
            paths.append(str(p))
        batches.append(paths)
    b_up = threading.Event()      # clear while B is being stopped and started again
    b_up.set()
    b_restarts = [0]              # how many times B was started again
    retry, errors = [], []        # (server, work) to do again once B is back; unexpected failures
    lock = threading.Lock()

    def post(server, data):
        server.post("/instances", data=data, timeout=120).raise_for_status()

    def send_batch(server, paths):
        proc = subprocess.run(
            [storescu, "-aet", "LOAD", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port)] + paths,
            capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError("storescu: %s %s" % (proc.stdout[-500:], proc.stderr[-500:]))

    def failed(server, epoch, kind, work, e):
        # What B was doing when it was stopped is to do again; any other failure is an error.
        b_hit = server is b and (b_restarts[0] != epoch or not b_up.is_set())
        with lock:
            (retry if b_hit else errors).append((server, kind, work, e))

    def rest_client(k):
        for i in range(k, len(rest_files), REST_THREADS):
            server = (a, b)[i % 2]
            if server is b:
                b_up.wait(300)    # a load balancer sends nothing to a replica it knows is down
            epoch = b_restarts[0]
            try:
                post(server, rest_files[i])
            except Exception as e:
                failed(server, epoch, "post", rest_files[i], e)

    def cstore_client(k):
        for i in range(k, len(batches), STORESCU_PROCESSES):
            server = (a, b)[(i // STORESCU_PROCESSES + i) % 2]
            if server is b:
                b_up.wait(300)
            epoch = b_restarts[0]
            try:
                send_batch(server, batches[i])
            except Exception as e:
                failed(server, epoch, "cstore", batches[i], e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=rest_client, args=(k,)) for k in range(REST_THREADS)]
    threads += [threading.Thread(target=cstore_client, args=(k,)) for k in range(STORESCU_PROCESSES)]
    for t in threads:
        t.start()
    # Mid-load: stop B by its PID once it has stored a quarter of the load, then start it again.
    wait_until(lambda: len(records(b, "stored")) >= LOAD_INSTANCES // 4, timeout=300, what="B busy")
    t_busy = time.monotonic()
    b_up.clear()
    old_pid = b.process.pid
    b.stop()
    b.start()
    b_restarts[0] += 1
    b_up.set()
    assert b.process.pid != old_pid
    t_restarted = time.monotonic()
    for t in threads:
        t.join(600)
    t_joined = time.monotonic()
    assert not errors, errors[:3]
    # What failed while B was down is sent again to B (an instance already stored is not stored twice).
    for server, kind, work, _ in retry:
        post(server, work) if kind == "post" else send_batch(server, work)
    ingest_seconds = time.monotonic() - t0

    # Every instance indexed once, and stored once in the shared storage folder.
    assert a.get("/statistics").json()["CountInstances"] == LOAD_INSTANCES
    stored_files = sum(len(f) for _, _, f in os.walk(r.storage))
    assert stored_files == LOAD_INSTANCES
    changes = new_instance_changes(b)
    assert len(changes) == len(set(changes)) == LOAD_INSTANCES
    # Every NewInstance change delivered once, to the replica that made it; the union over the
    # replicas is /changes.
    def delivered():
        return [x[1] for x in records(a, "change") + records(b, "change")]
    wait_until(lambda: len(delivered()) >= LOAD_INSTANCES, timeout=120, what="every change delivered")
    got = delivered()
    assert len(got) == len(set(got)) == LOAD_INSTANCES and set(got) == set(changes)
    by_a = {x[1] for x in records(a, "change")}
    by_b = {x[1] for x in records(b, "change")}
    assert by_a and by_b and not by_a & by_b
    # Both replicas ran before and B after its restart (two PIDs in its records).
    assert len({x[2] for x in records(b, "change")}) == 2
    assert a.alive() and b.alive()
    assert a.get("/replica/whoami").json()["pid"] == a.process.pid
    assert b.get("/replica/whoami").json()["pid"] == b.process.pid
    no_callback_error(a, b)
    print("load: %d instances in %.1f s through two replicas (B stopped after %.1f s, restarted in %.1f s; "
          "clients done after %.1f s; %d resent after B's restart)"
          % (LOAD_INSTANCES, ingest_seconds, t_busy - t0, t_restarted - t_busy, t_joined - t0, len(retry)))
