# SPDX-License-Identifier: GPL-3.0-or-later
"""The DICOM SCP handlers of SDK 1.12.10+ (Debian's Orthanc 1.13.0), with the official plugin 7.1's
names: ``RegisterFindCallback2``, ``RegisterWorklistCallback2``, ``RegisterMoveCallback3`` and
``RegisterStorageCommitmentScpCallback2``, whose callbacks get an ``orthanc.DicomConnection``.

Driven through the real protocols: dcmtk's findscu (C-FIND, worklists) and movescu (C-MOVE to a
storescp started by the test), and a second Orthanc as the storage commitment SCU (its REST API,
``POST /modalities/{id}/storage-commitment``).  The same script runs under the official plugin,
and what the peers see must be the same.  Skipped where the installed SDK lacks these functions."""

import json
import os
import re

from pythanc.testing import free_port, wait_until

from conftest import TESTDATA, needs_sdk, official_plugin, dcmtk
from test_callbacks_more import MANIFEST, StoreScp, run, assert_serving
from test_tracebacks import block, line_of, assert_user_only

V2 = ("OrthancPluginRegisterFindCallback2", "OrthancPluginRegisterWorklistCallback2",
      "OrthancPluginRegisterMoveCallback2", "OrthancPluginRegisterStorageCommitmentScpCallback2")
pytestmark = needs_sdk(*V2)

SCP_AET = "PYSCP"     # the AET of the Orthanc under test (the called AET the connection reports)
SCU_AET = "ORTHANCA"  # the storage commitment SCU, a second Orthanc

# Runs unchanged under the official plugin 7.1 and pythanc: what the callbacks see is logged as JSON.
SCRIPT = r'''
import json, orthanc
R = orthanc.StorageCommitmentFailureReason
kept = {}   # the last connection of each handler, kept after its callback (pythanc's check of them)

def Conn(connection):
    return {"RemoteAet": connection.GetConnectionRemoteAet(), "RemoteIp": connection.GetConnectionRemoteIp(),
            "CalledAet": connection.GetConnectionCalledAet()}

def Log(what, value):
    orthanc.LogWarning("%s %s" % (what, json.dumps(value, sort_keys=True)))

def OnFind(answers, query, connection):
    kept["find"] = connection
    q = {query.GetFindQueryTagName(i): query.GetFindQueryValue(i) for i in range(query.GetFindQuerySize())}
    Log("C-FIND2", {"query": q, "connection": Conn(connection)})
    if q.get("PatientID") == "BOOM":
        raise RuntimeError("deliberate failure in the C-FIND callback (v2)")  # FIND-RAISE
    for i in range(2):
        answers.FindAddAnswer(orthanc.CreateDicom(json.dumps({
            "PatientID": "PY-%d" % i, "PatientName": "FROM^%s" % connection.GetConnectionRemoteAet(),
            "QueryRetrieveLevel": "PATIENT", "SpecificCharacterSet": "ISO_IR 192"}), None, orthanc.CreateDicomFlags.NONE))

orthanc.RegisterFindCallback2(OnFind)

def OnWorklist(answers, query, connection):
    kept["worklist"] = connection
    Log("WORKLIST2", {"connection": Conn(connection)})
    if b"BOOM" in query.WorklistGetDicomQuery():
        raise RuntimeError("deliberate failure in the worklist callback (v2)")  # WORKLIST-RAISE
    item = orthanc.CreateDicom(json.dumps({
        "PatientID": "WL-1", "PatientName": "WORK^LIST", "AccessionNumber": connection.GetConnectionCalledAet(),
        "SpecificCharacterSet": "ISO_IR 192"}), None, orthanc.CreateDicomFlags.NONE)
    answers.WorklistAddAnswer(query, item)

orthanc.RegisterWorklistCallback2(OnWorklist)

class Driver:
    def __init__(self, request, connection):
        self.target = request["TargetAET"]
        self.boom = request["PatientID"] == "BOOM-APPLY"
        study = json.loads(orthanc.RestApiPost("/tools/lookup", request["StudyInstanceUID"]))[0]["ID"]
        self.instances = sorted(i["ID"] for i in json.loads(orthanc.RestApiGet("/studies/%s/instances" % study)))
        self.done = 0

def CreateMove(connection, **request):
    kept["move"] = connection
    Log("C-MOVE3", {"request": request, "connection": Conn(connection),
                    "OriginatorIDType": type(request["OriginatorID"]).__name__})
    if request["PatientID"] == "BOOM-CREATE":
        raise RuntimeError("deliberate failure in the C-MOVE create callback (v3)")  # CREATE-RAISE
    return Driver(request, connection)

def MoveSize(driver):
    return len(driver.instances)

def ApplyMove(driver):
    if driver.boom:
        raise RuntimeError("deliberate failure in the C-MOVE apply callback")
    orthanc.RestApiPost("/modalities/%s/store" % driver.target, json.dumps([driver.instances[driver.done]]))
    driver.done += 1

def FreeMove(driver):
    orthanc.LogWarning("driver freed after %d sub-operations" % driver.done)

orthanc.RegisterMoveCallback3(CreateMove, MoveSize, ApplyMove, FreeMove)

def CommitmentScp(job_id, transaction_uid, sop_classes, sop_instances, connection):
    kept["commitment"] = connection
    Log("COMMITMENT2", {"instances": sop_instances, "classes": sop_classes, "connection": Conn(connection)})
    if "1.2.3.999" in sop_instances:
        raise RuntimeError("deliberate failure in the storage commitment SCP callback (v2)")  # SCP-RAISE
    return {"known": set(sop_instances[:1])}

def CommitmentLookup(sop_class, sop_instance, handler):
    return R.SUCCESS if sop_instance in handler["known"] else R.NO_SUCH_OBJECT_INSTANCE

orthanc.RegisterStorageCommitmentScpCallback2(CommitmentScp, CommitmentLookup)
'''

# pythanc only: the connections used after their callbacks (the official plugin would read freed
# memory), and the versions 1 registered after the versions 2.
PYTHANC_ONLY = r'''
def Kept(output, uri, **request):
    out = {"types": sorted({type(c).__name__ for c in kept.values()})}
    for name, connection in sorted(kept.items()):
        try:
            out[name] = connection.GetConnectionRemoteAet()
        except orthanc.OrthancException as e:
            out[name] = "%s: %s" % (type(e).__name__, e.args[1])
    output.AnswerBuffer(json.dumps(out), "application/json")

orthanc.RegisterRestCallback("/kept", Kept)

for name, args in [("RegisterFindCallback", (lambda *a: None,)), ("RegisterWorklistCallback", (lambda *a: None,)),
                   ("RegisterMoveCallback", (lambda **kw: None,)),
                   ("RegisterMoveCallback2", (lambda **kw: None, len, len, len)),
                   ("RegisterStorageCommitmentScpCallback", (lambda *a: None, lambda *a: 0))]:
    try:
        getattr(orthanc, name)(*args)
        orthanc.LogWarning("MIXED %s: accepted" % name)
    except RuntimeError as e:
        orthanc.LogWarning("MIXED %s: %s" % (name, e))
'''

# pythanc: the versions 1 first, then the versions 2
V1_THEN_V2 = r'''
import orthanc
orthanc.RegisterFindCallback(lambda *a: None)
orthanc.RegisterWorklistCallback(lambda *a: None)
orthanc.RegisterMoveCallback2(lambda **kw: None, len, len, len)
orthanc.RegisterStorageCommitmentScpCallback(lambda *a: None, lambda *a: 0)
for name, args in [("RegisterFindCallback2", (lambda *a: None,)), ("RegisterWorklistCallback2", (lambda *a: None,)),
                   ("RegisterMoveCallback3", (lambda *a, **kw: None, len, len, len)),
                   ("RegisterStorageCommitmentScpCallback2", (lambda *a: None, lambda *a: 0))]:
    try:
        getattr(orthanc, name)(*args)
        orthanc.LogWarning("MIXED %s: accepted" % name)
    except RuntimeError as e:
        orthanc.LogWarning("MIXED %s: %s" % (name, e))
orthanc.LogWarning("MIXED done")
'''

STUDY = MANIFEST["ct-a1-1.dcm"]["StudyInstanceUID"]
CT = [dict(MANIFEST["ct-a1-%d.dcm" % i], _file="ct-a1-%d.dcm" % i) for i in (1, 2, 3)]


def scp_config(storescp_port, scu_port):
    return {"DicomAet": SCP_AET,
            "DicomModalities": {"FINDV2": ["FINDV2", "127.0.0.1", free_port()],
                                "MOVESCU": ["MOVESCU", "127.0.0.1", free_port()],
                                "STORESCP": ["STORESCP", "127.0.0.1", storescp_port],
                                SCU_AET: [SCU_AET, "127.0.0.1", scu_port]}}


def logged(server, what, count=1):
    """The JSON values that the script logged under ``what`` (at least ``count``)."""
    found = server.wait_for_log(r"%s (\{.*\})" % re.escape(what), count=count, timeout=60)
    return [json.loads(f) for f in found]


def tags(out):
    """The PatientID/PatientName/AccessionNumber values of the answers that findscu printed (after
    its request), without DICOM's padding."""
    answers = out[out.find("Find Response"):]
    found = re.findall(r"\((0010,0010|0010,0020|0008,0050)\) \w\w (?:\[([^\]]*)\]|\(no value available\))", answers)
    return sorted((tag, value.strip()) for tag, value in found)


def find(server, *keys, worklist=False):
    args = [dcmtk("findscu"), "-v", "-aet", "FINDV2", "-aec", SCP_AET, "127.0.0.1", str(server.dicom_port),
            "-W" if worklist else "-P"]
    for k in keys:
        args += ["-k", k]
    cp = run(args)
    return cp.returncode, cp.stdout + cp.stderr


def move(server, *keys):
    args = [dcmtk("movescu"), "-v", "-aet", "MOVESCU", "-aec", SCP_AET, "-aem", "STORESCP", "-S",
            "127.0.0.1", str(server.dicom_port), "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + STUDY]
    for k in keys:
        args += ["-k", k]
    cp = run(args)
    out = cp.stdout + cp.stderr
    final = re.findall(r"Received Final Move Response \(([^)]*)\)", out)
    return cp.returncode, final, out


def commitment(scu, modality, instances, wait=True):
    """Ask ``modality`` (through ``scu``) for a storage commitment of ``instances``; its report as
    the SCU sees it, or its ID if not ``wait``."""
    body = {"DicomInstances": [[sop_class, sop_instance] for sop_class, sop_instance in instances]}
    r = scu.post("/modalities/%s/storage-commitment" % modality, data=json.dumps(body))
    assert r.status_code == 200, r.text
    uid = r.json()["ID"]
    if not wait:
        return uid
    report = wait_until(lambda: (lambda j: j if j.get("Status") != "Pending" else None)(
        scu.get("/storage-commitment/" + uid).json()), timeout=90, what="storage commitment report")
    seen = {k: report.get(k) for k in ("Status", "Success", "Failures", "RemoteAET")}
    seen["Failures"] = [{k: f.get(k) for k in ("SOPClassUID", "SOPInstanceUID", "FailureReason")}
                        for f in seen["Failures"] or []]   # without Orthanc's description of the reason
    return seen


def exercise(server, scu, modality, storescp):
    """Everything the peers of ``server`` (running SCRIPT) see, and what its callbacks logged."""
    seen = {}
    # C-FIND
    code, out = find(server, "QueryRetrieveLevel=PATIENT", "PatientID=PY*", "PatientName")
    seen["find"] = (code, tags(out), re.findall(r"Received Final Find Response \(([^)]*)\)", out))
    seen["find-logged"] = logged(server, "C-FIND2")[-1]
    # worklist
    code, out = find(server, "PatientName", "PatientID", "AccessionNumber", worklist=True)
    seen["worklist"] = (code, tags(out), re.findall(r"Received Final Find Response \(([^)]*)\)", out))
    seen["worklist-logged"] = logged(server, "WORKLIST2")[-1]
    # C-MOVE: the sub-operations reach the storescp
    for m in CT:
        server.upload(os.path.join(TESTDATA, m["_file"]))
    code, final, out = move(server)
    wait_until(lambda: len(storescp.files()) == 3, timeout=90, what="3 files received by storescp")
    server.wait_for_log(r"driver freed after 3 sub-operations", timeout=60)
    seen["move"] = (code, final, len(storescp.files()),
                    re.findall(r"Received Move Response \d+ \(([^)]*)\)", out)[-1:])
    request = logged(server, "C-MOVE3")[-1]
    request["request"].pop("OriginatorID")   # the SCU's message ID (its type is logged)
    seen["move-logged"] = request
    # storage commitment: a second Orthanc asks
    seen["commitment"] = commitment(scu, modality, [(m["SOPClassUID"], m["SOPInstanceUID"]) for m in CT[:2]])
    seen["commitment-logged"] = logged(server, "COMMITMENT2")[-1]
    return seen


def expected_seen():
    conn = {"RemoteAet": "FINDV2", "RemoteIp": "127.0.0.1", "CalledAet": SCP_AET}
    return {
        "find": (0, [("0010,0010", "FROM^FINDV2"), ("0010,0010", "FROM^FINDV2"),
                     ("0010,0020", "PY-0"), ("0010,0020", "PY-1")], ["Success"]),
        "find-logged": {"connection": conn,
                        "query": {"PatientID": "PY*", "PatientName": "", "QueryRetrieveLevel": "PATIENT"}},
        "worklist": (0, [("0008,0050", SCP_AET), ("0010,0010", "WORK^LIST"), ("0010,0020", "WL-1")], ["Success"]),
        "worklist-logged": {"connection": conn},
        "move": (0, ["Success"], 3, ["Pending"]),
        "move-logged": {"connection": dict(conn, RemoteAet="MOVESCU"), "OriginatorIDType": "int",
                        "request": {"Level": "STUDY", "PatientID": "", "AccessionNumber": "", "StudyInstanceUID": STUDY,
                                    "SeriesInstanceUID": "", "SOPInstanceUID": "", "TargetAET": "STORESCP"}},
        "commitment": {"Status": "Failure",   # the second instance is unknown to the handler
                       "Success": [{"SOPClassUID": CT[0]["SOPClassUID"], "SOPInstanceUID": CT[0]["SOPInstanceUID"]}],
                       "Failures": [{"SOPClassUID": CT[1]["SOPClassUID"], "SOPInstanceUID": CT[1]["SOPInstanceUID"],
                                     "FailureReason": 0x0112}],   # DICOM's code for NO_SUCH_OBJECT_INSTANCE
                       "RemoteAET": SCP_AET},
        "commitment-logged": {"connection": dict(conn, RemoteAet=SCU_AET),
                              "classes": [m["SOPClassUID"] for m in CT[:2]],
                              "instances": [m["SOPInstanceUID"] for m in CT[:2]]},
    }


def assert_same(seen, expected):
    """Item by item, so that a difference shows whole."""
    assert sorted(seen) == sorted(expected)
    for key in expected:
        assert seen[key] == expected[key], key


def start_scp(orthanc_server, script, tmp_path, name, scu_port, plugin=None):
    storescp = StoreScp(str(tmp_path / ("received-" + name)))
    kw = {"plugin": plugin} if plugin else {}
    try:
        server = orthanc_server(script=script, config=scp_config(storescp.port, scu_port), **kw)
    except BaseException:
        storescp.stop()
        raise
    return server, storescp


def start_scu(orthanc_server):
    """The storage commitment SCU, a second Orthanc (its SCPs are added by :func:`add_scp`)."""
    return orthanc_server(config={"DicomAet": SCU_AET})


def add_scp(scu, name, server):
    r = scu.put("/modalities/" + name, data=json.dumps({"AET": SCP_AET, "Host": "127.0.0.1",
                                                         "Port": server.dicom_port}))
    assert r.status_code == 200, r.text


def test_scp_v2_handlers_through_dcmtk_and_a_second_orthanc(orthanc_server, write_script, tmp_path):
    """pythanc: the peers see the answers; the callbacks see the identifiers and the connection
    (calling AET, 127.0.0.1, called AET); exceptions are logged with the script's traceback and the
    peer gets a failure; the connections raise a clear error after their callbacks; the versions 1
    registered after the versions 2 raise RuntimeError naming both."""
    path = write_script(SCRIPT + PYTHANC_ONLY, "scp_v2.py")
    scu = start_scu(orthanc_server)
    server, storescp = start_scp(orthanc_server, path, tmp_path, "py", scu.dicom_port)
    try:
        add_scp(scu, "PY", server)
        assert_same(exercise(server, scu, "PY", storescp), expected_seen())
        # the connections after their callbacks
        kept = server.get("/kept").json()
        assert kept.pop("types") == ["DicomConnection"]
        assert sorted(kept) == ["commitment", "find", "move", "worklist"]
        for name, value in kept.items():
            assert value.startswith("OrthancException: This orthanc.DicomConnection is no longer valid"), (name, value)
        # exceptions: logged with the script's traceback, the peer gets a failure, Orthanc serves on
        code, out = find(server, "QueryRetrieveLevel=PATIENT", "PatientID=BOOM")
        assert "Failed: UnableToProcess" in out, out
        assert_user_only(block(server, "Error in the Python C-FIND SCP callback (v2), traceback:"), path,
                         line_of(SCRIPT, "# FIND-RAISE"), "RuntimeError: deliberate failure in the C-FIND callback (v2)")
        code, out = find(server, "PatientName=BOOM", worklist=True)
        assert "Failed: UnableToProcess" in out, out
        assert_user_only(block(server, "Error in the Python C-FIND SCP for worklist callback (v2), traceback:"),
                         path, line_of(SCRIPT, "# WORKLIST-RAISE"),
                         "RuntimeError: deliberate failure in the worklist callback (v2)")
        code, final, out = move(server, "PatientID=BOOM-CREATE")
        assert final and final != ["Success"], out
        assert_user_only(block(server, "Error in the Python C-MOVE SCP callback (Create v3), traceback:"), path,
                         line_of(SCRIPT, "# CREATE-RAISE"),
                         "RuntimeError: deliberate failure in the C-MOVE create callback (v3)")
        code, final, out = move(server, "PatientID=BOOM-APPLY")
        assert final == ["Warning: SubOperationsCompleteOneOrMoreFailures"] or (final and "Fail" in final[0]), out
        server.wait_for_log(r"deliberate failure in the C-MOVE apply callback")
        server.wait_for_log(r"driver freed after 0 sub-operations")
        # a failing factory fails Orthanc's storage commitment job: no report is sent, the SCU's stays
        # pending (never a success)
        uid = commitment(scu, "PY", [("1.2.840.10008.5.1.4.1.1.2", "1.2.3.999")], wait=False)
        failed = wait_until(lambda: [j for j in server.get("/jobs?expand").json()
                                     if j["Type"] == "StorageCommitmentScp" and j["State"] == "Failure"],
                            timeout=90, what="the failed storage commitment job")
        assert len(failed) == 1, failed
        assert scu.get("/storage-commitment/" + uid).json()["Status"] != "Success"
        assert_user_only(block(server, "Error in the Python storage commitment SCP callback (v2), traceback:"),
                         path, line_of(SCRIPT, "# SCP-RAISE"),
                         "RuntimeError: deliberate failure in the storage commitment SCP callback (v2)")
        assert_serving(server)
        # after all that, the handlers still answer
        assert find(server, "QueryRetrieveLevel=PATIENT", "PatientID=PY*", "PatientName")[0] == 0
        # the versions 1 after the versions 2: RuntimeError naming both
        log = server.log()
        for v1, v2 in [("RegisterFindCallback", "RegisterFindCallback2"),
                       ("RegisterWorklistCallback", "RegisterWorklistCallback2"),
                       ("RegisterMoveCallback", "RegisterMoveCallback3"),
                       ("RegisterMoveCallback2", "RegisterMoveCallback3"),
                       ("RegisterStorageCommitmentScpCallback", "RegisterStorageCommitmentScpCallback2")]:
            assert re.search(r"MIXED %s: orthanc\.%s\(\) cannot be used in an Orthanc run where orthanc\.%s\(\) was "
                             r"called: " % (v1, v1, v2), log), (v1, log[-3000:])
    finally:
        storescp.stop()


def test_versions_1_then_2_raise_naming_both(orthanc_server, write_script):
    server = orthanc_server(script=write_script(V1_THEN_V2))
    server.wait_for_log(r"MIXED done")
    log = server.log()
    for v2, v1 in [("RegisterFindCallback2", r"orthanc\.RegisterFindCallback\(\)"),
                   ("RegisterWorklistCallback2", r"orthanc\.RegisterWorklistCallback\(\)"),
                   ("RegisterMoveCallback3", r"orthanc\.RegisterMoveCallback\(\) or orthanc\.RegisterMoveCallback2\(\)"),
                   ("RegisterStorageCommitmentScpCallback2", r"orthanc\.RegisterStorageCommitmentScpCallback\(\)")]:
        assert re.search(r"MIXED %s: orthanc\.%s\(\) cannot be used in an Orthanc run where %s was called: "
                         % (v2, v2, v1), log), (v2, log[-3000:])
    assert "accepted" not in log
    assert_serving(server)


def test_parity_with_the_official_plugin(orthanc_server, write_script, tmp_path):
    """The same script under the official plugin 7.1 and under pythanc: findscu, movescu's
    storescp and the storage commitment SCU see the same, and the callbacks the same values."""
    official = official_plugin()
    path = write_script(SCRIPT, "scp_v2_parity.py")
    scu = start_scu(orthanc_server)
    storescps = []
    try:
        py, py_scp = start_scp(orthanc_server, path, tmp_path, "py", scu.dicom_port)
        storescps.append(py_scp)
        off, off_scp = start_scp(orthanc_server, path, tmp_path, "official", scu.dicom_port, plugin=official)
        storescps.append(off_scp)
        assert "Python plugin is initializing" in off.log() and "(pythanc, Python" not in off.log()
        add_scp(scu, "PY", py)
        add_scp(scu, "OFFICIAL", off)
        seen_official = exercise(off, scu, "OFFICIAL", off_scp)
        seen_pythanc = exercise(py, scu, "PY", py_scp)
        assert_same(seen_pythanc, seen_official)
        assert_same(seen_pythanc, expected_seen())
    finally:
        for storescp in storescps:
            storescp.stop()
