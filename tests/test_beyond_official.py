# SPDX-License-Identifier: GPL-3.0-or-later
"""The SDK callbacks that the official plugin (7.1) does not wrap, against a real Orthanc 1.13:
``RegisterHttpAuthentication`` driven by real HTTP requests (what the client sees: 200, 401, 403,
307; several callbacks; a callback that raises or answers nonsense refuses, and Orthanc goes on
serving), and ``RegisterAuditLogHandler`` receiving the audit logs of real actions
(``orthanc.EmitAuditLog`` from a REST route; several handlers; one that raises)."""

import json

from pythanc.testing import wait_until

from conftest import needs_sdk, SDK_FUNCTIONS

AUTH = r'''
import json, orthanc
S = orthanc.HttpAuthenticationStatus
calls = {"first": 0, "second": 0}

def First(uri, ip, headers, get):
    calls["first"] += 1
    if uri in ("/system", "/calls"):
        return S.GRANTED
    if uri.startswith("/private-app/"):
        return (S.REDIRECT, "/app/explorer.html")
    if get.get("raise") == "1":
        raise RuntimeError("deliberate failure in the authentication")
    if get.get("nonsense") == "1":
        return "yes"
    token = headers.get("authorization")
    if token == "Bearer first-denies":
        return S.UNAUTHORIZED
    if token in ("Bearer good", "Bearer second-denies") or get.get("token") == "good":
        return (S.GRANTED, "user-" + ip)
    if token == "Bearer bad":
        return S.FORBIDDEN
    return S.UNAUTHORIZED

def Second(uri, ip, headers, get):
    calls["second"] += 1
    if headers.get("authorization") in ("Bearer second-denies", "Bearer first-denies"):
        return S.FORBIDDEN
    return S.GRANTED

orthanc.RegisterHttpAuthentication(First)
orthanc.RegisterHttpAuthentication(Second)
orthanc.RegisterRestCallback("/calls", lambda output, uri, **r: output.AnswerBuffer(json.dumps(calls),
                                                                                  "application/json"))

def WhoAmI(output, uri, **request):
    payload = request.get("authenticationPayload")
    output.AnswerBuffer(json.dumps({"payload": None if payload is None else payload.decode(),
                                    "keys": sorted(request)}), "application/json")
orthanc.RegisterRestCallback("/whoami", WhoAmI)
'''


@needs_sdk("OrthancPluginRegisterHttpAuthentication")
def test_http_authentication(orthanc_server, write_script):
    # Orthanc's own authentication is on: the Python callbacks replace it
    server = orthanc_server(script=write_script(AUTH), config={
        "AuthenticationEnabled": True, "RegisteredUsers": {"alice": "secret"}})
    good = {"Authorization": "Bearer good"}
    assert server.get("/patients", headers=good).status_code == 200
    assert server.get("/patients", params={"token": "good"}).status_code == 200
    assert server.get("/patients").status_code == 401
    # Orthanc's registered users no longer count
    assert server.get("/patients", auth=("alice", "secret")).status_code == 401
    assert server.get("/patients", headers={"Authorization": "Bearer bad"}).status_code == 403
    # the payload of the callback that granted reaches the REST callback of the request
    r = server.get("/whoami", headers=good)
    assert r.status_code == 200 and r.json()["payload"] == "user-127.0.0.1"
    assert server.get("/whoami", params={"token": "good"}).json() == {
        "payload": "user-127.0.0.1", "keys": ["authenticationPayload", "get", "groups", "headers", "method"]}
    # the first callback that does not grant decides, and the later ones are not called
    before = server.get("/calls").json()
    assert server.get("/patients", headers={"Authorization": "Bearer first-denies"}).status_code == 401
    after = server.get("/calls").json()
    assert after["first"] - before["first"] == 2 and after["second"] - before["second"] == 1  # (/calls itself)
    # every callback must grant
    assert server.get("/patients", headers={"Authorization": "Bearer second-denies"}).status_code == 403
    # a redirection, relative to Orthanc's root
    r = server.get("/private-app/index.html", allow_redirects=False)
    assert r.status_code == 307
    assert r.headers["Location"].endswith("/app/explorer.html")
    # a callback that raises, or answers nonsense, refuses the request (the C entry point answers
    # Orthanc an error, and Orthanc 1.13 answers 500), with the traceback in the log; Orthanc goes
    # on serving
    r = server.get("/patients", params={"raise": "1"}, headers=good)
    assert r.status_code == 500, r.status_code
    log = server.wait_for_log(r"Error in the Python HTTP authentication callback, traceback:[\s\S]*?"
                              r"deliberate failure in the authentication")
    assert log
    r = server.get("/patients", params={"nonsense": "1"}, headers=good)
    assert r.status_code == 500, r.status_code
    server.wait_for_log(r"has not returned an orthanc.HttpAuthenticationStatus")
    assert server.get("/patients", headers=good).status_code == 200
    assert server.alive()


AUTH_LATE = r'''
import orthanc, threading
errors = []
def late():
    try:
        orthanc.RegisterHttpAuthentication(lambda uri, **kw: orthanc.HttpAuthenticationStatus.GRANTED)
    except RuntimeError as e:
        orthanc.LogWarning("late registration refused: %s" % e)
orthanc.RegisterRestCallback("/late", lambda output, uri, **r: (late(), output.AnswerBuffer("ok", "text/plain")))
'''


@needs_sdk("OrthancPluginRegisterHttpAuthentication")
def test_http_authentication_registered_late_is_refused(orthanc_server, write_script):
    server = orthanc_server(script=write_script(AUTH_LATE))
    assert server.get("/late").status_code == 200
    server.wait_for_log(r"late registration refused: orthanc.RegisterHttpAuthentication\(\) was called after")
    assert server.get("/patients").status_code == 200   # no authentication callback was installed


def test_http_authentication_argument_checked(orthanc_server, write_script):
    script = r'''
import orthanc
if hasattr(orthanc, "RegisterHttpAuthentication"):
    try:
        orthanc.RegisterHttpAuthentication(42)
    except TypeError as e:
        orthanc.LogWarning("refused: %s" % e)
else:
    orthanc.LogWarning("refused: absent")
'''
    server = orthanc_server(script=write_script(script))
    server.wait_for_log(r"refused: (Expected a callback function|absent)")


AUDIT = r'''
import json, orthanc
entries = []
second = []

def Handler(sourcePlugin, userId, resourceType, resourceId, action, logData):
    entries.append([sourcePlugin, userId, resourceType, resourceId, action, logData.decode("latin-1"),
                    type(logData).__name__])
    if action == "raise":
        raise ValueError("deliberate failure in the audit log handler")

orthanc.RegisterAuditLogHandler(Handler)
orthanc.RegisterAuditLogHandler(lambda *args: second.append(args[4]))

def Emit(output, uri, **request):
    b = json.loads(request["body"])
    orthanc.EmitAuditLog(b["source"], b["user"], b["type"], b["id"], b["action"], b["data"].encode("latin-1"))
    output.AnswerBuffer("emitted", "text/plain")

def Entries(output, uri, **request):
    output.AnswerBuffer(json.dumps({"entries": entries, "second": second}), "application/json")

orthanc.RegisterRestCallback("/emit", Emit)
orthanc.RegisterRestCallback("/entries", Entries)
'''


@needs_sdk("OrthancPluginRegisterAuditLogHandler", "OrthancPluginEmitAuditLog")
def test_audit_log_handler(orthanc_server, write_script):
    server = orthanc_server(script=write_script(AUDIT))
    r = server.post("/emit", data=json.dumps({"source": "my-plugin", "user": "alice", "type": 1,
                                              "id": "6e2c0ec2-5d99bb1f-e2ea8ee1-7cc0e4e8-36f2a8c5",
                                              "action": "viewed", "data": "{\"why\": 1}\x00\xff"}))
    assert r.status_code == 200 and r.text == "emitted"
    got = server.get("/entries").json()
    assert ["my-plugin", "alice", 1, "6e2c0ec2-5d99bb1f-e2ea8ee1-7cc0e4e8-36f2a8c5", "viewed",
            "{\"why\": 1}\x00\xff", "bytes"] in got["entries"]
    assert "viewed" in got["second"]

    # a handler that raises: logged with its traceback, the other handlers still run, the emitter
    # goes on (EmitAuditLog returns nothing), Orthanc goes on serving
    r = server.post("/emit", data=json.dumps({"source": "my-plugin", "user": "bob", "type": 3, "id": "x",
                                              "action": "raise", "data": ""}))
    assert r.status_code == 200
    server.wait_for_log(r"Error in the Python audit log handler, traceback:[\s\S]*?"
                        r"deliberate failure in the audit log handler")
    got = server.get("/entries").json()
    assert ["my-plugin", "bob", 3, "x", "raise", "", "bytes"] in got["entries"]
    assert got["second"][-1] == "raise"
    assert server.get("/system").status_code == 200


def test_audit_log_handler_absent_without_sdk(orthanc_server, write_script):
    """On an SDK without audit logs, the name is absent (as the official plugin leaves out what the
    header lacks); with it, present."""
    script = r'''
import orthanc
orthanc.LogWarning("audit present: %s, authentication present: %s" % (
    hasattr(orthanc, "RegisterAuditLogHandler"), hasattr(orthanc, "RegisterHttpAuthentication")))
'''
    server = orthanc_server(script=write_script(script))
    audit = "OrthancPluginRegisterAuditLogHandler" in SDK_FUNCTIONS
    auth = "OrthancPluginRegisterHttpAuthentication" in SDK_FUNCTIONS
    server.wait_for_log(r"audit present: %s, authentication present: %s" % (audit, auth))
    wait_until(server.alive, what="Orthanc alive")



AUDIT_WORKER = r'''
import json, os, orthanc

def InWorker(sourcePlugin, userId, resourceType, resourceId, action, logData):
    orthanc.SetSharedValue("audit", [action, logData.decode(), orthanc.IsWorkerProcess(), os.getpid()])
    if action == "raise":
        raise ValueError("deliberate failure in the worker's audit log handler")

orthanc.RegisterAuditLogHandler(InWorker, worker=True)

def Emit(output, uri, **request):
    orthanc.EmitAuditLog("my-plugin", "carol", orthanc.ResourceType.STUDY, "s", request["get"]["action"], b"data")
    output.AnswerBuffer(json.dumps({"seen": orthanc.GetSharedValue("audit"), "pid": os.getpid()}),
                        "application/json")

orthanc.RegisterRestCallback("/emit-worker", Emit)
'''


@needs_sdk("OrthancPluginRegisterAuditLogHandler", "OrthancPluginEmitAuditLog")
def test_audit_log_handler_in_a_worker(orthanc_server, write_script):
    server = orthanc_server(script=write_script(AUDIT_WORKER), config={"Python": {"Workers": 1}})
    got = server.get("/emit-worker", params={"action": "viewed"}).json()
    action, data, in_worker, pid = got["seen"]
    assert (action, data, in_worker) == ("viewed", "data", True) and pid != got["pid"]
    assert server.get("/emit-worker", params={"action": "raise"}).status_code == 200
    server.wait_for_log(r"Error in the Python audit log handler, traceback:[\s\S]*?"
                        r"deliberate failure in the worker's audit log handler")
    assert server.get("/system").status_code == 200
