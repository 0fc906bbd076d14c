# SPDX-License-Identifier: GPL-3.0-or-later
"""The functions that the official plugin 7.1 has and SDK 1.12.9+/1.13 brings, each checked for what
it does in a real Orthanc: ``EmitAuditLog`` (received by ``RegisterAuditLogHandler``),
``SetCurrentThreadName`` and ``LogMessage`` (the lines in Orthanc's log, worded as under the
official plugin on the same Orthanc), ``CreateDicom2``, ``LoadDicomInstance``,
``ExtendOrthancExplorer2`` (in ``/plugins/explorer.js``) and ``SetMetricsIntegerValue`` (in
``/tools/metrics-prometheus``).  Skipped where the installed header lacks the C function."""

import json
import re

import pytest

from conftest import needs_sdk, official_plugin

SCRIPT = r'''
import json, threading, orthanc

def Answer(output, value):
    output.AnswerBuffer(json.dumps(value), "application/json")

def ThreadName(output, uri, **request):
    def run():
        orthanc.SetCurrentThreadName("py-named-thread")
        orthanc.LogWarning("message from the named thread")
    t = threading.Thread(target=run)
    t.start()
    t.join()
    Answer(output, "ok")

def LogMessage(output, uri, **request):
    orthanc.LogMessage("a message through LogMessage", "python", "my_script.py", 42,
                       orthanc.LogCategory.GENERIC, orthanc.LogLevel.WARNING)
    orthanc.LogMessage("an error through LogMessage", "python", "my_script.py", 43,
                       orthanc.LogCategory.GENERIC, orthanc.LogLevel.ERROR)
    Answer(output, "ok")

def CreateDicom2(output, uri, **request):
    tags = {"PatientID": "CREATE-DICOM-2", "PatientName": "Create^Dicom2", "Modality": "OT",
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}
    dicom = orthanc.CreateDicom2(json.dumps(tags), None, orthanc.CreateDicomFlags.GENERATE_IDENTIFIERS,
                                 "PythancCreator")
    output.AnswerBuffer(dicom, "application/dicom")

def Load(output, uri, **request):
    iid = request["get"]["id"]
    result = {}
    for name in ("WHOLE_DICOM", "UNTIL_PIXEL_DATA", "EMPTY_PIXEL_DATA"):
        mode = getattr(orthanc.LoadDicomInstanceMode, name)
        instance = orthanc.LoadDicomInstance(iid, mode)
        simplified = json.loads(instance.GetInstanceSimplifiedJson())
        result[name] = {"size": instance.GetInstanceSize(), "patient": simplified.get("PatientID"),
                        "pixels": "7fe0,0010" in json.loads(instance.GetInstanceJson())}
    try:
        orthanc.LoadDicomInstance("nonexistent", orthanc.LoadDicomInstanceMode.WHOLE_DICOM)
    except orthanc.OrthancException as e:
        result["missing"] = int(e.args[0])
    Answer(output, result)

def Emit(output, uri, **request):
    orthanc.EmitAuditLog("python", "alice", orthanc.ResourceType.INSTANCE, request["get"]["id"],
                         "exported", b"\x00binary\xff")
    Answer(output, "ok")

AUDIT = []
if hasattr(orthanc, "RegisterAuditLogHandler"):
    orthanc.RegisterAuditLogHandler(lambda *args: AUDIT.append([a if not isinstance(a, bytes) else a.hex()
                                                               for a in args]))

def Audit(output, uri, **request):
    Answer(output, AUDIT)

def Metrics(output, uri, **request):
    orthanc.SetMetricsIntegerValue("pythanc_test_integer_metric", int(request["get"]["value"]),
                                   orthanc.MetricsType.DEFAULT)
    Answer(output, "ok")

if hasattr(orthanc, "ExtendOrthancExplorer2"):          # (the functions of SDK 1.12.9+ are absent before)
    orthanc.ExtendOrthancExplorer2("python", "/* pythanc-explorer-2-marker */")
orthanc.RegisterRestCallback("/t113/thread-name", ThreadName)
orthanc.RegisterRestCallback("/t113/log-message", LogMessage)
orthanc.RegisterRestCallback("/t113/create-dicom2", CreateDicom2)
orthanc.RegisterRestCallback("/t113/load", Load)
orthanc.RegisterRestCallback("/t113/emit", Emit)
orthanc.RegisterRestCallback("/t113/audit", Audit)
orthanc.RegisterRestCallback("/t113/metrics", Metrics)
'''


@pytest.fixture
def server(orthanc_server, write_script):
    return orthanc_server(script=write_script(SCRIPT))


def _strip(line):
    """A log line without its time stamp and thread name (``W1201 14:25:53.576748 HTTP-3 file:line] ...``;
    Orthanc 1.12+ pads the thread name with blanks, 1.10 writes none)."""
    m = re.match(r"([EWI])\d{4} [\d:.]+\s+(\S+)\s+(.*)", line)
    if m is None:
        return line
    level, first, rest = m.groups()
    return "%s %s %s" % (level, first, rest) if first.endswith("]") else "%s %s" % (level, rest)


def _lines(server, pattern):
    return [_strip(x) for x in server.log().splitlines() if re.search(pattern, x)]


@needs_sdk("OrthancPluginSetCurrentThreadName")
def test_set_current_thread_name(server):
    assert server.get("/t113/thread-name").status_code == 200
    line = server.wait_for_log(r".*message from the named thread.*")[0]
    assert "py-named-thread" in line


@needs_sdk("OrthancPluginLogMessage")
def test_log_message_worded_as_official(orthanc_server, write_script, server):
    assert server.get("/t113/log-message").status_code == 200
    server.wait_for_log(r"an error through LogMessage")
    ours = _lines(server, r"through LogMessage")
    assert len(ours) == 2 and "my_script.py:42" in ours[0] and ours[0].startswith("W ") and ours[1].startswith("E ")
    official = orthanc_server(script=write_script(SCRIPT, name="official_script.py"), plugin=official_plugin())
    assert official.get("/t113/log-message").status_code == 200
    official.wait_for_log(r"an error through LogMessage")
    assert _lines(official, r"through LogMessage") == ours


@needs_sdk("OrthancPluginCreateDicom2")
def test_create_dicom2(server):
    r = server.get("/t113/create-dicom2")
    assert r.status_code == 200, r.text
    assert r.content[128:132] == b"DICM"
    iid = server.upload(r.content)["ID"]
    tags = server.get("/instances/%s/simplified-tags" % iid).json()
    assert tags["PatientID"] == "CREATE-DICOM-2" and tags["PatientName"] == "Create^Dicom2"
    assert tags["SOPInstanceUID"]                    # GENERATE_IDENTIFIERS


@needs_sdk("OrthancPluginLoadDicomInstance")
def test_load_dicom_instance(server, testdata):
    with open(testdata("ct-a1-1.dcm"), "rb") as f:
        content = f.read()
    iid = server.upload(content)["ID"]
    got = server.get("/t113/load", params={"id": iid}).json()
    patient = server.get("/instances/%s/simplified-tags" % iid).json()["PatientID"]
    assert got["WHOLE_DICOM"] == {"size": len(content), "patient": patient, "pixels": True}
    assert got["UNTIL_PIXEL_DATA"]["patient"] == patient and not got["UNTIL_PIXEL_DATA"]["pixels"]
    assert got["UNTIL_PIXEL_DATA"]["size"] < len(content)
    assert got["EMPTY_PIXEL_DATA"]["patient"] == patient
    # an unknown instance raises OrthancException (UNKNOWN_RESOURCE on Orthanc 1.13, INTERNAL_ERROR on 1.12)
    assert got["missing"] in (17, -1)


@needs_sdk("OrthancPluginEmitAuditLog", "OrthancPluginRegisterAuditLogHandler")
def test_emit_audit_log(server):
    assert server.get("/t113/emit", params={"id": "some-instance"}).status_code == 200
    assert ["python", "alice", 3, "some-instance", "exported", "0062696e617279ff"] in server.get("/t113/audit").json()


@needs_sdk("OrthancPluginExtendOrthancExplorer2")
def test_extend_orthanc_explorer2(server):
    # Orthanc serves the plugins' extensions of Orthanc Explorer at /plugins/explorer.js, each after
    # the name of its plugin (the official plugin 7.1 gives the same on Orthanc 1.13)
    r = server.get("/plugins/explorer.js")
    assert r.status_code == 200
    assert re.search(r"From plugin: python \(version [^)]*\)[\s\S]*/\* pythanc-explorer-2-marker \*/", r.text), r.text


@needs_sdk("OrthancPluginSetMetricsIntegerValue")
def test_set_metrics_integer_value(server):
    for value in (1234567, -5):
        assert server.get("/t113/metrics", params={"value": str(value)}).status_code == 200
        text = server.get("/tools/metrics-prometheus").text
        assert re.search(r"^pythanc_test_integer_metric %d\b" % value, text, re.M), text[-2000:]
