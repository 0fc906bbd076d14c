"""REST dispatch threads ("Python": {"RestThreads": N}, prelude.c): Orthanc's HTTP threads hand
REST requests to N threads of the plugin, which call Python one request after the other.  These
tests check what must hold whatever the timing: no request waits forever behind busy dispatch
threads, nested REST calls work, the threads follow the plugin's lifecycle, and bad values of the
option are fatal."""

import glob
import http.client
import threading

import pytest

from pythanc.testing import wait_until

BLOCKING_SCRIPT = r'''
import threading, orthanc

inside = []
lock = threading.Lock()
release = threading.Event()

def Block(output, uri, **request):
    with lock:
        inside.append(request["groups"][0])
    release.wait(120)           # a callback that blocks (holding no GIL) for as long as the test wants
    output.AnswerBuffer("done " + request["groups"][0], "text/plain")

def Inside(output, uri, **request):
    with lock:
        output.AnswerBuffer(str(len(inside)), "text/plain")

def Release(output, uri, **request):
    release.set()
    output.AnswerBuffer("released", "text/plain")

orthanc.RegisterRestCallback("/block/(.*)", Block)
orthanc.RegisterRestCallback("/inside", Inside)
orthanc.RegisterRestCallback("/release", Release)
'''


@pytest.mark.parametrize("rest_threads", [1, 2])
def test_more_blocked_callbacks_than_rest_threads(orthanc_server, write_script, rest_threads):
    """Four callbacks block at once with one or two dispatch threads: the requests that find every
    dispatch thread busy run on their own HTTP thread, so all four get in, and /inside answers."""
    server = orthanc_server(script=write_script(BLOCKING_SCRIPT), config={"Python": {"RestThreads": rest_threads}})
    results = {}
    clients = [threading.Thread(target=lambda i=i: results.update({i: server.get("/block/%d" % i, timeout=150).text}))
               for i in range(4)]
    try:
        for c in clients:
            c.start()
        wait_until(lambda: server.get("/inside", timeout=30).text == "4", timeout=60,
                   what="four blocking callbacks running at once")
    finally:
        server.get("/release", timeout=30)
        for c in clients:
            c.join(150)
    assert results == {i: "done %d" % i for i in range(4)}


def test_rest_callback_calling_a_python_route(orthanc_server, write_script):
    """orthanc.RestApiGetAfterPlugins of a Python route from a REST callback (which runs on a
    dispatch thread): the nested request runs on that same thread, instead of being queued for the
    other, idle, dispatch thread."""
    server = orthanc_server(script=write_script(r'''
import threading, orthanc
def Inner(output, uri, **request):
    output.AnswerBuffer("%s:%d" % (request["groups"][0], threading.get_ident()), "text/plain")
def Outer(output, uri, **request):
    me = threading.get_ident()
    answers = [orthanc.RestApiGetAfterPlugins("/inner/%d" % i).decode() for i in range(20)]
    output.AnswerBuffer(",".join(a.replace(":%d" % me, ":same") for a in answers), "text/plain")
orthanc.RegisterRestCallback("/inner/(.*)", Inner)
orthanc.RegisterRestCallback("/outer", Outer)
'''), config={"Python": {"RestThreads": 2}})
    for _ in range(5):
        assert server.get("/outer", timeout=30).text == ",".join("%d:same" % i for i in range(20))


def _rest_threads(server):
    names = []
    for comm in glob.glob("/proc/%d/task/*/comm" % server.process.pid):
        try:
            with open(comm) as f:
                names.append(f.read().strip())
        except OSError:  # the thread exited meanwhile
            pass
    return names.count("pythanc-rest")


def test_rest_threads_follow_the_plugin_lifecycle(orthanc_server, write_script):
    """RestThreads threads are started with the script, and replaced (not added to) by /tools/reset."""
    script = write_script('import orthanc\n'
                          'orthanc.RegisterRestCallback("/ping", lambda o, u, **r: o.AnswerBuffer("pong", "text/plain"))\n'
                          'print("SCRIPT LOADED", flush=True)\n')
    server = orthanc_server(script=script, config={"Python": {"RestThreads": 3}})
    assert server.get("/ping").text == "pong"
    wait_until(lambda: _rest_threads(server) == 3, timeout=30, what="3 pythanc-rest threads")
    assert server.post("/tools/reset").status_code == 200
    server.wait_for_log(r"SCRIPT LOADED", count=2)
    server.wait_ready()
    assert server.get("/ping").text == "pong"
    wait_until(lambda: _rest_threads(server) == 3, timeout=30, what="3 pythanc-rest threads after the reset")

    off = orthanc_server(script=script, config={"Python": {"RestThreads": 0}})
    assert off.get("/ping").text == "pong"
    assert _rest_threads(off) == 0


@pytest.mark.parametrize("value", [-1, 65, "2", 1.5, True])
def test_bad_rest_threads_is_fatal(orthanc_server, write_script, value):
    server = orthanc_server(script=write_script("import orthanc\n"), config={"Python": {"RestThreads": value}},
                            wait=False)
    assert server.wait_exit(60) != 0
    assert '"Python.RestThreads" is not an integer between 0 and 64' in server.log()


THREAD_NAME_SCRIPT = r'''
import threading, orthanc
def Where(output, uri, **request):
    with open("/proc/self/task/%d/comm" % threading.get_native_id()) as f:
        output.AnswerBuffer(f.read().strip(), "text/plain")
orthanc.RegisterRestCallback("/where", Where)
'''


def test_sequential_requests_run_on_their_http_thread(orthanc_server, write_script):
    """A client that sends one request after the other on one keep-alive connection (nothing else
    inside a pythanc route meanwhile) has each callback run on its own HTTP thread, never handed
    to a pythanc-rest thread: the latency of a direct call."""
    server = orthanc_server(script=write_script(THREAD_NAME_SCRIPT), config={"Python": {"RestThreads": 2}})
    wait_until(lambda: _rest_threads(server) == 2, timeout=30, what="2 pythanc-rest threads")
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        names = []
        for _ in range(50):
            connection.request("GET", "/where")
            answer = connection.getresponse()
            assert answer.status == 200
            names.append(answer.read().decode())
    finally:
        connection.close()
    assert "pythanc-rest" not in names, names
