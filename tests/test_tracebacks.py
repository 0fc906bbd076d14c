"""Tracebacks in Orthanc's log (issue 16, part 2): an exception of the script shows the frames of
the script and the exception, under the official plugin's first line, and nothing of pythanc (its
dispatchers, the generated wrappers, its loader, importlib's frozen bootstrap); with PythonVerbose,
the full traceback (checked in the same tests)."""

import os
import re
import subprocess

import pythanc
from pythanc.testing import free_port

from test_callbacks_more import dcmtk

PACKAGE = os.path.dirname(os.path.abspath(pythanc.__file__))

# What a filtered traceback never shows: pythanc's files and source lines, importlib's bootstrap.
FORBIDDEN = [PACKAGE, os.sep + "pythanc" + os.sep, "_generated", "frozen importlib", "<frozen",
             "_check(", "_lib.", "exec_module", "callback(out, uri", "log_exception", "c_entry"]

# The start of a line of Orthanc 1.10's log ("E0530 12:34:56.789012 PluginsManager.cpp:153] ")
LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ")


def blocks(server, first_line, count=1, timeout=30):
    """The messages of the log whose first line ends with ``first_line`` (at least ``count``), each
    with its following lines, up to the next line of Orthanc's log."""
    server.wait_for_log(re.escape(first_line), count=count, timeout=timeout)
    lines = server.log().splitlines()
    found = []
    for start, line in enumerate(lines):
        if line.endswith(first_line) and LOG_LINE.match(line):
            out = [line]
            for following in lines[start + 1:]:
                if LOG_LINE.match(following):
                    break
                out.append(following)
            found.append("\n".join(out))
    return found


def block(server, first_line, timeout=30):
    return blocks(server, first_line, timeout=timeout)[0]


def line_of(script_text, marker):
    """The line number (1-based) of the line of ``script_text`` holding ``marker``."""
    return next(i + 1 for i, line in enumerate(script_text.splitlines()) if marker in line)


def assert_user_only(text, path, line, exception):
    """``text`` shows the script's file and line and the exception, and nothing of pythanc."""
    assert 'File "%s", line %d' % (path, line) in text, text
    assert exception in text, text
    for word in FORBIDDEN:
        assert word not in text, "%r in:\n%s" % (word, text)


def assert_full(text, path, line, *pythanc_files):
    """With PythonVerbose: the full traceback, pythanc's frames included."""
    assert 'File "%s", line %d' % (path, line) in text, text
    for f in pythanc_files:
        assert 'File "%s"' % os.path.join(PACKAGE, *f.split("/")) in text, "%s not in:\n%s" % (f, text)


def file_lines(text):
    return re.findall(r'^\s*File "([^"]+)", line (\d+)', text, re.M)


REST = '''\
import orthanc

def helper(n):
    raise ValueError("deliberate failure %d" % n)  # RAISE

def OnRest(output, uri, **request):
    helper(42)  # CALL

orthanc.RegisterRestCallback("/boom", OnRest)
'''


def test_rest_callback(orthanc_server, write_script):
    path = write_script(REST, "rest_tb.py")
    server = orthanc_server(script=path)
    assert server.get("/boom").status_code == 500
    text = block(server, "Error in the REST callback, traceback:")
    assert_user_only(text, path, line_of(REST, "# RAISE"), "ValueError: deliberate failure 42")
    assert file_lines(text) == [(path, str(line_of(REST, "# CALL"))), (path, str(line_of(REST, "# RAISE")))]
    # PythonVerbose: everything
    server = orthanc_server(script=path, config={"PythonVerbose": True})
    assert server.get("/boom").status_code == 500
    assert_full(block(server, "Error in the REST callback, traceback:"), path, line_of(REST, "# RAISE"),
                "callbacks/rest.py")


REST_API_CALL = '''\
import orthanc

def OnRest(output, uri, **request):
    orthanc.RestApiGet("/no/such/uri")  # CALL
    output.AnswerBuffer("unreachable", "text/plain")

orthanc.RegisterRestCallback("/calls-orthanc", OnRest)
'''


def test_orthanc_call_ends_on_the_users_line(orthanc_server, write_script):
    path = write_script(REST_API_CALL, "api_tb.py")
    server = orthanc_server(script=path)
    assert server.get("/calls-orthanc").status_code == 500
    text = block(server, "Error in the REST callback, traceback:")
    assert_user_only(text, path, line_of(REST_API_CALL, "# CALL"), "orthanc.OrthancException: (17, ")
    # the script's line that called orthanc.RestApiGet is the last frame, followed by its source
    assert file_lines(text)[-1] == (path, str(line_of(REST_API_CALL, "# CALL")))
    assert text.splitlines()[-1].startswith("orthanc.OrthancException: (17, ")


CHANGE = '''\
import orthanc

def OnChange(change_type, level, resource):
    if change_type == orthanc.ChangeType.ORTHANC_STARTED:
        raise KeyError("deliberate failure in the change callback")  # RAISE

orthanc.RegisterOnChangeCallback(OnChange)
'''


def test_on_change_callback(orthanc_server, write_script):
    path = write_script(CHANGE, "change_tb.py")
    server = orthanc_server(script=path)
    text = block(server, "Error in the Python on-change callback, traceback:")
    assert_user_only(text, path, line_of(CHANGE, "# RAISE"), "KeyError: 'deliberate failure in the change callback'")


STORED = '''\
import orthanc

def OnStored(instance, instance_id):
    size = instance.GetInstanceSize()
    raise RuntimeError("deliberate failure for %d bytes" % size)  # RAISE

orthanc.RegisterOnStoredInstanceCallback(OnStored)
'''


def test_on_stored_instance_callback(orthanc_server, write_script, testdata):
    path = write_script(STORED, "stored_tb.py")
    server = orthanc_server(script=path)
    server.upload(testdata("ct-a1-1.dcm"))
    text = block(server, "Error in the Python on-stored-instance callback, traceback:")
    assert_user_only(text, path, line_of(STORED, "# RAISE"), "RuntimeError: deliberate failure for ")


FILTER = '''\
import orthanc

def Filter(uri, **request):
    if uri == "/filter-boom":
        raise TypeError("deliberate failure in the filter")  # RAISE
    return True

orthanc.RegisterIncomingHttpRequestFilter(Filter)
'''


def test_http_filter(orthanc_server, write_script):
    path = write_script(FILTER, "filter_tb.py")
    server = orthanc_server(script=path)
    assert server.get("/filter-boom").status_code == 500
    text = block(server, "Error in the Python incoming-http-request filter, traceback:")
    assert_user_only(text, path, line_of(FILTER, "# RAISE"), "TypeError: deliberate failure in the filter")


WORKER = '''\
import orthanc

def OnRest(output, uri, **request):
    if uri == "/worker-api":
        orthanc.RestApiGet("/no/such/uri")  # CALL
    raise ValueError("deliberate failure in a worker")  # RAISE

orthanc.RegisterRestCallback("/worker-(boom|api)", OnRest, worker=True)
'''


def test_worker_rest_callback(orthanc_server, write_script):
    path = write_script(WORKER, "worker_tb.py")
    server = orthanc_server(script=path, config={"Python": {"Workers": 1}})
    assert server.get("/worker-boom").status_code == 500
    text = block(server, "Error in the REST callback, traceback:", timeout=60)
    assert_user_only(text, path, line_of(WORKER, "# RAISE"), "ValueError: deliberate failure in a worker")
    assert re.search(r"^In the worker process \d+:$", text, re.M), text
    assert "WorkerError" not in text
    # an orthanc.* call forwarded to Orthanc's process: the script's line is the last frame
    assert server.get("/worker-api").status_code == 500
    text = blocks(server, "Error in the REST callback, traceback:", count=2)[1]
    assert_user_only(text, path, line_of(WORKER, "# CALL"), "orthanc.OrthancException: (17, ")
    assert file_lines(text)[-1] == (path, str(line_of(WORKER, "# CALL")))
    # PythonVerbose: everything, in both processes
    server = orthanc_server(script=path, config={"PythonVerbose": True, "Python": {"Workers": 1}})
    assert server.get("/worker-boom").status_code == 500
    assert_full(block(server, "Error in the REST callback, traceback:", timeout=60), path,
                line_of(WORKER, "# RAISE"), "callbacks/rest.py", "workers/pool.py", "workers/worker.py")


FIND = '''\
import orthanc

def OnFind(answers, query, issuer_aet, called_aet):
    raise LookupError("deliberate failure in C-FIND")  # RAISE

orthanc.RegisterFindCallback(OnFind)
'''


def test_cfind_callback(orthanc_server, write_script):
    path = write_script(FIND, "find_tb.py")
    server = orthanc_server(script=path, config={"DicomModalities": {
        "FINDSCU": ["FINDSCU", "127.0.0.1", free_port()]}})
    cp = subprocess.run([dcmtk("findscu"), "-v", "-aet", "FINDSCU", "-aec", "ORTHANC", "127.0.0.1",
                         str(server.dicom_port), "-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID"],
                        capture_output=True, text=True, timeout=60)
    assert "Failed" in cp.stdout + cp.stderr
    text = block(server, "Error in the Python C-FIND SCP callback, traceback:")
    assert_user_only(text, path, line_of(FIND, "# RAISE"), "LookupError: deliberate failure in C-FIND")


LOAD_FAILURE = '''\
import orthanc

def configure():
    raise RuntimeError("cannot start")  # RAISE

configure()  # CALL
'''


def test_script_failing_at_load(orthanc_server, write_script):
    path = write_script(LOAD_FAILURE, "load_tb.py")
    server = orthanc_server(script=path, wait=False)
    assert server.wait_exit(60) != 0
    text = block(server, "Error during the installation of the Python script, traceback:")
    assert_user_only(text, path, line_of(LOAD_FAILURE, "# RAISE"), "RuntimeError: cannot start")
    assert file_lines(text) == [(path, str(line_of(LOAD_FAILURE, "# CALL"))),
                                (path, str(line_of(LOAD_FAILURE, "# RAISE")))]
    # PythonVerbose: everything
    server = orthanc_server(script=path, config={"PythonVerbose": True}, wait=False)
    assert server.wait_exit(60) != 0
    text = block(server, "Error during the installation of the Python script, traceback:")
    assert_full(text, path, line_of(LOAD_FAILURE, "# RAISE"), "lifecycle/plugin.py", "lifecycle/scripts.py")
    assert 'File "<frozen importlib._bootstrap' in text, text


SYNTAX_ERROR = '''\
import orthanc

def broken(:
    pass
'''


def test_script_with_a_syntax_error(orthanc_server, write_script):
    path = write_script(SYNTAX_ERROR, "syntax_tb.py")
    server = orthanc_server(script=path, wait=False)
    assert server.wait_exit(60) != 0
    text = block(server, "Error during the installation of the Python script, traceback:")
    assert_user_only(text, path, 3, "SyntaxError: ")
    assert "def broken(:" in text
