"""The one script that both plugins run during the benchmark (bench/run.py).

It only uses names that exist in the official plugin 4.0, so the same file runs unchanged on
the official plugin and on pythanc.  Every route lives under /bench/.
"""

import json
import threading

import orthanc


# 1. rest-trivial: the seed's OnRest, without its prints.
def OnRest(output, uri, **request):
    output.AnswerBuffer('ok\n', 'text/plain')


orthanc.RegisterRestCallback('/bench/trivial', OnRest)


# 2. rest-kwargs (and 8. memory): a regex group, a query string and headers, answered as JSON.
def OnKwargs(output, uri, **request):
    answer = {
        'method': request['method'],
        'groups': list(request['groups']),
        'get': request['get'],
        'headers': request['headers'],
    }
    output.AnswerBuffer(json.dumps(answer, sort_keys=True), 'application/json')


orthanc.RegisterRestCallback('/bench/kwargs/(.*)', OnKwargs)


# 3. rest-apicall: one SDK call per request.
def OnApiCall(output, uri, **request):
    output.AnswerBuffer(orthanc.RestApiGet('/system'), 'application/json')


orthanc.RegisterRestCallback('/bench/apicall', OnApiCall)


# 4. cpu-concurrency: pure-Python work; the amount (?n=) is chosen by the harness, the same for both.
def OnCpu(output, uri, **request):
    n = int(request['get'].get('n', '1000000'))
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    output.AnswerBuffer(str(acc), 'text/plain')


orthanc.RegisterRestCallback('/bench/cpu', OnCpu)

# 4b. cpu-workers: the same callback where the plugin can run it in worker processes (pythanc's
# keyword-only worker=True); the official plugin has no such keyword (TypeError) and runs it in
# Orthanc's process, as /bench/cpu.
try:
    orthanc.RegisterRestCallback('/bench/cpu-worker', OnCpu, worker=True)
except TypeError:
    orthanc.RegisterRestCallback('/bench/cpu-worker', OnCpu)


# 5. ingest-onstored: read the instance's simplified JSON and one metadata.
_stored_lock = threading.Lock()
_stored = {'count': 0, 'errors': 0}


def OnStoredInstance(dicom, instanceId):
    ok = True
    try:
        tags = json.loads(dicom.GetInstanceSimplifiedJson())
        syntax = dicom.GetInstanceMetadata('TransferSyntax')
        ok = bool(tags.get('SOPInstanceUID')) and bool(syntax)
    except Exception:
        ok = False
    with _stored_lock:
        _stored['count'] += 1
        if not ok:
            _stored['errors'] += 1


orthanc.RegisterOnStoredInstanceCallback(OnStoredInstance)


# 6. onchange-drain: count NEW_INSTANCE changes.
_changes_lock = threading.Lock()
_changes = {'new_instance': 0}


def OnChange(changeType, level, resourceId):
    if changeType == orthanc.ChangeType.NEW_INSTANCE:
        with _changes_lock:
            _changes['new_instance'] += 1


orthanc.RegisterOnChangeCallback(OnChange)


def OnCounters(output, uri, **request):
    with _stored_lock:
        stored = dict(_stored)
    with _changes_lock:
        changes = dict(_changes)
    answer = {'stored': stored['count'], 'stored_errors': stored['errors'],
              'new_instance': changes['new_instance']}
    output.AnswerBuffer(json.dumps(answer, sort_keys=True), 'application/json')


orthanc.RegisterRestCallback('/bench/counters', OnCounters)
