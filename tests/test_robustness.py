"""Issue 4, "Never crash, never hang, never lose an event": robustness of pythanc against a real
Orthanc under bad input, faults and load.

| item | tests |
|---|---|
| 1. bad arguments from scripts | test_fuzz_every_function_and_method, test_fuzz_valid_rest_output |
| 2. bad input from clients | test_bad_client_input_reaches_callback_and_filter |
| 3. objects used too late | test_objects_used_too_late_raise_from_a_timer |
| 4. exceptions everywhere | test_failing_callbacks_of_every_kind, test_long_python_loop_does_not_block_other_routes |
| 5. no lost or reordered changes | test_no_lost_or_reordered_changes_under_concurrent_ingest |
| 6. shutdown and restart | test_stop_during_load_delivers_every_change, test_tools_reset_twice_no_duplicates |
| 7. soak | test_soak_memory |
| 8. security | test_http_filter_denies_every_route, test_world_writable_script_warns |

CI mode by default; ``PYTHANC_LONG=1`` runs the long mode (more fuzzing, 1,000,000 soak requests,
2,000 instances everywhere).  ``PYTHANC_FUZZ_SEED=<int>`` replays a fuzzing run.  Figures (calls
fuzzed, requests sent, events checked, memory growth) are printed (``pytest -s``) and written to
``$PYTHANC_ROBUSTNESS_REPORT`` (JSON lines) when set.

Rules kept here: waits are bounded polls on conditions (no sleeps used to synchronise), no
assertion on durations (the only bounds are "did it stop/answer at all within a generous
limit"), only 127.0.0.1, and only processes started by the test are stopped, by PID.
"""

import collections
import concurrent.futures
import hashlib
import http.client
import io
import json
import os
import random
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest
import requests

from pythanc import plugin_path
from pythanc.testing import OrthancServer, free_port, wait_until

LONG = os.environ.get("PYTHANC_LONG", "") not in ("", "0")
HERE = os.path.dirname(os.path.abspath(__file__))
from conftest import SHARED, GET_VALUES_DECODED, dcmtk  # noqa: E402
TESTDATA = os.path.join(SHARED, "testdata")


# ---------------------------------------------------------------------------------------------
# helpers


def report(item, **figures):
    """Print the figures of a test (shown with ``pytest -s``), and append them to a JSON-lines file."""
    line = json.dumps(dict(item=item, long=LONG, **figures), sort_keys=True)
    print("\nROBUSTNESS " + line)
    path = os.environ.get("PYTHANC_ROBUSTNESS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")




def assert_serving(server, context=""):
    """The process is alive and answers GET /system with 200."""
    assert server.alive(), "Orthanc died (%s), exit code %s; log tail:\n%s" % (
        context, server.process.poll(), server.log()[-6000:])
    r = server.get("/system", timeout=60)
    assert r.status_code == 200, "GET /system answered %d (%s)" % (r.status_code, context)


def python_errors(server):
    """Lines of the log where pythanc reported an exception in a Python callback."""
    return re.findall(r"Error in the (?:Python |REST callback)[^\n]*", server.log())


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def raw_http(port, data, timeout=60.0, half_close=False):
    """Send raw bytes to 127.0.0.1:port, read until the server closes; returns (status, head, body).
    ``status`` is None if the server closed the connection without an HTTP answer.  ``half_close``
    ends the sending side after ``data`` (for truncated requests)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server may close early on a huge request; it may still have answered
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    if m is None:   # no answer, or not one a client could read
        return None, b"", raw
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(m.group(1)), head, body


def get_changes(server, change_type="NewInstance"):
    """Every change of ``change_type`` recorded by Orthanc, as (Seq, ID), in Seq order."""
    out, since = [], 0
    while True:
        d = server.get("/changes?since=%d&limit=1000" % since).json()
        for c in d["Changes"]:
            if c["ChangeType"] == change_type:
                out.append((c["Seq"], c["ID"]))
        if d["Done"] or not d["Changes"]:
            break
        since = d["Last"]
    out.sort()
    return out


class Pool:
    """Threads each with one keep-alive ``http.client`` connection to Orthanc (fast, no proxy)."""

    def __init__(self, server, threads):
        self.server = server
        self.local = threading.local()
        self.executor = concurrent.futures.ThreadPoolExecutor(threads)

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.server.http_port, timeout=120)
        return c

    def request(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            c = self.conn()
            try:
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    self.local.conn = None
                return r.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise

    def close(self):
        self.executor.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------
# 1. Bad arguments from scripts: property-based fuzzing of the whole ``orthanc`` module, inside Orthanc

# Functions and methods NOT fuzzed, and why.  Everything else of the module (every function, and
# every method of every object class, found by introspection at run time) is.
FUZZ_EXCLUDED = {
    "WriteFile": "writes files anywhere on the machine",
    "HttpGet": "network access (no network in tests)",
    "HttpPost": "network access",
    "HttpPut": "network access",
    "HttpDelete": "network access",
    "HttpClient": "network access",
    "Peers.CallPeerApi": "network access (to the configured peer)",
    "RestApiDelete": "could delete the data of this Orthanc",
    "RestApiDeleteAfterPlugins": "could delete the data of this Orthanc",
    "CallRestApi": "any method, DELETE included: could delete data or reset/shut down Orthanc",
    "CreateJob": "registers callbacks (jobs run Python later, in Orthanc's job engine)",
    "SetRootUri": "changes Orthanc Explorer for the rest of the run",
    "ExtendOrthancExplorer": "changes Orthanc Explorer for the rest of the run",
    "SetDescription": "changes the plugin's description",
    "SetGlobalProperty": "writes Orthanc's database (global properties survive the run)",
    "RegisterErrorCode": "registers an error code for the rest of the run",
    "RegisterDictionaryTag": "changes the DICOM dictionary for the rest of the run",
    "RegisterPrivateDictionaryTag": "changes the DICOM dictionary for the rest of the run",
    "Register*": "every Register* function registers callbacks",
}

# Functions whose integer arguments size an allocation.  When all arguments have the right types,
# those integers are kept <= 4096 (and the area bounded) so that no call allocates gigabytes; huge
# values are still tried, combined with an argument of a wrong type at a position that is converted
# before any allocation (so pythanc must raise before calling C).
FUZZ_BOUNDED = {
    # name: (positions of the sizes, positions that may be poisoned)
    "CreateImage": ((1, 2), (0, 1, 2)),
    "CreateImageFromBuffer": ((1, 2, 3), (0, 1, 2)),   # allocates the image before it checks the buffer
    "CompressPngImage": ((1, 2, 3), (0, 1, 2, 3, 4)),
    "CompressJpegImage": ((1, 2, 3), (0, 1, 2, 3, 4, 5)),
    "CreateMemoryBuffer": ((0,), (0,)),
    "RestOutput.CompressAndAnswerPngImage": ((1, 2, 3), (0, 1, 2, 3, 4)),
    "RestOutput.CompressAndAnswerJpegImage": ((1, 2, 3), (0, 1, 2, 3, 4, 5)),
}

FUZZ_SCRIPT = r'''
import collections, inspect, json, os, random, sys, threading, time, traceback
import orthanc
from hypothesis import given, settings, seed as hseed, strategies as st, HealthCheck, Phase

CONFIG = json.loads(%(config)r)
DICOM = open(CONFIG["dicom"], "rb").read()
DICOM2 = open(CONFIG["dicom2"], "rb").read()
PNG = open(CONFIG["png"], "rb").read()
EXCLUDED = set(CONFIG["excluded"])
BOUNDED = {k: (tuple(v[0]), tuple(v[1])) for k, v in CONFIG["bounded"].items()}
TRACE = open(CONFIG["trace"], "w", buffering=1)
KEPT = {}
LOCK = threading.Lock()


def Keep(output, uri, **request):
    KEPT["RestOutput"] = output
    output.AnswerBuffer("kept", "text/plain")
orthanc.RegisterRestCallback("/robustness-keep", Keep)


def OnStored(instance, instance_id):
    KEPT["DicomInstance"] = instance
    KEPT["instance_id"] = instance_id
orthanc.RegisterOnStoredInstanceCallback(OnStored)


def params(fn):
    """[(name, required)] of a function, or None if it has no usable signature."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.default is inspect.Parameter.empty) for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def targets():
    """(label, callable, [(param, required)], class name or None) of every fuzzed function/method."""
    out = []
    for name, v in sorted(vars(orthanc).items()):
        if name.startswith("_") or name in EXCLUDED or name.startswith("Register"):
            continue
        if isinstance(v, type):
            if issubclass(v, BaseException) or not hasattr(v, "_p"):
                continue   # exceptions and enumerations
            for m, mv in sorted(vars(v).items()):
                label = "%%s.%%s" %% (name, m)
                if m.startswith("_") or not callable(mv) or label in EXCLUDED or isinstance(mv, (classmethod, staticmethod)):
                    continue
                ps = params(mv)
                if ps is None:
                    continue
                out.append((label, getattr(v, m), ps[1:], name))
            continue
        if callable(v):
            ps = params(v)
            if ps is not None:
                out.append((name, v, ps, None))
    return out


TARGETS = targets()
S = {}   # value families and the object pool, built at the first fuzzing request (Orthanc fully started)


def build():
    if S:
        return
    pool = collections.defaultdict(list)
    pool["Image"] += [orthanc.CreateImage(orthanc.PixelFormat.RGB24, 16, 8),
                      orthanc.CreateImage(orthanc.PixelFormat.GRAYSCALE16, 3, 3),
                      orthanc.CreateImage(orthanc.PixelFormat.RGBA32, 1, 1),
                      orthanc.DecodeDicomImage(DICOM, 0),
                      orthanc.UncompressImage(PNG, orthanc.ImageFormat.PNG)]
    pool["DicomInstance"] += [orthanc.CreateDicomInstance(DICOM), orthanc.CreateDicomInstance(DICOM2)]
    pool["Peers"].append(orthanc.GetPeers())
    try:
        pool["FindMatcher"].append(orthanc.CreateFindMatcher(open(CONFIG["query"], "rb").read()))
    except Exception as e:
        print("robustness: no FindMatcher from the query file: %%r" %% (e,), flush=True)
    pool["FindMatcher"].append(orthanc.CreateFindMatcher(DICOM))
    invalid = []
    for k in ("RestOutput", "DicomInstance"):
        if k in KEPT:   # borrowed objects whose callback has returned: invalidated
            invalid.append(KEPT[k])
            pool[k].append(KEPT[k])
    S["pool"] = pool
    S["invalid"] = invalid
    alien = [object(), orthanc, len, Exception("x"), type, st, b"", 0]
    objects = [o for v in pool.values() for o in v] + alien
    S["valid_counts"] = {k: len(v) for k, v in pool.items()}

    boundary = [0, 1, -1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 - 1, 2**32,
                2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64 - 1, 2**64, 2**100, -2**100]
    iid = KEPT.get("instance_id", "")
    special_str = ["", "\0", "a\0b", "\0/system", "/system", "/instances", "/tools/find", "/tools/lookup",
                   "/patients", "/nonexistent", "/", "//", "/%%00", "/%%ff%%fe", "/../../../etc/passwd",
                   "/instances/" + iid, "/instances/" + iid + "/file", "/robustness-keep", "\udc80\udcff",
                   "\ud800", "\udfff/x", "\u00e9", "\u65e5\u672c", "\U0001f600", "\n\r\t", "%%s%%n%%x", "{}",
                   "[]", "null", '{"Tags":{}}', '{"PatientName":"A","PatientID":"B"}', '{"0010,0010":"x"}',
                   '{"Level":"Study","Query":{}}', "1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                   "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90", "0010,0010", "PatientName",
                   "ORTHANC", iid, "COMPAT-A", "http://127.0.0.1:1/", CONFIG["dicom"], "/proc/self/status",
                   "/nonexistent/file", "/tmp", "x" * 64, "\u00ff" * 100]
    huge_str = [c * n for n in (1024, 65536, 2**20, 3 * 2**20) for c in ("a", "\u00e9", "/", "\0", "\udc80")]
    special_bytes = [b"", b"\0", DICOM, DICOM2, PNG, DICOM[:132], DICOM[:200], DICOM[:len(DICOM) // 2],
                     DICOM[128:], PNG[:20], b"DICM", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff",
                     bytes(range(256)), b"\xff" * 48, b"\0" * 4096]
    huge_bytes = [c * n for n in (2**16, 2**20, 4 * 2**20) for c in (b"\0", b"\xff")] + [DICOM * 400]
    special_buffers = (special_bytes + [bytearray(b) for b in special_bytes[:8]]
                       + [memoryview(b) for b in special_bytes[:8]] + [memoryview(b"abcdef")[::2]])
    enum_values = sorted({int(v) for c in vars(orthanc).values() if isinstance(c, type) and not hasattr(c, "_p")
                          and not issubclass(c, BaseException)
                          for k, v in vars(c).items() if not k.startswith("_") and isinstance(v, int)})
    misc = [None, True, False, float("nan"), float("inf"), -0.0, 1.5, 1e308, 3j, Ellipsis, [], [1, 2], {},
            {"a": "b"}, (), ("x",), set()]

    # ---- hypothesis strategies ----
    h_objects = st.sampled_from(objects)
    h_ints = st.one_of(st.integers(-3, 20), st.sampled_from(boundary), st.integers())
    h_strs = st.one_of(st.text(max_size=40), st.sampled_from(special_str), st.sampled_from(huge_str),
                       st.text(st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=20))
    h_buffers = st.one_of(st.binary(max_size=64), st.sampled_from(special_buffers), st.sampled_from(huge_bytes),
                          st.binary(max_size=16).map(bytearray))
    h_any = st.one_of(st.none(), st.booleans(), h_ints, st.floats(), h_strs, h_buffers, h_objects,
                      st.sampled_from(misc), st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3))
    h_small = st.one_of(st.integers(-2, 12), st.sampled_from(enum_values))
    H = {
        "any": h_any, "ints": h_ints, "objects": h_objects,
        "uri": h_strs, "strs": h_strs,
        "image": st.one_of(st.none(), st.sampled_from(pool["Image"])),
        "buffer": h_buffers,
        "size": st.one_of(st.integers(0, 64), st.sampled_from([0, 1, 3, 255, 256, 1023, 4096]),
                          st.sampled_from(boundary)),
        "quality": st.integers(-2, 102), "rgb": st.integers(-1, 256),
        "flag": st.one_of(st.integers(-1, 2), st.booleans()),
        "enum": st.one_of(h_small, h_ints),
        "headers": st.one_of(st.dictionaries(h_strs, h_strs, max_size=3), st.lists(h_strs, max_size=2)),
        "json": st.sampled_from(special_str),
    }

    # ---- the same families for the fast generator (random.Random) ----
    def r_int(r):
        k = r.random()
        if k < 0.4:
            return r.randint(-3, 20)
        if k < 0.8:
            return r.choice(boundary)
        return r.getrandbits(r.choice((8, 16, 31, 32, 33, 63, 64, 65, 200))) * r.choice((1, -1))

    def r_text(r):
        k = r.random()
        n = r.choice((0, 1, 2, 5, 20, 100))
        if k < 0.25:
            return "".join(chr(r.randrange(0, 0x80)) for _ in range(n))
        if k < 0.5:
            return "".join(chr(r.randrange(0, 0x110000)) for _ in range(n))   # NUL and surrogates included
        if k < 0.6:
            return r.choice(huge_str)
        return r.choice(special_str)

    def r_buffer(r):
        k = r.random()
        if k < 0.3:
            return r.randbytes(r.choice((0, 1, 7, 64, 300)))
        if k < 0.4:
            return r.choice(huge_bytes)
        return r.choice(special_buffers)

    _R_ANY = [lambda r: None, lambda r: r.random() < 0.5, r_int, r_int, lambda r: r.uniform(-1e9, 1e9), r_text,
              r_text, r_buffer, r_buffer, lambda r: r.choice(objects), lambda r: r.choice(misc)]
    R = {
        "any": lambda r: _R_ANY[r.randrange(len(_R_ANY))](r), "ints": r_int, "objects": lambda r: r.choice(objects),
        "uri": r_text, "strs": r_text,
        "image": lambda r: r.choice([None] + pool["Image"]),
        "buffer": r_buffer,
        "size": lambda r: r.choice((r.randint(0, 64), r.choice([0, 1, 3, 255, 256, 1023, 4096]), r.choice(boundary))),
        "quality": lambda r: r.randint(-2, 102), "rgb": lambda r: r.randint(-1, 256),
        "flag": lambda r: r.choice((-1, 0, 1, 2, True, False)),
        "enum": lambda r: r.choice(enum_values) if r.random() < 0.6 else r_int(r),
        "headers": lambda r: {r_text(r): r_text(r) for _ in range(r.randint(0, 3))} if r.random() < 0.7
        else [r_text(r)],
        "json": lambda r: r.choice(special_str),
    }
    S["H"], S["R"] = H, R


TYPED = [
    (("uri", "url", "redirection"), "uri"),
    (("pixeldata",), "image"),
    (("body", "buffer", "dicom", "data", "content", "answer", "source", "query"), "buffer"),
    (("width", "height", "pitch", "size", "x", "y"), "size"),
    (("quality",), "quality"),
    (("r", "g", "b"), "rgb"),
    (("uncompress", "afterplugins", "log"), "flag"),
    (("format", "compression", "flags", "type", "level", "metadata", "error", "code", "status", "index",
      "argument", "group", "element", "httpstatus", "priority", "value"), "enum"),
    (("headers",), "headers"),
    (("json",), "json"),
]


def kind_for(name):
    n = name.lower()
    for keys, kind in TYPED:
        if n in keys or any(n.endswith(k) for k in keys if len(k) > 3):
            return kind
    if "index" in n:
        return "ints"
    if n in ("mimetype", "transfersyntax", "path", "property", "name", "realm", "cookie", "key", "details",
             "message", "uuid", "subtype", "contenttype", "utf8text", "description", "id") or n.endswith("id"):
        return "strs"
    return "any"


class HypothesisDraw:
    """Choices made by hypothesis (``st.data()``)."""
    def __init__(self, data):
        self.data = data

    def value(self, kind):
        return self.data.draw(S["H"][kind])

    def integer(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.data.draw(st.sampled_from(seq))


class RandomDraw:
    """The same choices from a seeded ``random.Random`` (much faster than hypothesis' engine)."""
    def __init__(self, rnd):
        self.rnd = rnd

    def value(self, kind):
        return S["R"][kind](self.rnd)

    def integer(self, lo, hi):
        return self.rnd.randint(lo, hi)

    def choice(self, seq):
        return self.rnd.choice(seq)


def sanitize(label, args, poison):
    """Bound allocation sizes (see FUZZ_BOUNDED in the test) and decompression bombs."""
    if label in BOUNDED:
        sizes, poisonable = BOUNDED[label]
        if poison is not None:
            pos = [p for p in poisonable if p < len(args)]
            if pos:
                args[pos[poison %% len(pos)]] = object()
                return args
        for i in sizes:
            if i < len(args) and type(args[i]) is int and args[i] > 4096:
                args[i] %%= 4097
        ws = [args[i] for i in sizes[:2] if i < len(args) and type(args[i]) is int]
        if len(ws) == 2 and ws[0] * ws[1] > 2**22:
            args[sizes[1]] %%= 64
    if label == "BufferCompression" and len(args) >= 3:
        src, unc = args[0], args[2]
        if isinstance(src, str):
            try:   # as the plugin encodes a str buffer
                src = src.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                return args   # the plugin refuses it (ValueError) before compressing anything
        if isinstance(unc, int) and unc and isinstance(src, (bytes, bytearray, memoryview)):
            # the *WithSize formats start with the uncompressed size (uint64), gzip ends with it
            # (uint32): make the claimed size small, so that no call allocates gigabytes
            b = bytearray(src)
            if len(b) >= 8:
                b[0:8] = (len(b) %% 4096).to_bytes(8, "little")
                b[-4:] = (len(b) %% 4096).to_bytes(4, "little")
            args[0] = bytes(b)
    if label.startswith("Log"):
        args = [a[:100000] if isinstance(a, str) else a for a in args]
    return args


def short(v):
    if isinstance(v, (str, bytes, bytearray)) and len(v) > 100:
        return "%%s...(%%d)" %% (repr(v[:60]), len(v))
    r = repr(v)
    return r if len(r) <= 120 else r[:100] + "...(%%d chars)" %% len(r)


class Stats:
    def __init__(self):
        self.calls = 0
        self.ok = 0
        self.exceptions = collections.Counter()
        self.targets = collections.Counter()
        self.unexpected = []
        self.seconds = collections.Counter()
        self.samples = {}   # (exception type, target) -> first message


def one_call(draw, stats):
    label, fn, ps, cls = draw.choice(TARGETS)
    args = []
    for name, required in ps:
        if not required and draw.integer(0, 3) == 0:
            break   # leave the optional arguments out
        args.append(draw.value(kind_for(name) if draw.integer(0, 3) else "any"))
    shape = draw.integer(0, 15)
    if shape == 0 and args:
        args.pop()                                   # too few arguments
    elif shape == 1:
        args.append(draw.value("any"))               # too many
    poison = draw.integer(0, 5) if draw.integer(0, 3) == 0 else None
    args = sanitize(label, args, poison)
    kwargs = {}
    if shape == 2:
        kwargs[draw.choice(["uri", "self", "x", "body", "format"])] = draw.value("any")
    if cls is not None:
        pick = draw.integer(0, 3)
        valid = S["pool"].get(cls, [])
        if pick < 3 and valid:
            self_obj = draw.choice(valid)
        elif pick == 3 and draw.integer(0, 1):
            self_obj = draw.value("objects")
        else:
            self_obj = draw.value("any")
        args.insert(0, self_obj)
    TRACE.write("%%s(%%s%%s)\n" %% (label, ", ".join(short(a) for a in args),
                                  "".join(", %%s=%%s" %% (k, short(v)) for k, v in kwargs.items())))
    stats.calls += 1
    stats.targets[label] += 1
    t0 = time.monotonic()
    try:
        result = fn(*args, **kwargs)
        stats.ok += 1
        del result
    except Exception as e:
        stats.exceptions[type(e).__name__] += 1
        key = "%%s in %%s" %% (type(e).__name__, label)
        if key not in stats.samples:
            stats.samples[key] = str(e)[:200]
    except BaseException as e:   # SystemExit, KeyboardInterrupt... would be a bug of pythanc
        stats.exceptions[type(e).__name__] += 1
        stats.unexpected.append("%%s: %%s %%r" %% (label, type(e).__name__, e))
    stats.seconds[label] += time.monotonic() - t0


def Fuzz(output, uri, **request):
    """POST {"seed", "engine": "hypothesis"|"random", "examples", "calls"}: one batch of calls."""
    with LOCK:   # hypothesis is not thread-safe: one batch at a time
        build()
        p = json.loads(request["body"])
        stats = Stats()
        t0 = time.monotonic()
        if p["engine"] == "hypothesis":
            @settings(max_examples=p["examples"], database=None, deadline=None, derandomize=False,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            @hseed(p["seed"])
            @given(st.data())
            def fuzz(data):
                draw = HypothesisDraw(data)
                for _ in range(draw.integer(1, p["calls"])):
                    one_call(draw, stats)
            fuzz()
        else:
            draw = RandomDraw(random.Random(p["seed"]))
            for _ in range(p["examples"] * p["calls"]):
                one_call(draw, stats)
        answer = {"calls": stats.calls, "ok": stats.ok, "exceptions": dict(stats.exceptions),
                  "targets": dict(stats.targets), "unexpected": stats.unexpected[:20],
                  "all_targets": [t[0] for t in TARGETS], "seconds": time.monotonic() - t0,
                  "pool": S["valid_counts"], "samples": stats.samples,
                  "slowest": stats.seconds.most_common(8),
                  "invalid": [type(o).__name__ for o in S["invalid"]]}
    output.AnswerBuffer(json.dumps(answer), "application/json")
orthanc.RegisterRestCallback("/robustness-fuzz", Fuzz)


# ---- a valid RestOutput, fuzzed with a hand-rolled generator (one request = a few calls) ----
import random
OUTPUT_CALLS = [0]
OUT_METHODS = [(m, params(v)[1:]) for m, v in sorted(vars(orthanc.RestOutput).items())
               if not m.startswith("_") and callable(v)]
OUT_VALUES = [None, 0, 1, -1, 2**31, 2**64, 200, 301, 404, 500, 99, 1000, "", "\0", "a\0b", "x" * 100000,
              "/system", "http://127.0.0.1:1/x", "text/plain", "multipart/related", "related",
              "\r\nX-Injected: 1", "\udc80", b"", b"body", bytes(range(256)), bytearray(b"ab"), memoryview(b"abc"),
              DICOM, PNG, b"\0" * 300, 1.5, [], {}, {"X-A": "b"}, object(), orthanc.PixelFormat.GRAYSCALE8,
              orthanc.PixelFormat.RGB24, 2, 3, 4, 16]


def FuzzOutput(output, uri, **request):
    rnd = random.Random(int(request["get"].get("seed", "0")))
    for _ in range(rnd.randint(1, 4)):
        name, ps = rnd.choice(OUT_METHODS)
        args = [rnd.choice(OUT_VALUES) for _ in ps]
        if rnd.random() < 0.2 and args:
            args.pop()
        args = sanitize("RestOutput." + name, args, None)
        TRACE.write("output.%%s(%%s)\n" %% (name, ", ".join(short(a) for a in args)))
        OUTPUT_CALLS[0] += 1
        try:
            getattr(output, name)(*args)
        except Exception:
            pass
    try:
        output.AnswerBuffer("done", "text/plain")
    except Exception:
        pass
orthanc.RegisterRestCallback("/robustness-fuzz-output", FuzzOutput)
orthanc.RegisterRestCallback("/robustness-fuzz-output-count",
                             lambda output, uri, **r: output.AnswerBuffer(str(OUTPUT_CALLS[0]), "text/plain"))
'''


def _fuzz_server(orthanc_server, write_script, tmp_path, testdata):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = "COMPAT*"
    query.StudyDate = "20000101-"
    query.file_meta = FileMetaDataset()
    query.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    query_path = str(tmp_path / "query.dcm")
    pydicom.dcmwrite(query_path, query, enforce_file_format=False)
    trace = str(tmp_path / "fuzz-trace.txt")
    config = json.dumps({
        "dicom": testdata("ct-a1-1.dcm"), "dicom2": testdata("rgb-2frames.dcm"), "png": testdata("lena.png"),
        "query": query_path, "trace": trace,
        # PYTHANC_FUZZ_SKIP=A,B (debugging only): also leave out functions already known to crash
        # Orthanc, to look for further bugs; the default run fuzzes everything but FUZZ_EXCLUDED
        "excluded": sorted(FUZZ_EXCLUDED) + [n for n in os.environ.get("PYTHANC_FUZZ_SKIP", "").split(",") if n],
        "bounded": FUZZ_BOUNDED})
    script = write_script(FUZZ_SCRIPT % {"config": config}, name="fuzz_script.py")
    server = orthanc_server(script=script, config={
        "OrthancPeers": {"peer1": {"Url": "http://127.0.0.1:1/", "Username": "u", "Password": "p",
                                   "Custom": "value"},
                         "peer2": ["http://127.0.0.1:2/"]}})
    return server, trace


def _death(server, grace=10.0):
    """After a failed request: did the process die (it may take a moment to exit)?"""
    deadline = time.monotonic() + grace
    while server.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if server.alive():
        return "Orthanc still alive"
    code = server.process.poll()
    return "Orthanc DIED, exit code %s%s" % (code, " (signal %d)" % -code if code < 0 else "")


def _trace_tail(trace, n=15):
    try:
        with open(trace, errors="replace") as f:
            return "".join(collections.deque(f, n))
    except FileNotFoundError:
        return ""


def test_fuzz_every_function_and_method(orthanc_server, write_script, tmp_path, testdata):
    """Item 1: hypothesis, running inside Orthanc, calls every function and method of the
    ``orthanc`` module (but the exclusions of FUZZ_EXCLUDED) with wrong types, None, empty/huge
    strings and buffers, NUL characters, lone surrogates, negative/huge integers, objects of the
    wrong class and invalidated borrowed objects; valid objects are used too.  After each batch,
    the process must be alive and answer.  Every call must return or raise an ``Exception``."""
    server, trace = _fuzz_server(orthanc_server, write_script, tmp_path, testdata)
    assert server.get("/robustness-keep").text == "kept"          # a RestOutput kept past its callback
    server.upload(testdata("ct-a1-1.dcm"))                        # a DicomInstance kept past its callback
    base_seed = int(os.environ.get("PYTHANC_FUZZ_SEED") or random.randrange(2**32))
    # hypothesis' engine drives part of the calls (its value heuristics); a seeded random.Random
    # drives the rest with the same value families, ~6 times faster per call
    want = {"hypothesis": 20_000 if LONG else 2_000, "random": 200_000 if LONG else 10_000}
    total = collections.Counter()
    exceptions = collections.Counter()
    targets = collections.Counter()
    unexpected = []
    samples = {}
    batch = 0
    all_targets = None
    while any(total[e] < want[e] for e in want):
        engine = "hypothesis" if total["hypothesis"] < want["hypothesis"] and (
            batch % 2 == 0 or total["random"] >= want["random"]) else "random"
        seed = base_seed + batch
        context = ("fuzzing batch %d (%s engine, seed %d; replay the run with PYTHANC_FUZZ_SEED=%d)"
                   % (batch, engine, seed, base_seed))
        body = {"seed": seed, "engine": engine, "calls": 12, "examples": 150 if engine == "hypothesis" else 160}
        try:
            r = server.post("/robustness-fuzz", data=json.dumps(body), timeout=600)
        except requests.RequestException as e:
            pytest.fail("%s: the request failed (%r); %s; last calls:\n%s\nlog tail:\n%s"
                        % (context, e, _death(server), _trace_tail(trace), server.log()[-4000:]))
        assert r.status_code == 200, "%s: HTTP %d (the fuzzing route did not return normally); last calls:\n%s" \
            "\nlog tail:\n%s" % (context, r.status_code, _trace_tail(trace), server.log()[-2000:])
        d = r.json()
        all_targets = d["all_targets"]
        total["calls"] += d["calls"]
        total[engine] += d["calls"]
        total["ok"] += d["ok"]
        exceptions.update(d["exceptions"])
        targets.update(d["targets"])
        unexpected += d["unexpected"]
        samples.update(d["samples"])
        assert_serving(server, context + "; last calls:\n" + _trace_tail(trace))
        batch += 1
    # the pool had valid objects of each kind, and borrowed objects that were invalidated
    assert d["pool"].get("Image", 0) >= 3 and d["pool"].get("DicomInstance", 0) >= 3
    assert d["pool"].get("Peers") == 1 and d["pool"].get("FindMatcher", 0) >= 1
    assert sorted(d["invalid"]) == ["DicomInstance", "RestOutput"]
    # no exception outside ``Exception`` (SystemExit...) came out of the module
    assert not unexpected, unexpected
    # every function and method of the module was called
    assert len(all_targets) > 100, all_targets
    assert all(name.split(".")[-1] not in FUZZ_EXCLUDED and not name.startswith("Register")
               for name in all_targets if "." not in name)
    missed = sorted(set(all_targets) - set(targets))
    assert not missed, "never called: %s" % missed
    # calls reached Orthanc (successes) and were refused in Python (TypeError/ValueError)
    assert total["ok"] > total["calls"] // 50
    assert exceptions["TypeError"] and exceptions["ValueError"] and exceptions["OrthancException"]
    report("1-fuzz-module", calls=total["calls"], hypothesis_calls=total["hypothesis"], ok=total["ok"],
           batches=batch, base_seed=base_seed,
           functions_and_methods=len(all_targets), exceptions=dict(exceptions.most_common()))


def test_fuzz_valid_rest_output(orthanc_server, write_script, tmp_path, testdata):
    """Item 1, objects: the methods of a *valid* RestOutput (the one of the request being served),
    with random arguments, in random order (answers twice, headers after the answer...)."""
    server, trace = _fuzz_server(orthanc_server, write_script, tmp_path, testdata)
    n = 2000 if LONG else 300
    statuses = collections.Counter()
    session = requests.Session()
    for i in range(n):
        try:
            # no redirect followed: a fuzzed Redirect() may name any bytes (Orthanc 1.12+ sends a
            # Location that is not UTF-8 as it is, which requests cannot decode)
            r = session.get(server.url + "/robustness-fuzz-output?seed=%d" % i, timeout=60, allow_redirects=False)
            statuses[r.status_code] += 1
        except (requests.RequestException, UnicodeError) as e:
            # the script may have sent a broken answer (e.g. a wrong Content-Length header, a header
            # that is not UTF-8): the client may see a protocol error, Orthanc must not die
            statuses[type(e).__name__] += 1
            session = requests.Session()
        if not server.alive():
            pytest.fail("Orthanc died at seed %d; last calls:\n%s\nlog:\n%s"
                        % (i, _trace_tail(trace), server.log()[-4000:]))
    assert_serving(server, "after the RestOutput fuzzing; last calls:\n" + _trace_tail(trace))
    calls = int(server.get("/robustness-fuzz-output-count").text)
    assert calls >= n
    assert statuses[200] > 0
    report("1-fuzz-rest-output", requests=n, calls=calls, statuses={str(k): v for k, v in statuses.items()})


REGRESSION_SCRIPT = r'''
import json, orthanc
def Call(output, uri, **request):
    what = request["get"]["call"]
    n = orthanc.GetCommandLineArgumentsCount()
    calls = {
        "arg-count": lambda: orthanc.GetCommandLineArgument(n),       # one past the last argument
        "arg-2p31": lambda: orthanc.GetCommandLineArgument(2**31),
        "arg-2p32m1": lambda: orthanc.GetCommandLineArgument(2**32 - 1),
        "font-2p31": lambda: orthanc.GetFontName(2**31),
        "font-count": lambda: orthanc.GetFontSize(orthanc.GetFontsCount()),
        "peer-2p31": lambda: orthanc.GetPeers().GetPeerName(2**31),
        "peer-count": lambda: orthanc.GetPeers().GetPeerUrl(orthanc.GetPeers().GetPeersCount()),
        "frame-2p31": lambda: orthanc.DecodeDicomImage(open(%(dicom)r, "rb").read(), 2**31),
    }
    if what not in calls:
        return output.AnswerBuffer("unknown call %%r" %% what, "text/plain")
    try:
        result = "returned %%r" %% (calls[what](),)
    except Exception as e:
        result = "raised %%s" %% type(e).__name__
    output.AnswerBuffer(result, "text/plain")
orthanc.RegisterRestCallback("/call", Call)
'''

REGRESSION_CALLS = ["arg-count", "arg-2p31", "arg-2p32m1", "font-2p31", "font-count", "peer-2p31", "peer-count",
                    "frame-2p31"]


@pytest.mark.parametrize("call", REGRESSION_CALLS)
def test_fuzz_regressions(orthanc_server, write_script, testdata, call):
    """Item 1, calls that the fuzzing found fatal (or that sit on the same boundaries: an index one
    past the end, an index >= 2**31 that the SDK casts to int32): each must return or raise a Python
    exception, and Orthanc must go on serving.  One Orthanc per call (a crash does not hide the others)."""
    server = orthanc_server(script=write_script(REGRESSION_SCRIPT % {"dicom": testdata("ct-a1-1.dcm")}),
                            config={"OrthancPeers": {"peer1": ["http://127.0.0.1:1/"]}})
    try:
        r = server.get("/call?call=" + call, timeout=60)
    except requests.RequestException as e:
        pytest.fail("%s: the request failed (%r); %s" % (call, e, _death(server)))
    # GetCommandLineArgument out of range must raise (not return another argument); the others may
    # also return what the README documents for an SDK NULL/0 answer (None, 0)
    accepted = ("raised",) if call.startswith("arg-") else ("raised", "returned None", "returned 0")
    assert r.status_code == 200 and r.text.startswith(accepted), (
        "%s: HTTP %d %r (the callback did not get a Python exception)\nlog tail:\n%s"
        % (call, r.status_code, r.text[:300], server.log()[-2000:]))
    assert_serving(server)


CONTRACT_SCRIPT = r'''
import json, orthanc
def Probe(output, uri, **request):
    image = orthanc.CreateImage(orthanc.PixelFormat.GRAYSCALE8, 2, 2)
    out = {}
    for label, call in [
        ("wrong-self-int", lambda: orthanc.Image.GetImageWidth(42)),
        ("wrong-self-str", lambda: orthanc.DicomInstance.GetInstanceSize("x")),
        ("negative-enum", lambda: orthanc.CreateImage(-1, 2, 2)),
        ("negative-enum-method", lambda: image.ConvertPixelFormat(-5)),
        ("strided-memoryview", lambda: orthanc.ComputeMd5(memoryview(b"abcdef")[::2])),
    ]:
        try:
            call()
            out[label] = "no error"
        except Exception as e:
            out[label] = type(e).__name__
    output.AnswerBuffer(json.dumps(out), "application/json")
orthanc.RegisterRestCallback("/probe", Probe)
'''


def test_argument_errors_follow_the_documented_contract(orthanc_server, write_script):
    """Item 1, the README's contract for bad arguments ("a wrong type is a TypeError, a value out
    of range ... a ValueError"), on the exception types the fuzzing saw besides those."""
    server = orthanc_server(script=write_script(CONTRACT_SCRIPT))
    got = server.get("/probe").json()
    expected = {"wrong-self-int": "TypeError", "wrong-self-str": "TypeError", "negative-enum": "ValueError",
                "negative-enum-method": "ValueError", "strided-memoryview": ("TypeError", "ValueError")}
    wrong = {k: v for k, v in got.items() if v not in (expected[k] if isinstance(expected[k], tuple)
                                                        else (expected[k],))}
    assert not wrong, "exception types that differ from the README's contract: %s" % wrong
    assert_serving(server)


# ---------------------------------------------------------------------------------------------
# 2. Bad input from clients

CLIENT_SCRIPT = r'''
import collections, hashlib, json, orthanc
FILTERED = collections.deque(maxlen=50)

def Filter(uri, **kw):
    FILTERED.append({"uri": uri, "method": kw["method"], "headers": len(kw["headers"]),
                     "get": len(kw.get("get") or {}), "x-bad": kw["headers"].get("x-bad"),
                     "get_values": sorted((kw.get("get") or {}).items())[:5] if len(kw.get("get") or {}) < 10 else None,
                     "marker": kw["headers"].get("x-marker")})
    return "deny-me" not in uri and kw["headers"].get("x-deny") is None
orthanc.RegisterIncomingHttpRequestFilter(Filter)

def Echo(output, uri, **request):
    body = request.get("body", b"")
    get = request.get("get", {})
    answer = {"uri": uri, "method": request["method"], "groups": request["groups"],
              "headers": len(request["headers"]), "x-bad": request["headers"].get("x-bad"),
              "x-long": len(request["headers"].get("x-long", "")), "get": len(get),
              "get_sample": sorted(get.items())[:5] if len(get) < 10 else None,
              "get_long": len(get.get("long", "")),
              "body_len": len(body), "body_md5": hashlib.md5(body).hexdigest()}
    output.AnswerBuffer(json.dumps(answer), "application/json")
orthanc.RegisterRestCallback("/echo-raw(.*)", Echo)

def Filtered(output, uri, **request):
    output.AnswerBuffer(json.dumps(list(FILTERED)), "application/json")
orthanc.RegisterRestCallback("/filtered", Filtered)
'''


def _request(method, target, headers=(), body=b"", version=b"HTTP/1.1"):
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1", b"Connection: close"]
    lines += list(headers)
    if body or method in (b"POST", b"PUT"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_bad_client_input_reaches_callback_and_filter(orthanc_server, write_script):
    """Item 2: invalid UTF-8, NUL bytes, megabyte-long values, thousands of headers or GET
    arguments, sent raw to Orthanc, reach a Python REST callback and a Python HTTP filter (invalid
    UTF-8 replaced by U+FFFD, bodies byte for byte) or the client gets a 4xx/5xx; never a crash,
    never an exception in pythanc's conversions."""
    server = orthanc_server(script=write_script(CLIENT_SCRIPT))
    port = server.http_port
    FFFD = "\ufffd"
    outcomes = {}

    def send(label, data, accept_closed=False, half_close=False, must_reach=False):
        status, head, body = raw_http(port, data, half_close=half_close)
        outcomes[label] = status if status is not None else "closed: %r" % body[:40]
        assert server.alive(), "%s: Orthanc died; %s" % (label, _death(server))
        if status is None:
            # civetweb closes the connection on requests it cannot parse at all (no HTTP answer)
            assert accept_closed, "%s: connection closed without an answer" % label
            return None
        assert status == 200 or 400 <= status < 600, (label, status)
        if must_reach:   # Orthanc 1.10.1 lets these through: the Python callback must answer them
            assert status == 200 and body.startswith(b"{"), (label, status, body[:300])
        if status == 200 and body.startswith(b"{"):
            return json.loads(body)
        return status

    def filtered(marker):
        entries = [e for e in server.get("/filtered").json() if e.get("marker") == marker]
        assert entries, "the filter did not see the request %s" % marker
        return entries[-1]

    # -- invalid UTF-8 in the path: raw bytes (civetweb answers 400), percent-encoded (Orthanc
    #    decodes the path: the callback and the filter get U+FFFD)
    send("raw-utf8-path", _request(b"GET", b"/echo-raw/a\xff\xfeb\xc3"))
    d = send("pct-utf8-path", _request(b"GET", b"/echo-raw/a%FF%FEb%C3", [b"X-Marker: pct-utf8-path"]),
             must_reach=True)
    assert d["uri"] == "/echo-raw/a" + FFFD * 2 + "b" + FFFD, d
    assert d["groups"] == ["/a" + FFFD * 2 + "b" + FFFD]
    assert filtered("pct-utf8-path")["uri"] == d["uri"]
    d = send("pct-valid-utf8-path", _request(b"GET", b"/echo-raw/%C3%A9t%C3%A9", [b"X-Marker: ok-path"]),
             must_reach=True)
    assert d["uri"] == "/echo-raw/\u00e9t\u00e9"
    # -- NUL byte in the path (percent-encoded): cut, or refused
    d = send("nul-path", _request(b"GET", b"/echo-raw/a%00b", [b"X-Marker: nul-path"]))
    if isinstance(d, dict):
        assert "\0" not in d["uri"] and d["uri"].startswith("/echo-raw/a")
    # -- query strings: raw invalid UTF-8 (400); percent-encoded NUL / invalid UTF-8 (Orthanc 1.10 and
    #    1.12 pass GET values undecoded; 1.13 decodes them, and what it passes ends at the decoded NUL);
    #    thousands of arguments; a megabyte-long value
    send("raw-utf8-query", _request(b"GET", b"/echo-raw/q?k\xff=v\xfe&ok=1"))
    d = send("pct-query", _request(b"GET", b"/echo-raw/q?n=%00x&f=%FF%FE&ok=1", [b"X-Marker: pct-query"]),
             must_reach=True)
    if GET_VALUES_DECODED:
        assert dict(d["get_sample"]).get("n") == "", d
    else:
        assert dict(d["get_sample"]) == {"n": "%00x", "f": "%FF%FE", "ok": "1"}, d
    assert filtered("pct-query")["get_values"] == d["get_sample"]
    n_args = 4000
    query = b"&".join(b"%x" % i for i in range(n_args))   # ~16 KB: civetweb's limit for the request head
    d = send("4000-args", _request(b"GET", b"/echo-raw/many?" + query, [b"X-Marker: many-args"]), must_reach=True)
    assert d["get"] == n_args
    assert filtered("many-args")["get"] == n_args
    send("1MB-arg", _request(b"GET", b"/echo-raw/long?long=" + b"x" * 2**20), accept_closed=True)
    # -- headers: invalid UTF-8 value (U+FFFD) and name (400), NUL, long values, many headers
    d = send("utf8-header-value", _request(b"GET", b"/echo-raw/h", [b"X-Marker: utf8-header",
                                                                    b"X-Bad: a\xff\xfe\x80b"]), must_reach=True)
    assert d["x-bad"] == "a" + FFFD * 3 + "b", d
    assert filtered("utf8-header")["x-bad"] == d["x-bad"]
    send("utf8-header-name", _request(b"GET", b"/echo-raw/h", [b"X-\xff\xfeName: v"]))
    d = send("nul-header", _request(b"GET", b"/echo-raw/h0", [b"X-Marker: nul-header", b"X-Bad: a\0b"]))
    if isinstance(d, dict):
        assert d["x-bad"] in ("a", "a" + FFFD + "b"), d
    d = send("16KB-header", _request(b"GET", b"/echo-raw/hl", [b"X-Marker: long-header", b"X-Long: " + b"y" * 16000]),
             must_reach=True)
    assert d["x-long"] == 16000
    send("1MB-header", _request(b"GET", b"/echo-raw/hl", [b"X-Long: " + b"y" * 2**20]), accept_closed=True)
    d = send("100-headers", _request(b"GET", b"/echo-raw/mh", [b"X-Marker: 100-headers"]
                                     + [b"X-H%d: %d" % (i, i) for i in range(100)]), must_reach=True)
    assert d["headers"] >= 60   # civetweb keeps the first 64 headers
    send("3000-headers", _request(b"GET", b"/echo-raw/mh", [b"X-H%d: %d" % (i, i) for i in range(3000)]),
         accept_closed=True)
    # -- a megabyte-long URI
    send("1MB-uri", _request(b"GET", b"/echo-raw/" + b"z" * 2**20), accept_closed=True)
    # -- bodies: invalid UTF-8 and NUL bytes, byte for byte; 8 MB
    for label, body in [("binary-body", bytes(range(256)) * 4 + b"\0\xff\xfe"), ("big-body", os.urandom(8 * 2**20))]:
        for method in (b"POST", b"PUT"):
            d = send(label, _request(method, b"/echo-raw/b", [b"X-Marker: " + label.encode()], body),
                     must_reach=True)
            assert d["body_len"] == len(body) and d["body_md5"] == hashlib.md5(body).hexdigest()
    # -- the filter denies on its own criteria, with bad input too
    assert send("deny", _request(b"GET", b"/echo-raw/deny-me%FF")) == 403
    assert send("deny-header", _request(b"POST", b"/echo-raw/x", [b"X-Deny: \xff"], b"\xff")) == 403
    # -- garbage that is not HTTP at all, unknown methods, truncated requests
    send("garbage", b"\0\xff\xfe GARBAGE\r\n\r\n", accept_closed=True)
    send("unknown-method", _request(b"FOO\xff", b"/echo-raw/x"), accept_closed=True)
    send("bad-version", _request(b"GET", b"/echo-raw/x", version=b"HTTP/9\xff"), accept_closed=True)
    send("truncated", b"POST /echo-raw/x HTTP/1.1\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort",
         accept_closed=True, half_close=True)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:   # half a request, then close
        s.sendall(b"GET /echo-raw/half HTTP/1.1\r\nX-A: ")
    assert_serving(server)
    errors = python_errors(server)
    assert not errors, "pythanc reported exceptions in its own conversions: %s" % errors[:5]
    report("2-bad-client-input", cases=len(outcomes), outcomes={k: v for k, v in sorted(outcomes.items())})


# ---------------------------------------------------------------------------------------------
# 3. Objects used too late

LATE_SCRIPT = r'''
import json, threading, orthanc
KEPT = {}
RESULTS = {}
DICOM = open(%(dicom)r, "rb").read()

def Keep(output, uri, **request):
    KEPT["RestOutput"] = output
    output.AnswerBuffer("kept", "text/plain")
orthanc.RegisterRestCallback("/keep", Keep)

def OnStored(instance, instance_id):
    KEPT["DicomInstance"] = instance
orthanc.RegisterOnStoredInstanceCallback(OnStored)

def OnFind(answers, query, issuer, called):
    KEPT["FindAnswers"] = answers
    KEPT["FindQuery"] = query
    answers.FindAddAnswer(orthanc.CreateDicom(json.dumps({"PatientID": "LATE", "PatientName": "LATE^ANSWER"}),
                                              None, orthanc.CreateDicomFlags.NONE))
orthanc.RegisterFindCallback(OnFind)

CALLS = {
    "RestOutput": [("AnswerBuffer", ("late", "text/plain")), ("SendHttpStatusCode", (404,)),
                   ("SendHttpStatus", (404, "late")), ("Redirect", ("/x",)), ("SetHttpHeader", ("a", "b")),
                   ("SetCookie", ("a", "b")), ("SendUnauthorized", ("realm",)), ("SendMethodNotAllowed", ("GET",)),
                   ("StartMultipartAnswer", ("related", "text/plain")), ("SendMultipartItem", (b"x",)),
                   ("SetHttpErrorDetails", ("x", 1)),
                   ("CompressAndAnswerPngImage", (orthanc.PixelFormat.GRAYSCALE8, 1, 1, 1, b"x"))],
    "DicomInstance": [("GetInstanceRemoteAet", ()), ("GetInstanceSize", ()), ("GetInstanceJson", ()),
                      ("GetInstanceSimplifiedJson", ()), ("HasInstanceMetadata", ("Origin",)),
                      ("GetInstanceMetadata", ("Origin",)), ("GetInstanceOrigin", ()),
                      ("GetInstanceTransferSyntaxUid", ()), ("HasInstancePixelData", ()),
                      ("GetInstanceFramesCount", ()), ("GetInstanceRawFrame", (0,)),
                      ("GetInstanceDecodedFrame", (0,)), ("SerializeDicomInstance", ()), ("GetInstanceData", ()),
                      ("GetInstanceAdvancedJson", (orthanc.DicomToJsonFormat.SHORT, 0, 0))],
    "FindQuery": [("GetFindQuerySize", ()), ("GetFindQueryTagName", (0,)), ("GetFindQueryValue", (0,)),
                  ("GetFindQueryTagGroup", (0,)), ("GetFindQueryTagElement", (0,))],
    "FindAnswers": [("FindAddAnswer", (DICOM,)), ("FindMarkIncomplete", ())],
}

def UseLater():
    for cls, calls in CALLS.items():
        for name, args in calls:
            key = "%%s.%%s" %% (cls, name)
            obj = KEPT.get(cls)
            if obj is None:
                RESULTS[key] = "not kept"
                continue
            try:
                getattr(obj, name)(*args)
                RESULTS[key] = "no error"
            except orthanc.OrthancException as e:
                RESULTS[key] = "OrthancException %%d" %% e.args[0]
            except Exception as e:
                RESULTS[key] = "%%s: %%s" %% (type(e).__name__, e)
    RESULTS["done"] = True

def Start(output, uri, **request):
    RESULTS.clear()
    threading.Timer(0.01, UseLater).start()
    output.AnswerBuffer("started", "text/plain")
orthanc.RegisterRestCallback("/use-later", Start)
orthanc.RegisterRestCallback("/results", lambda output, uri, **r: output.AnswerBuffer(json.dumps(RESULTS), "application/json"))
'''


def test_objects_used_too_late_raise_from_a_timer(orthanc_server, write_script, testdata):
    """Item 3: a RestOutput, a DicomInstance, a FindQuery and FindAnswers (a real C-FIND from
    dcmtk's findscu) kept by the script and used from a timer thread after their callbacks
    returned: every method raises orthanc.OrthancException (BadSequenceOfCalls), Orthanc serves."""
    findscu = dcmtk("findscu")
    server = orthanc_server(script=write_script(LATE_SCRIPT % {"dicom": testdata("ct-a1-1.dcm")}),
                            config={"DicomModalities": {"FINDSCU": ["FINDSCU", "127.0.0.1", free_port()]}})
    assert server.get("/keep").text == "kept"
    server.upload(testdata("ct-a1-1.dcm"))
    cp = subprocess.run([findscu, "-aet", "FINDSCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), "-P",
                         "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=L*", "-k", "PatientName"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and "LATE^ANSWER" in cp.stdout + cp.stderr, cp.stdout + cp.stderr
    assert server.get("/use-later").text == "started"
    results = wait_until(lambda: server.get("/results").json().get("done") and server.get("/results").json(),
                         timeout=60, what="the timer's results")
    results.pop("done")
    assert len(results) == 34
    wrong = {k: v for k, v in results.items() if v != "OrthancException 6"}
    assert not wrong, wrong
    assert_serving(server)
    # and C-FIND still works with fresh objects
    cp = subprocess.run([findscu, "-aet", "FINDSCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), "-P",
                         "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=L*", "-k", "PatientName"],
                        capture_output=True, text=True, timeout=60)
    assert "LATE^ANSWER" in cp.stdout + cp.stderr
    report("3-objects-used-too-late", methods_checked=len(results))


# ---------------------------------------------------------------------------------------------
# 4. Exceptions everywhere

FAULTS_SCRIPT = r'''
import json, sys, threading, orthanc
MODE = {"mode": "ok"}       # ok | raise | wrong | exit: how every callback below misbehaves
CALLED = {}

def misbehave(kind, good):
    CALLED[kind] = CALLED.get(kind, 0) + 1
    m = MODE["mode"]
    if m == "raise":
        raise RuntimeError("deliberate failure in the %s callback" % kind)
    if m == "exit":
        sys.exit(3)
    if m == "wrong":
        return {"wrong": "type"}
    return good

def SetMode(output, uri, **request):
    MODE["mode"] = request["body"].decode()
    output.AnswerBuffer(MODE["mode"], "text/plain")
orthanc.RegisterRestCallback("/set-mode", SetMode)
orthanc.RegisterRestCallback("/called", lambda output, uri, **r: output.AnswerBuffer(json.dumps(CALLED), "application/json"))
orthanc.RegisterRestCallback("/ok", lambda output, uri, **r: output.AnswerBuffer("ok", "text/plain"))

def Rest(output, uri, **request):
    r = misbehave("rest", None)
    output.AnswerBuffer("rest ok", "text/plain")
    return r
orthanc.RegisterRestCallback("/faulty", Rest)

def Filter(uri, **kw):
    if uri.startswith("/faulty-filter"):
        return misbehave("filter", True)
    return True
orthanc.RegisterIncomingHttpRequestFilter(Filter)

orthanc.RegisterOnChangeCallback(lambda change, level, resource: misbehave("change", None)
                                 if change == orthanc.ChangeType.NEW_INSTANCE else None)
orthanc.RegisterOnStoredInstanceCallback(lambda instance, iid: misbehave("stored", None))
orthanc.RegisterReceivedInstanceCallback(lambda dicom, origin: misbehave(
    "received", (orthanc.ReceivedInstanceAction.KEEP_AS_IS, None)))
orthanc.RegisterIncomingCStoreInstanceFilter(lambda instance: misbehave("cstore", 0))

def Find(answers, query, issuer, called):
    misbehave("find", None)
    answers.FindAddAnswer(orthanc.CreateDicom(json.dumps({"PatientID": "FAULT", "PatientName": "FIND^OK"}),
                                              None, orthanc.CreateDicomFlags.NONE))
orthanc.RegisterFindCallback(Find)

# a REST callback that runs Python for a long time, until the test says stop
STOP = threading.Event()
LOOPING = threading.Event()
def Loop(output, uri, **request):
    LOOPING.set()
    n = 0
    while not STOP.is_set():
        n += 1
    output.AnswerBuffer("looped %d" % n, "text/plain")
orthanc.RegisterRestCallback("/loop", Loop)
orthanc.RegisterRestCallback("/looping", lambda output, uri, **r: output.AnswerBuffer(str(LOOPING.is_set()), "text/plain"))
def Stop(output, uri, **request):
    STOP.set()
    output.AnswerBuffer("stopping", "text/plain")
orthanc.RegisterRestCallback("/stop-loop", Stop)
'''


def _make_instances(template, n, tag, folder=None):
    """``n`` distinct small instances (new SOP/series UIDs) made from ``template`` with pydicom;
    ``bytes``, or files in ``folder``."""
    import pydicom
    ds = pydicom.dcmread(template)
    root = "1.2.826.0.1.3680043.10.1234.%d.%d" % (os.getpid(), abs(hash(tag)) % 10**6)
    ds.SeriesInstanceUID = root + ".1"
    ds.PatientID = "ROBUST-" + tag
    out = []
    for i in range(n):
        uid = "%s.2.%d" % (root, i)
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = i
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        if folder is None:
            out.append(buf.getvalue())
        else:
            path = os.path.join(folder, "%s-%05d.dcm" % (tag, i))
            with open(path, "wb") as f:
                f.write(buf.getvalue())
            out.append(path)
    return out


def test_failing_callbacks_of_every_kind(orthanc_server, write_script, testdata, tmp_path):
    """Item 4: REST, on-change, on-stored, HTTP filter, C-FIND, received-instance and C-STORE
    filter callbacks that raise, return the wrong type, or call sys.exit(): each failure costs an
    error (logged), Orthanc keeps serving the other routes and the next requests."""
    findscu, storescu = dcmtk("findscu"), dcmtk("storescu")
    server = orthanc_server(script=write_script(FAULTS_SCRIPT),
                            config={"DicomModalities": {"FINDSCU": ["FINDSCU", "127.0.0.1", free_port()]}})
    folder = tmp_path / "dcm"
    folder.mkdir()
    files = _make_instances(testdata("ct-a1-1.dcm"), 8, "faults", str(folder))
    find = [findscu, "-aet", "FINDSCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), "-P",
            "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=F*", "-k", "PatientName"]
    checks = 0
    for i, mode in enumerate(["raise", "wrong", "exit", "ok"]):
        assert server.post("/set-mode", data=mode).text == mode
        before = server.get("/called").json()
        r = server.get("/faulty")
        assert r.status_code == (200 if mode in ("ok", "wrong") else 500), (mode, r.status_code)
        r = server.get("/faulty-filter")
        # the filter: an exception or a non-bool answers 500; the route itself does not exist
        assert r.status_code == (404 if mode == "ok" else 500), (mode, r.status_code)
        server.upload(read(files[2 * i]))                                         # REST: received, stored, change
        server.store_scu(files[2 * i + 1])                                        # C-STORE: + C-STORE filter
        cfind = subprocess.run(find, capture_output=True, text=True, timeout=60)
        out = cfind.stdout + cfind.stderr
        assert ("FIND^OK" in out) == (mode in ("ok", "wrong")), (mode, out[-500:])
        # every kind was called in this mode (change callbacks run on their own thread: poll)
        kinds = ["rest", "filter", "change", "stored", "received", "cstore", "find"]
        changes = 2 if mode == "ok" else 1   # a failing C-STORE filter rejects the C-STORE instance
        wait_until(lambda: (lambda c: all(c.get(k, 0) > before.get(k, 0) for k in kinds)
                            and c["change"] >= before.get("change", 0) + changes)(server.get("/called").json()),
                   timeout=60, what="every callback called (%s)" % mode)
        # Orthanc still serves other routes, core and Python
        assert server.get("/ok").text == "ok"
        assert_serving(server, "mode " + mode)
        checks += 1
    # the stored instances: the C-STORE filter rejected in raise/wrong/exit modes (an error is a
    # failure for the SCU), the REST ones were stored in every mode
    stored = server.get("/instances").json()
    assert len(stored) == 5, stored
    log = server.log()
    for kind in ("REST callback", "Python on-change callback", "Python on-stored-instance callback",
                 "Python incoming-http-request filter", "Python C-FIND SCP callback",
                 "Python received instance callback", "Python incoming-cstore-instance callback"):
        assert "Error in the %s, traceback:" % kind in log, kind
    assert "SystemExit: 3" in log
    assert "deliberate failure in the change callback" in log
    report("4-faulty-callbacks", modes=checks, kinds=7)


def test_long_python_loop_does_not_block_other_routes(orthanc_server, write_script):
    """Item 4: a REST callback that loops in Python (for as long as the test wants) does not stop
    other routes, Python or core, from answering; it is stopped at the end (nothing left running)."""
    server = orthanc_server(script=write_script(FAULTS_SCRIPT))
    result = {}

    def loop():
        try:
            result["loop"] = server.get("/loop", timeout=300).text
        except Exception as e:   # reported by the assertion below
            result["loop"] = repr(e)
    t = threading.Thread(target=loop)
    t.start()
    try:
        wait_until(lambda: server.get("/looping").text == "True", timeout=60, what="the loop started")
        for i in range(50):
            assert server.get("/ok", timeout=60).text == "ok"
            assert server.get("/system", timeout=60).status_code == 200
        assert t.is_alive(), "the looping callback returned before it was told to stop: %r" % result
    finally:
        server.post("/stop-loop", timeout=60)
        t.join(120)
    assert not t.is_alive()
    assert result["loop"].startswith("looped "), result
    report("4-long-loop", requests_while_looping=100)


# ---------------------------------------------------------------------------------------------
# 5. No lost or reordered changes

INGEST_SCRIPT = r'''
import json, threading, orthanc
SEEN = []
EVENTS = [0]
LOCK = threading.Lock()

def OnChange(change, level, resource):
    EVENTS[0] += 1
    if change == orthanc.ChangeType.NEW_INSTANCE:
        with LOCK:
            SEEN.append(resource)
    if EVENTS[0] % 10 == 0:
        raise RuntimeError("deliberate failure at event %d" % EVENTS[0])
orthanc.RegisterOnChangeCallback(OnChange)

def Seen(output, uri, **request):
    with LOCK:
        answer = json.dumps({"seen": SEEN, "events": EVENTS[0]})
    output.AnswerBuffer(answer, "application/json")
orthanc.RegisterRestCallback("/seen", Seen)

def Busy(output, uri, **request):
    # a REST callback that works while the ingest runs
    n = len(json.loads(orthanc.RestApiGet("/statistics")))
    output.AnswerBuffer(json.dumps({"n": n, "x": sum(range(2000))}), "application/json")
orthanc.RegisterRestCallback("/busy", Busy)
'''


def test_no_lost_or_reordered_changes_under_concurrent_ingest(orthanc_server, write_script, testdata, tmp_path):
    """Item 5: instances ingested over REST (4 threads) and C-STORE (2 storescu) at the same time,
    while Python REST callbacks run: the change callback sees every NEW_INSTANCE exactly once, in
    the order of Orthanc's /changes (Seq), though it raises at every 10th event."""
    storescu = dcmtk("storescu")
    n_total = 2000   # the figure, in CI too (about a minute on 2 cores)
    n_rest = n_total // 2
    n_dicom = n_total - n_rest
    server = orthanc_server(script=write_script(INGEST_SCRIPT))
    folder = tmp_path / "cstore"
    folder.mkdir()
    rest_files = _make_instances(testdata("ct-a1-1.dcm"), n_rest, "rest")
    dicom_files = _make_instances(testdata("ct-a1-2.dcm"), n_dicom, "dicom", str(folder))
    stop = threading.Event()
    busy = collections.Counter()

    def busy_loop():
        s = requests.Session()
        while not stop.is_set():
            busy[s.get(server.url + "/busy", timeout=60).status_code] += 1

    def upload(data):
        return requests.post(server.url + "/instances", data=data, timeout=120).status_code

    busy_threads = [threading.Thread(target=busy_loop)]
    for t in busy_threads:
        t.start()
    try:
        half = n_dicom // 2
        scus = [subprocess.Popen([storescu, "-aet", "STORESCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port)]
                                 + chunk, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for chunk in (dicom_files[:half], dicom_files[half:])]
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                codes = collections.Counter(ex.map(upload, rest_files))
            for p in scus:
                p.wait(600)
        finally:
            for p in scus:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        assert codes == {200: n_rest}, codes
        assert all(p.returncode == 0 for p in scus), [p.stderr.read()[-500:] for p in scus]
    finally:
        stop.set()
        for t in busy_threads:
            t.join(60)
    assert busy[200] > 0 and set(busy) == {200}, busy
    assert server.get("/statistics").json()["CountInstances"] == n_total
    expected = [iid for _, iid in get_changes(server)]
    assert len(expected) == n_total
    seen = wait_until(lambda: (lambda d: len(d["seen"]) >= n_total and d)(server.get("/seen").json()),
                      timeout=120, what="every NEW_INSTANCE delivered")
    got = seen["seen"]
    assert len(got) == len(set(got)), "NEW_INSTANCE delivered twice: %s" % [
        i for i, c in collections.Counter(got).items() if c > 1][:5]
    assert set(got) == set(expected), "lost: %s" % sorted(set(expected) - set(got))[:5]
    first = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    assert got == expected, "reordered from position %s: %s vs Orthanc's %s" % (
        first, got[first:first + 3], expected[first:first + 3])
    raised = len(re.findall(r"deliberate failure at event", server.log()))
    assert raised >= seen["events"] // 10 - 1 and raised > 0
    report("5-changes", instances=n_total, rest=n_rest, cstore=n_dicom, events=seen["events"],
           new_instance_checked=len(got), callback_raised=raised, busy_requests=busy[200])


# ---------------------------------------------------------------------------------------------
# 6. Shutdown and restart

STOP_SCRIPT = r'''
import time, orthanc
def OnChange(change, level, resource):
    if change == orthanc.ChangeType.NEW_INSTANCE:
        time.sleep(0.002)   # slower than the ingest: a backlog is queued in pythanc when Orthanc stops
        print("NEW_INSTANCE %s" % resource, flush=True)
    elif change == orthanc.ChangeType.ORTHANC_STOPPED:
        print("ORTHANC_STOPPED delivered", flush=True)
orthanc.RegisterOnChangeCallback(OnChange)
'''


def test_stop_during_load_delivers_every_change(orthanc_server, write_script, testdata):
    """Item 6: SIGTERM while 4 threads upload (until Orthanc begins stopping): Orthanc stops (exit
    code 0, within a generous bound, no kill), and before ORTHANC_STOPPED the change callback got every NEW_INSTANCE that
    Orthanc recorded (checked against /changes after a restart on the same storage), once each,
    in order."""
    script = write_script(STOP_SCRIPT)
    server = orthanc_server(script=script)
    instances = _make_instances(testdata("ct-a1-3.dcm"), 1200, "stop")
    sent = collections.Counter()
    stop_uploads = threading.Event()

    def uploader(k):
        # one connection per upload: Orthanc (civetweb) goes on serving a keep-alive connection
        # while it stops, so keep-alive clients would delay the stop for as long as they send
        for data in instances[k::4]:
            if stop_uploads.is_set():
                return
            try:
                sent[requests.post(server.url + "/instances", data=data, timeout=60,
                                   headers={"Connection": "close"}).status_code] += 1
            except requests.RequestException:
                sent["refused"] += 1   # Orthanc is stopping
                return
    threads = [threading.Thread(target=uploader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sent[200] >= 300, timeout=120, what="300 uploads")   # well into the load
        t0 = time.monotonic()
        sent_at_sigterm = sent[200]
        # SIGTERM in the middle of the load.  NB: Orthanc 1.10.1 itself (measured without pythanc
        # too) goes on serving HTTP clients for a few seconds after SIGTERM, and does not stop at
        # all while clients keep sending: the load here is finite (the uploads left), not endless
        server.process.send_signal(signal.SIGTERM)
    finally:
        stop_uploads.set()
        for t in threads:
            t.join(120)
    try:
        code = server.wait_exit(60)   # bounded: the fixture kills it (and the test fails) after 60 s
    except subprocess.TimeoutExpired:
        pytest.fail("Orthanc did not stop within 60 s after SIGTERM; log tail:\n" + server.log()[-3000:])
    stop_seconds = time.monotonic() - t0
    assert code == 0, "exit code %s" % code
    log = server.log()
    delivered = re.findall(r"NEW_INSTANCE (\S+)", log)
    assert log.count("ORTHANC_STOPPED delivered") == 1
    assert log.rindex("ORTHANC_STOPPED delivered") > log.rindex("NEW_INSTANCE ")
    # restart on the same storage, without script, to read what Orthanc recorded
    again = orthanc_server(script=None, workdir=server.workdir)
    recorded = [iid for _, iid in get_changes(again)]
    assert len(delivered) == len(set(delivered))
    assert delivered == recorded, "delivered %d NEW_INSTANCE, Orthanc recorded %d; first difference at %s" % (
        len(delivered), len(recorded),
        next((k for k, (a, b) in enumerate(zip(delivered, recorded)) if a != b), min(len(delivered), len(recorded))))
    assert sent_at_sigterm < len(instances)
    report("6-stop-during-load", uploads_at_sigterm=sent_at_sigterm, uploads_ok=sent[200], delivered=len(delivered), stop_seconds=round(stop_seconds, 2),
           recorded=len(recorded))


RESET_SCRIPT = r'''
import sys, orthanc
GEN = getattr(sys, "_robustness_generation", 0) + 1
sys._robustness_generation = GEN       # Python is never finalised: this survives /tools/reset

def OnChange(change, level, resource):
    if change == orthanc.ChangeType.NEW_INSTANCE:
        print("CHANGE gen=%d %s" % (GEN, resource), flush=True)
    elif change == orthanc.ChangeType.ORTHANC_STARTED:
        print("STARTED gen=%d" % GEN, flush=True)
    elif change == orthanc.ChangeType.ORTHANC_STOPPED:
        print("STOPPED gen=%d" % GEN, flush=True)
orthanc.RegisterOnChangeCallback(OnChange)

def Filter(uri, **kw):
    marker = kw["headers"].get("x-marker")
    if marker:
        print("FILTER gen=%d %s" % (GEN, marker), flush=True)
    return kw["headers"].get("x-deny") is None
orthanc.RegisterIncomingHttpRequestFilter(Filter)

def Route(output, uri, **request):
    print("ROUTE gen=%d %s" % (GEN, request["headers"].get("x-marker")), flush=True)
    output.AnswerBuffer("gen=%d" % GEN, "text/plain")
orthanc.RegisterRestCallback("/generation", Route)
print("SCRIPT LOADED gen=%d" % GEN, flush=True)
'''


def test_tools_reset_twice_no_duplicates(orthanc_server, write_script, testdata):
    """Item 6: POST /tools/reset, twice, with a script that registers a change callback, an HTTP
    filter and a REST route: the script runs again each time; afterwards each callback runs once
    per event, from the newest generation only; ORTHANC_STOPPED once per generation."""
    server = orthanc_server(script=write_script(RESET_SCRIPT))
    server.wait_for_log(r"STARTED gen=1")
    for gen in (2, 3):
        assert server.post("/tools/reset").status_code == 200
        server.wait_for_log(r"SCRIPT LOADED gen=%d" % gen)
        server.wait_ready()
        server.wait_for_log(r"STARTED gen=%d" % gen)
        marker = "m%d" % gen
        assert server.get("/generation", headers={"X-Marker": marker}).text == "gen=%d" % gen
        assert server.get("/system", headers={"X-Deny": "1"}).status_code == 403
        iid = server.upload(testdata("ct-a1-%d.dcm" % gen))["ID"]
        server.wait_for_log(r"CHANGE gen=%d %s" % (gen, iid))
        assert server.get("/generation", headers={"X-Marker": marker + "b"}).text == "gen=%d" % gen
    server.stop()
    log = server.log()
    for gen in (2, 3):
        m = "m%d" % gen
        assert re.findall(r"FILTER gen=\d+ %s\n" % m, log) == ["FILTER gen=%d %s\n" % (gen, m)]
        assert re.findall(r"ROUTE gen=\d+ %s\n" % m, log) == ["ROUTE gen=%d %s\n" % (gen, m)]
    for gen, name in ((2, "ct-a1-2.dcm"), (3, "ct-a1-3.dcm")):
        changes = re.findall(r"CHANGE gen=(\d+) (\S+)", log)
        iids = [i for g, i in changes if int(g) == gen]
        assert len(iids) == 1 and [g for g, i in changes if i == iids[0]] == [str(gen)], changes
    assert re.findall(r"STOPPED gen=(\d+)", log) == ["1", "2", "3"]
    assert re.findall(r"SCRIPT LOADED gen=(\d+)", log) == ["1", "2", "3"]
    report("6-reset", resets=2)


# ---------------------------------------------------------------------------------------------
# 7. Soak

SOAK_SCRIPT = r'''
import json, orthanc
DICOM = open(%(dicom)r, "rb").read()
def Echo(output, uri, **request):
    output.AnswerBuffer(json.dumps({"uri": uri, "get": request.get("get"), "n": len(request.get("body", b""))}),
                        "application/json")
orthanc.RegisterRestCallback("/soak/echo(/.*)?", Echo)

def Objects(output, uri, **request):
    image = orthanc.CreateImage(orthanc.PixelFormat.RGB24, 64, 64)
    image.DrawText(0, "soak", 1, 1, 255, 0, 0)
    png = orthanc.CompressPngImage(image.GetImagePixelFormat(), image.GetImageWidth(), image.GetImageHeight(),
                                   image.GetImagePitch(), image.GetImageBuffer())
    instance = orthanc.CreateDicomInstance(DICOM)
    tags = json.loads(instance.GetInstanceSimplifiedJson())
    output.AnswerBuffer(json.dumps({"png": len(png), "patient": tags.get("PatientID"),
                                    "system": len(orthanc.RestApiGet("/system"))}), "application/json")
orthanc.RegisterRestCallback("/soak/objects", Objects)

def Boom(output, uri, **request):
    raise ValueError("soak: deliberate failure")
orthanc.RegisterRestCallback("/soak/boom", Boom)

orthanc.RegisterIncomingHttpRequestFilter(lambda uri, **kw: not uri.startswith("/soak/denied"))
'''

SOAK_MIX = [
    ("GET", "/soak/echo/a?x=1&y=%C3%A9", None, 200),
    ("POST", "/soak/echo/b", b"\x00\xff" * 500, 200),
    ("GET", "/soak/objects", None, 200),
    ("GET", "/soak/boom", None, 500),
    ("GET", "/soak/denied", None, 403),
    ("GET", "/system", None, 200),
    ("GET", "/instances", None, 200),
    ("GET", "/nonexistent", None, 404),
    ("PUT", "/soak/echo/c", b"put", 200),
    ("DELETE", "/soak/echo/d", None, 200),
]


def test_soak_memory(orthanc_server, write_script, testdata):
    """Item 7: mixed requests (Python routes that answer, raise, create and free SDK objects, core
    routes, a Python HTTP filter that denies some) from 8 keep-alive connections; resident memory
    (VmRSS) after a warm-up must not grow beyond a bound.  CI: 20,000 requests, bound 20 MB;
    long mode: 1,000,000, RSS reported every 100,000."""
    server = orthanc_server(script=write_script(SOAK_SCRIPT % {"dicom": testdata("ct-a1-1.dcm")}))
    server.upload(testdata("ct-a1-1.dcm"))
    total = 1_000_000 if LONG else 20_000
    warmup = 20_000 if LONG else 4_000
    every = 100_000 if LONG else 4_000
    pool = Pool(server, 8)
    statuses = collections.Counter()
    wrong = []
    rss = []

    def one(i):
        method, path, body, expected = SOAK_MIX[i % len(SOAK_MIX)]
        status, _ = pool.request(method, path, body)
        if status != expected:
            wrong.append((path, status))
        return status

    try:
        done = 0
        base = None
        while done < total:
            chunk = min(every if done >= warmup else warmup, total - done)
            statuses.update(pool.executor.map(one, range(done, done + chunk)))
            done += chunk
            assert server.alive(), _death(server)
            kb = rss_kb(server.process.pid)
            rss.append((done, kb))
            if base is None:
                base = kb   # after the warm-up
            print("soak: %d requests, VmRSS %.1f MB (%+.1f MB since the warm-up)" % (done, kb / 1024,
                                                                                     (kb - base) / 1024))
    finally:
        pool.close()
    assert not wrong, wrong[:10]
    assert sum(statuses.values()) == total
    growth_mb = (rss[-1][1] - base) / 1024
    assert growth_mb < 20, "VmRSS grew by %.1f MB after the warm-up: %s" % (growth_mb, rss)
    assert_serving(server)
    report("7-soak", requests=total, rss_mb=[(n, round(kb / 1024, 1)) for n, kb in rss],
           growth_after_warmup_mb=round(growth_mb, 2), statuses={str(k): v for k, v in statuses.items()})


# ---------------------------------------------------------------------------------------------
# 8. Security

SECURITY_A = r'''
import orthanc
def Filter(uri, **kw):
    return kw["headers"].get("x-deny") != "yes"
orthanc.RegisterIncomingHttpRequestFilter(Filter)
orthanc.RegisterRestCallback("/script-a", lambda output, uri, **r: output.AnswerBuffer("a", "text/plain"))
'''

SECURITY_B = r'''
import orthanc
orthanc.RegisterRestCallback("/script-b(/.*)?", lambda output, uri, **r: output.AnswerBuffer("b", "text/plain"))
'''


def test_http_filter_denies_every_route(orthanc_server, write_script, tmp_path):
    """Item 8: a Python HTTP filter that denies a request denies it on every route and method:
    core routes, Orthanc Explorer, the script's own routes, another script's routes, another
    plugin's routes (ServeFolders), unknown routes."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "hello.txt").write_text("served by another plugin")
    plugins = [plugin_path()]
    serve_folders = "/usr/share/orthanc/plugins/libServeFolders.so"
    if os.path.exists(serve_folders):
        plugins.append(serve_folders)
    a = write_script(SECURITY_A, name="security_a.py")
    b = write_script(SECURITY_B, name="security_b.py")
    server = orthanc_server(script=a, config={"Plugins": plugins, "Python": {"Scripts": [b]},
                                              "ServeFolders": {"/served": str(served)}})
    routes = [("GET", "/system"), ("GET", "/app/explorer.html"), ("GET", "/script-a"), ("GET", "/script-b/x"),
              ("POST", "/script-b"), ("PUT", "/script-b/y"), ("DELETE", "/script-b/z"), ("GET", "/instances"),
              ("POST", "/tools/find"), ("POST", "/instances"), ("DELETE", "/patients/x"), ("GET", "/nonexistent"),
              ("GET", "/plugins"), ("GET", "/tools/metrics-prometheus")]
    if len(plugins) == 2:
        routes.append(("GET", "/served/hello.txt"))
    # allowed without the header (the routes exist and answer)
    assert server.get("/script-a").text == "a" and server.get("/script-b/x").text == "b"
    assert server.get("/app/explorer.html").status_code == 200
    if len(plugins) == 2:
        assert server.get("/served/hello.txt").text == "served by another plugin"
    denied = {}
    for method, path in routes:
        body = b"{}" if method in ("POST", "PUT") else None
        denied[method + " " + path] = server.request(method, path, data=body, headers={"X-Deny": "yes"}).status_code
    assert set(denied.values()) == {403}, denied
    # nothing was done by the denied requests
    assert server.get("/instances").json() == []
    report("8-filter-every-route", routes=len(routes), other_plugin=len(plugins) == 2)


def test_world_writable_script_warns(orthanc_server, write_script):
    """Item 8: a world-writable script produces a warning in the log; a private one does not."""
    private = write_script("print('private script')\n", name="private_script.py")
    os.chmod(private, 0o644)
    server = orthanc_server(script=private)
    server.wait_for_log(r"private script")
    assert "writable by every user" not in server.log()
    server.stop()
    shared = write_script("print('shared script')\n", name="shared_script.py")
    os.chmod(shared, 0o666)
    assert os.stat(shared).st_mode & stat.S_IWOTH
    server = orthanc_server(script=shared)
    server.wait_for_log(r"shared script")
    server.wait_for_log(r"the Python script %s is writable by every user" % re.escape(shared))
    report("8-world-writable", warned=True)
