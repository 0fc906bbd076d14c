"""The one script that both plugins run during the benchmark (bench/run.py).

It only uses names that exist in the official plugin 4.0, so the same file runs unchanged on
the official plugin (4.0, 5.0, 7.1) and on pythanc.  Every route lives under /bench/.
"""

import json
import sys
import threading
import time

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


# 6. onchange-drain: count NEW_INSTANCE changes, and when the last one arrived (time.monotonic(),
#    CLOCK_MONOTONIC: the same clock as bench/run.py's on this machine).
_changes_lock = threading.Lock()
_changes = {'new_instance': 0, 'last_at': None}


def OnChange(changeType, level, resourceId):
    if changeType == orthanc.ChangeType.NEW_INSTANCE:
        with _changes_lock:
            _changes['new_instance'] += 1
            _changes['last_at'] = time.monotonic()


orthanc.RegisterOnChangeCallback(OnChange)


def OnCounters(output, uri, **request):
    with _stored_lock:
        stored = dict(_stored)
    with _changes_lock:
        changes = dict(_changes)
    answer = {'stored': stored['count'], 'stored_errors': stored['errors'],
              'new_instance': changes['new_instance'], 'last_new_instance_at': changes['last_at']}
    output.AnswerBuffer(json.dumps(answer, sort_keys=True), 'application/json')


orthanc.RegisterRestCallback('/bench/counters', OnCounters)


# 7. which Python runs the script (the harness records it for each plugin configuration).
def OnPython(output, uri, **request):
    output.AnswerBuffer(json.dumps({'version': sys.version.split()[0]}), 'application/json')


orthanc.RegisterRestCallback('/bench/python', OnPython)


# 8. large bodies: POST a body, answered with its length; GET ?mb=N answers N MB (made once per
# size, so that the figure is the transfer, not the allocation; ?prepare=1 makes it and answers
# 'prepared', so that the harness measures the RSS of the transfer only).
def OnBodyLength(output, uri, **request):
    output.AnswerBuffer(str(len(request['body'])), 'text/plain')


orthanc.RegisterRestCallback('/bench/body-length', OnBodyLength)

_big_lock = threading.Lock()
_big = {}


def OnBigAnswer(output, uri, **request):
    size = int(request['get'].get('mb', '64')) * 1024 * 1024
    with _big_lock:
        body = _big.get(size)
        if body is None:
            body = _big[size] = b'x' * size
    if 'prepare' in request['get']:
        output.AnswerBuffer('prepared', 'text/plain')
    else:
        output.AnswerBuffer(body, 'application/octet-stream')


orthanc.RegisterRestCallback('/bench/big-answer', OnBigAnswer)


# 9. worker processes (measured for pythanc only): the trivial route, and RestApiGet of a native
# route's answer (?id= an instance whose file is ~1 MB; answered with the length), each both in
# Orthanc's process and in a worker where the plugin accepts worker=True (the official plugin:
# TypeError, so in-process there too).
def OnApiGetFile(output, uri, **request):
    answer = orthanc.RestApiGet('/instances/%s/file' % request['get']['id'])
    output.AnswerBuffer(str(len(answer)), 'text/plain')


orthanc.RegisterRestCallback('/bench/apiget-file', OnApiGetFile)
try:
    orthanc.RegisterRestCallback('/bench/worker-trivial', OnRest, worker=True)
    orthanc.RegisterRestCallback('/bench/worker-apiget-file', OnApiGetFile, worker=True)
except TypeError:
    orthanc.RegisterRestCallback('/bench/worker-trivial', OnRest)
    orthanc.RegisterRestCallback('/bench/worker-apiget-file', OnApiGetFile)
