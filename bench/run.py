#!/usr/bin/env python3
"""Benchmark pythanc against the official Orthanc Python plugin (see bench/README.md).

    .venv/bin/python bench/run.py [--quick] [--out bench/results/results.json]
    .venv/bin/python bench/run.py --index postgresql --ingest-only   # the ingest on a PostgreSQL index

The same script (bench/scripts/bench_script.py) runs on the same Orthanc binary with each plugin
configuration, alternating official / official with "AllowThreads" (where the official plugin has
it: 4.3+) / pythanc over several rounds; every run is a fresh Orthanc with an empty storage folder,
started through ``pythanc.testing.OrthancServer`` on free ports of 127.0.0.1.  Prints, per
scenario, the median over the rounds for each configuration and the ratio pythanc / the official
plugin's best configuration in this run, and writes every raw figure to a JSON file.  Exit code 0
if every check passed, 1 otherwise.  ``--profile-apicall TOOL`` instead profiles one Orthanc under
the rest-apicall load (see bench/profile-apicall.sh).
"""

import argparse
import datetime
import glob
import http.client
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPT = os.path.join(HERE, "scripts", "bench_script.py")
STOP_AFTER_LUA = os.path.join(HERE, "wrk", "stop_after.lua")
OFFICIAL_GLOB = "/usr/lib/orthanc/libOrthancPython.so.*"
SHARED = os.environ.get("PYTHANC_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
DICOM_DEFAULT = os.path.join(SHARED, "testdata", "ct-a1-1.dcm")
WRK = shutil.which("wrk") or "/usr/bin/wrk"

# The rest-kwargs request: a regex group, a query string and headers.  wrk and the identity check
# send exactly these headers and no other (wrk adds nothing when Host is given).
KWARGS_PATH = "/bench/kwargs/item-42?alpha=1&beta=two%20words&gamma="
KWARGS_HEADERS = [("Host", "bench"), ("X-Bench-One", "1"), ("X-Bench-Two", "hello world")]

ORTHANC_CONFIG = {
    "KeepAlive": True,
    "PythonVerbose": False,
}

MODES = {
    # rounds: A B pairs; duration/warmup: seconds of wrk; mem_*: requests of the memory scenario.
    # body_mb/body_requests: the large-body scenarios; file_mb: the DICOM file behind worker-apiget.
    "quick": dict(rounds=2, duration=2, warmup=1, ingest=300, ingest_threads=4, mem_warm=1000,
                  mem_total=20000, cpu_seconds=0.3, cpu_t1_runs=2, cpu_t3_runs=1, drain_timeout=30,
                  body_mb=64, body_requests=3, file_mb=1),
    "full": dict(rounds=5, duration=10, warmup=2, ingest=300, ingest_threads=4, mem_warm=1000,
                 mem_total=100000, cpu_seconds=0.3, cpu_t1_runs=3, cpu_t3_runs=3, drain_timeout=60,
                 body_mb=64, body_requests=5, file_mb=1),
}

# Fields of Orthanc's /system that differ between two Orthanc processes for reasons unrelated to
# the plugins (the free ports of each run; DatabaseServerIdentifier, 1.12+, is per process):
# compared modulo these.
SYSTEM_PER_PROCESS = ("DatabaseServerIdentifier", "HttpPort", "DicomPort")

# scenario -> (unit, which is better, description)
SCENARIOS = [
    ("native-limit", "req/s", "higher", "Orthanc's own GET /system (no Python), wrk -t2 -c8"),
    ("rest-trivial", "req/s", "higher", "OnRest answering 'ok', wrk -t2 -c8"),
    ("rest-kwargs", "req/s", "higher", "regex group + query + headers answered as JSON, wrk -t2 -c8"),
    ("rest-apicall", "req/s", "higher", "callback calls RestApiGet('/system'), wrk -t2 -c8"),
    ("cpu-concurrency", "speed-up", "higher", "3 x t1 / t3 for a ~0.3 s pure-Python callback"),
    ("cpu-workers", "speed-up", "higher", "the same, registered with worker=True where the plugin accepts it"),
    ("ingest-onstored", "inst/s", "higher", "POST /instances from 4 threads, stored callback reads JSON + metadata"),
    ("onchange-drain", "ms", "lower", "from the ingest's last answer to the change callback's last NEW_INSTANCE "
     "(0: every change delivered before the ingest ended)"),
    ("memory", "MB", "lower", "VmRSS growth between 1,000 and N rest-kwargs requests"),
    ("latency-trivial-p50", "us", "lower", "rest-trivial, one client (wrk -t1 -c1, keep-alive): median latency"),
    ("latency-trivial-p99", "us", "lower", "the same: 99th percentile"),
    ("latency-apicall-p50", "us", "lower", "rest-apicall, one client: median latency"),
    ("latency-apicall-p99", "us", "lower", "the same: 99th percentile"),
    ("latency-native-p50", "us", "lower", "Orthanc's own GET /system, one client: median latency (no Python)"),
    ("latency-native-p99", "us", "lower", "the same: 99th percentile"),
    ("apicall-excess-p50", "us", "lower", "derived: latency-apicall-p50 - latency-trivial-p50 - latency-native-p50, "
                                          "what the nested RestApiGet costs beyond its two parts"),
    ("apicall/additive", "fraction", "higher", "derived: rest-apicall / (1 / (1/rest-trivial + 1/native-limit)), "
                                               "1.0 if an apicall request costs a trivial one plus a /system one"),
    ("body-upload", "MB/s", "higher", "POST of N MB to a Python route answering its length, one client"),
    ("body-upload-rss", "x body", "lower", "Orthanc's peak RSS growth during one upload / body size (worst request)"),
    ("body-download", "MB/s", "higher", "GET of a Python route answering N MB, one client"),
    ("body-download-rss", "x body", "lower", "Orthanc's peak RSS growth during one download / body size (worst request)"),
    ("worker-trivial-overhead", "us", "lower", "pythanc only: p50 of the trivial route with worker=True minus in-process, one client"),
    ("worker-apiget", "ratio", "higher", "pythanc only: RestApiGet of a ~1 MB instance file, worker / in-process throughput, one client"),
]
PYTHANC_ONLY = ("worker-trivial-overhead", "worker-apiget")
# Below this official figure a ratio is noise, not a comparison (an RSS growth under 5 % of the body:
# Orthanc sends a plugin's answer without copying it, so the download's growth is about 0; a change
# delivered under 0.05 ms after the ingest's last answer, usually 0: every change came before it).
# Both values are still reported, so a pythanc figure above an official 0 shows in the table.
RATIO_FLOOR = {"body-upload-rss": 0.05, "body-download-rss": 0.05, "onchange-drain": 0.05}
# Differences (possibly negative): compared by their values, not by a ratio.
NO_RATIO = ("apicall-excess-p50",)


def log(msg):
    print(msg, flush=True)


# ---- HTTP helpers (127.0.0.1 only) ----------------------------------------------------------------

def http_request(port, method, path, body=None, headers=None, raw_headers=None, timeout=120, conn=None):
    """One request; returns (status, body bytes).  ``raw_headers``: exactly these headers, no others."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if raw_headers is not None:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in raw_headers:
                conn.putheader(k, v)
            conn.endheaders(body)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        if own:
            conn.close()


def get_json(port, path):
    status, body = http_request(port, "GET", path)
    if status != 200:
        raise RuntimeError("GET %s -> %s: %r" % (path, status, body[:300]))
    return json.loads(body)


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for PID %d" % pid)


# ---- wrk ------------------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(out):
    res = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        raise RuntimeError("cannot parse wrk output:\n" + out)
    res["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    lat = {}
    for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        lat["p" + p] = round(float(v) * _UNIT_MS[u], 4)
    res["latency_ms"] = lat
    return res


def wrk_args(url, duration, threads=2, conns=8, headers=(), script=None, script_args=()):
    args = [WRK, "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency"]
    for k, v in headers:
        args += ["-H", "%s: %s" % (k, v)]
    if script:
        args += ["-s", script]
    args.append(url)
    if script_args:
        args += ["--"] + [str(a) for a in script_args]
    return args


def run_wrk(url, duration, **kw):
    args = wrk_args(url, duration, **kw)
    p = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    if p.returncode != 0:
        raise RuntimeError("wrk failed (%s): %s %s" % (p.returncode, p.stdout, p.stderr))
    return parse_wrk(p.stdout)


def run_wrk_count(url, total, headers=(), threads=2, conns=8, timeout=600):
    """About ``total`` requests (wrk's own count is returned): each thread stops after total/threads."""
    fd, marker = tempfile.mkstemp(prefix="pythanc-bench-wrk-")
    os.close(fd)
    per_thread = max(1, total // threads)
    args = wrk_args(url, timeout, threads=threads, conns=conns, headers=headers, script=STOP_AFTER_LUA,
                    script_args=(per_thread, marker))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            with open(marker) as f:
                if len(f.read().split()) >= threads:
                    break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)   # wrk prints its summary and exits
        out, err = proc.communicate(timeout=30)
        if proc.returncode not in (0, -signal.SIGINT):
            raise RuntimeError("wrk failed (%s): %s %s" % (proc.returncode, out, err))
        return parse_wrk(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.unlink(marker)


# ---- test data ------------------------------------------------------------------------------------

def make_dicom_files(src, n):
    """``n`` copies of ``src`` with distinct, deterministic SOPInstanceUIDs; a list of bytes."""
    import pydicom
    from pydicom.uid import generate_uid
    files = []
    for i in range(n):
        ds = pydicom.dcmread(src)
        uid = generate_uid(entropy_srcs=["pythanc-bench", str(i)])
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = i + 1
        buf = io.BytesIO()
        ds.save_as(buf)
        files.append(buf.getvalue())
    if len({f for f in files}) != n:
        raise RuntimeError("generated DICOM files are not distinct")
    return files


def cpu_loop(n):
    # the same loop as OnCpu in bench_script.py
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def calibrate_cpu(seconds):
    n = 200000
    best = None
    for _ in range(3):
        t = time.perf_counter()
        cpu_loop(n)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return max(1000, int(n * seconds / best))


# ---- scenarios ------------------------------------------------------------------------------------

def scenario_wrk(server, path, mode, headers=(), threads=2, conns=8):
    url = server.url + path
    run_wrk(url, mode["warmup"], headers=headers, threads=threads, conns=conns)
    r = run_wrk(url, mode["duration"], headers=headers, threads=threads, conns=conns)
    r["value"] = r["rps"]
    errors = []
    if r["non_2xx"]:
        errors.append("%d non-2xx answers" % r["non_2xx"])
    se = r["socket_errors"]
    if se.get("connect") or se.get("timeout"):
        errors.append("socket errors %s" % se)
    if errors:
        r["error"] = "; ".join(errors)
    return r


def scenario_latency(server, path, mode):
    """One client: wrk -t1 -c1 (one keep-alive connection, each request sent when the previous one
    is answered; wrk's C client and its HdrHistogram cost far less than the routes measured).
    Returns (p50, p99) records in microseconds."""
    r = scenario_wrk(server, path, mode, threads=1, conns=1)
    lat = r.get("latency_ms", {})
    out = []
    for p in ("p50", "p99"):
        rec = {"rps": r.get("rps"), "requests": r.get("requests"), "latency_ms": lat}
        if r.get("error"):
            rec["error"] = r["error"]
        rec["value"] = lat[p] * 1000.0 if p in lat and not r.get("error") else None
        if rec["value"] is None and not rec.get("error"):
            rec["error"] = "no %s in wrk's output" % p
        out.append(rec)
    return tuple(out)


def vm_status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s for PID %d" % (field, pid))


class PeakRss:
    """Orthanc's peak RSS during a block, in kB above its RSS at the start.  Resets the kernel's
    high-water mark (``5`` into /proc/PID/clear_refs, Linux 4.0+) and reads VmHWM at the end;
    where the reset is refused, samples VmRSS every millisecond instead."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.start_kb = vm_status_kb(self.pid, "VmRSS")
        try:
            with open("/proc/%d/clear_refs" % self.pid, "w") as f:
                f.write("5")
            self.method = "VmHWM after clear_refs"
            self.thread = None
        except OSError:
            self.method = "VmRSS sampled every 1 ms"
            self.peak = self.start_kb
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, vm_status_kb(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            time.sleep(0.001)

    def __exit__(self, *exc):
        if self.thread is None:
            self.peak = vm_status_kb(self.pid, "VmHWM")
        else:
            self.stop.set()
            self.thread.join(10)
        self.growth_kb = self.peak - self.start_kb
        return False


def scenario_body(server, mode, direction):
    """body-upload or body-download in a fresh Orthanc: the first request measures the peak RSS
    growth (its VmHWM minus its VmRSS just before, as a multiple of the body size: later requests
    would find memory that the first one left to the allocator); the next ``body_requests`` ones
    measure the throughput (MB/s, median).  One keep-alive connection of http.client."""
    port, pid = server.http_port, server.process.pid
    size = mode["body_mb"] * 1024 * 1024
    if direction == "upload":
        method, path, data, expected = "POST", "/bench/body-length", b"b" * size, str(size).encode()
    else:
        method, path, data, expected = "GET", "/bench/big-answer?mb=%d" % mode["body_mb"], None, None
        # the route makes its answer once: make it now, before the RSS baseline
        st, ans = http_request(port, "GET", "/bench/big-answer?mb=%d&prepare=1" % mode["body_mb"])
        if st != 200:
            raise RuntimeError("prepare %s -> %s %r" % (path, st, ans[:200]))
    rates, growths, growth_mb, errors = [], [], [], []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        for i in range(mode["body_requests"] + 1):
            with PeakRss(pid) as rss:
                t = time.perf_counter()
                st, ans = http_request(port, method, path, body=data, conn=conn)
                dt = time.perf_counter() - t
            if st != 200 or (expected is not None and ans != expected) or (expected is None and len(ans) != size):
                errors.append("%s %s -> %s, %d bytes: %r" % (method, path, st, len(ans), ans[:100]))
                continue
            growths.append(rss.growth_kb * 1024.0 / size)
            growth_mb.append(rss.growth_kb / 1024.0)
            if i:
                rates.append(size / dt / 1e6)
    finally:
        conn.close()
    rec = {"value": statistics.median(rates) if rates else None, "mb": mode["body_mb"], "rates_mb_s": rates}
    rss_rec = {"value": growths[0] if growths else None, "growths_x_body": growths, "growths_mb": growth_mb, "method": rss.method,
               "body_bytes": size, "note": "value: the first request; the others for information"}
    if errors:
        rec["error"] = rss_rec["error"] = "; ".join(errors[:3])
        rec["value"] = rss_rec["value"] = None
    return {"body-" + direction: rec, "body-%s-rss" % direction: rss_rec}


def make_big_dicom(src, mb):
    """A copy of ``src`` with a private OB element of ``mb`` MB: a DICOM file of about ``mb`` MB."""
    import pydicom
    from pydicom.uid import generate_uid
    ds = pydicom.dcmread(src)
    uid = generate_uid(entropy_srcs=["pythanc-bench-big", str(mb)])
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.add_new((0x0011, 0x0010), "LO", "PYTHANC BENCH")
    ds.add_new((0x0011, 0x1001), "OB", bytes(range(256)) * (mb * 4096))
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def scenario_workers(server, mode, big_dicom):
    """pythanc only: worker round trip vs in-process (p50 difference, us) and RestApiGet of the
    ~1 MB instance file from a worker vs in-process (throughput ratio), one client each."""
    port = server.http_port
    st, body = http_request(port, "POST", "/instances", body=big_dicom, headers={"Content-Type": "application/dicom"})
    if st != 200:
        raise RuntimeError("upload of the %d-byte DICOM file -> %s %r" % (len(big_dicom), st, body[:200]))
    iid = json.loads(body)["ID"]
    size = len(http_request(port, "GET", "/instances/%s/file" % iid)[1])
    res = {}
    inproc, _ = scenario_latency(server, "/bench/trivial", mode)
    worker, _ = scenario_latency(server, "/bench/worker-trivial", mode)
    rec = {"in_process_p50_us": inproc.get("value"), "worker_p50_us": worker.get("value"),
           "in_process": inproc, "worker": worker}
    err = inproc.get("error") or worker.get("error")
    rec["value"] = None if err or None in (inproc.get("value"), worker.get("value")) \
        else worker["value"] - inproc["value"]
    if err:
        rec["error"] = err
    res["worker-trivial-overhead"] = rec
    rec = {"file_bytes": size}
    for key, path in (("in_process", "/bench/apiget-file?id=" + iid), ("worker", "/bench/worker-apiget-file?id=" + iid)):
        st, ans = http_request(port, "GET", path)
        if st != 200 or ans != str(size).encode():
            rec["error"] = "%s -> %s %r (expected %d)" % (path, st, ans[:200], size)
            break
        r = scenario_wrk(server, path, mode, threads=1, conns=1)
        rec[key] = r
        rec[key + "_mb_s"] = r["rps"] * size / 1e6 if r.get("rps") else None
        if r.get("error"):
            rec["error"] = r["error"]
    ok = not rec.get("error") and rec.get("in_process_mb_s") and rec.get("worker_mb_s") is not None
    rec["value"] = rec["worker_mb_s"] / rec["in_process_mb_s"] if ok else None
    res["worker-apiget"] = rec
    return res


def scenario_cpu(server, mode, n, route="/bench/cpu"):
    port = server.http_port
    path = "%s?n=%d" % (route, n)

    def one(results, i, barrier=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.connect()
            if barrier is not None:
                barrier.wait(30)
            status, body = http_request(port, "GET", path, conn=conn)
            results[i] = (status, body, time.monotonic())
        finally:
            conn.close()

    status, expected = http_request(port, "GET", path)    # warm-up, and the expected answer
    if status != 200 or expected != str(cpu_loop(n)).encode():
        return {"error": "cpu: unexpected answer %s %r" % (status, expected[:100])}
    t1s = []
    for _ in range(mode["cpu_t1_runs"]):
        t = time.monotonic()
        status, body = http_request(port, "GET", path)
        t1s.append(time.monotonic() - t)
        if status != 200 or body != expected:
            return {"error": "cpu: unexpected answer %s %r" % (status, body[:100])}
    t3s = []
    for _ in range(mode["cpu_t3_runs"]):
        results = [None] * 3
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=one, args=(results, i, barrier), daemon=True) for i in range(3)]
        for th in threads:
            th.start()
        barrier.wait(30)
        t = time.monotonic()
        for th in threads:
            th.join(120)
        if any(r is None or r[0] != 200 or r[1] != expected for r in results):
            return {"error": "cpu: concurrent requests failed: %r" % (results,)}
        t3s.append(max(r[2] for r in results) - t)
    t1 = statistics.median(t1s)
    t3 = statistics.median(t3s)
    return {"value": 3 * t1 / t3, "n": n, "t1_s": t1, "t3_s": t3, "t1_runs": t1s, "t3_runs": t3s}


def scenario_ingest(server, mode, files):
    port = server.http_port
    n = len(files)
    lock = threading.Lock()
    state = {"next": 0, "errors": [], "done": 0}
    barrier = threading.Barrier(mode["ingest_threads"] + 1)

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.connect()
            barrier.wait(30)
            while True:
                with lock:
                    i = state["next"]
                    if i >= n:
                        return
                    state["next"] = i + 1
                status, body = http_request(port, "POST", "/instances", body=files[i],
                                            headers={"Content-Type": "application/dicom"}, conn=conn)
                ok = status == 200 and json.loads(body).get("Status") == "Success"
                with lock:
                    if ok:
                        state["done"] += 1
                    else:
                        state["errors"].append("file %d: %s %r" % (i, status, body[:200]))
        except Exception as e:  # noqa: BLE001 - reported as the scenario's error
            with lock:
                state["errors"].append("client thread: %r" % e)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(mode["ingest_threads"])]
    for th in threads:
        th.start()
    barrier.wait(30)
    t0 = time.monotonic()
    for th in threads:
        th.join(600)
    t_end = time.monotonic()
    ingest = {"value": n / (t_end - t0), "files": n, "seconds": t_end - t0, "stored_ok": state["done"]}
    errors = list(state["errors"][:5])
    if any(th.is_alive() for th in threads):
        errors.append("client threads still running after 600 s")

    # onchange-drain: poll the counter (a Python route) until it reaches n; bounded.
    drain = {"expected": n}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        deadline = t_end + mode["drain_timeout"]
        counters, polls = None, 0
        while True:
            status, body = http_request(port, "GET", "/bench/counters", conn=conn)
            now = time.monotonic()
            polls += 1
            counters = json.loads(body)
            if counters["new_instance"] >= n or now > deadline:
                break
            time.sleep(0.002)
        # The lag of change delivery: from the ingest's last answer to the change callback's last
        # NEW_INSTANCE (both time.monotonic(), one clock for every process of the machine), 0 if
        # every change was delivered before; the polls only say when to look.
        last_at = counters.get("last_new_instance_at")
        drain["poll_lag_s"] = now - t_end
        drain["polls"] = polls
        drain["lag_s"] = max(0.0, last_at - t_end) if last_at is not None else drain["poll_lag_s"]
        drain["value"] = drain["lag_s"] * 1000.0
        time.sleep(0.3)          # a late duplicate would show here
        status, body = http_request(port, "GET", "/bench/counters", conn=conn)
        final = json.loads(body)
    finally:
        conn.close()
    drain["counted"] = final["new_instance"]
    if final["new_instance"] != n:
        drain["error"] = "change callback counted %d NEW_INSTANCE for %d instances (%s)" % (
            final["new_instance"], n, "lost events" if final["new_instance"] < n else "duplicates")
        drain["value"] = None
    ingest["stored_callback_calls"] = final["stored"]
    if final["stored"] != n or final["stored_errors"]:
        errors.append("stored callback: %d calls, %d failed reads, for %d instances"
                      % (final["stored"], final["stored_errors"], n))
    count = get_json(port, "/statistics")["CountInstances"]
    ingest["count_instances"] = count
    if count != n:
        errors.append("Orthanc holds %d instances, expected %d" % (count, n))
    if errors:
        ingest["error"] = "; ".join(errors)
        ingest["value"] = None
    return ingest, drain


def scenario_memory(server, mode):
    url = server.url + KWARGS_PATH
    pid = server.process.pid
    first = run_wrk_count(url, mode["mem_warm"], headers=KWARGS_HEADERS)
    time.sleep(0.2)
    rss1 = vm_rss_kb(pid)
    second = run_wrk_count(url, mode["mem_total"] - first["requests"], headers=KWARGS_HEADERS)
    time.sleep(0.2)
    rss2 = vm_rss_kb(pid)
    res = {"requests_first": first["requests"], "requests_total": first["requests"] + second["requests"],
           "rss_first_kb": rss1, "rss_last_kb": rss2, "value": (rss2 - rss1) / 1024.0,
           "non_2xx": first["non_2xx"] + second["non_2xx"]}
    if res["non_2xx"]:
        res["error"] = "%d non-2xx answers" % res["non_2xx"]
    return res


# ---- one Orthanc run ------------------------------------------------------------------------------

class PostgresIndex:
    """``--index postgresql``: one PostgreSQL server for the whole benchmark
    (``pythanc.testing.PostgresCluster``) and a fresh database of it for every Orthanc run, through
    Debian's orthanc-postgresql index plugin; the same setup for every configuration."""

    def __init__(self):
        from pythanc.testing import PostgresCluster, postgresql_index_plugin
        self.plugin = postgresql_index_plugin()
        self.cluster = PostgresCluster()
        self.databases = []

    def orthanc_config(self, label):
        """The configuration entries of one Orthanc run (a new database), and the index plugin."""
        db = self.cluster.createdb("bench_%s_%d" % (re.sub(r"\W", "_", label).lower(), len(self.databases)))
        self.databases.append(db)
        return {"PostgreSQL": self.cluster.index_config(db)}, self.plugin

    def stop(self):
        self.cluster.stop()


def start_server(cfg, workroot, label):
    """A fresh Orthanc for the configuration ``cfg`` (see plugin_configs); with ``cfg["index"]``
    (a PostgresIndex), its index on a new PostgreSQL database, the index plugin loaded after the
    configuration's Python plugin."""
    from pythanc.testing import OrthancServer
    workdir = tempfile.mkdtemp(prefix=label + "-", dir=workroot)
    config = dict(ORTHANC_CONFIG)
    config.update(cfg["orthanc_config"])
    if cfg.get("index") is not None:
        extra, index_plugin = cfg["index"].orthanc_config(label)
        config.update(extra)
        config["Plugins"] = [cfg["library"], index_plugin]
    return OrthancServer(script=SCRIPT, plugin=cfg["library"], config=config, workdir=workdir)


def normalised_system(answer):
    """Orthanc's /system answer (bytes) modulo the per-process fields (SYSTEM_PER_PROCESS)."""
    d = json.loads(answer)
    return {k: v for k, v in d.items() if k not in SYSTEM_PER_PROCESS}


def stop_server(server, rec):
    """Stop an Orthanc run (by its PID) and keep the end of its log in the record."""
    try:
        server.stop()
    finally:
        rec["log_tail"] = server.log()[-2000:]


def guarded(record, name, fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
        record.setdefault("errors", []).append("%s: %r" % (name, e))
        return {"error": repr(e), "value": None}


def run_main(cfg, mode, files, cpu_n, workroot, ingest_only=False):
    """ingest + drain on empty storage, then the REST, cpu and latency scenarios (unless
    ``ingest_only``), in one fresh Orthanc."""
    plugin_name = cfg["name"]
    rec = {"plugin": plugin_name, "instance": "main", "scenarios": {}}
    server = start_server(cfg, workroot, plugin_name + "-main")
    try:
        rec["pid"] = server.process.pid
        rec["orthanc_version"] = get_json(server.http_port, "/system").get("Version")
        try:
            rec["plugin_version"] = get_json(server.http_port, "/plugins/python").get("Version")
        except Exception:  # noqa: BLE001
            rec["plugin_version"] = None
        try:
            rec["python_version"] = get_json(server.http_port, "/bench/python").get("version")
        except Exception:  # noqa: BLE001
            rec["python_version"] = None
        sc = rec["scenarios"]
        res = guarded(rec, "ingest", scenario_ingest, server, mode, files)
        if isinstance(res, tuple):
            sc["ingest-onstored"], sc["onchange-drain"] = res
        else:
            sc["ingest-onstored"] = sc["onchange-drain"] = res
        if ingest_only:
            rec["alive_at_end"] = server.alive()
            return rec
        # answers, for the identity checks
        answers = {}
        st, body = http_request(server.http_port, "GET", KWARGS_PATH, raw_headers=KWARGS_HEADERS)
        answers["rest-kwargs"] = [st, body.decode("utf-8", "replace")]
        st, body = http_request(server.http_port, "GET", "/bench/trivial")
        answers["rest-trivial"] = [st, body.decode("utf-8", "replace")]
        st, body = http_request(server.http_port, "GET", "/bench/apicall")
        st_native, native = http_request(server.http_port, "GET", "/system")
        try:
            answers["rest-apicall"] = [st, normalised_system(body)]
            rec["apicall_is_native"] = st == st_native == 200 and normalised_system(body) == normalised_system(native)
        except ValueError:
            answers["rest-apicall"] = [st, body.decode("utf-8", "replace")]
            rec["apicall_is_native"] = False
        rec["answers"] = answers
        sc["native-limit"] = guarded(rec, "native-limit", scenario_wrk, server, "/system", mode)
        sc["rest-trivial"] = guarded(rec, "rest-trivial", scenario_wrk, server, "/bench/trivial", mode)
        sc["rest-kwargs"] = guarded(rec, "rest-kwargs", scenario_wrk, server, KWARGS_PATH, mode, KWARGS_HEADERS)
        sc["rest-apicall"] = guarded(rec, "rest-apicall", scenario_wrk, server, "/bench/apicall", mode)
        sc["cpu-concurrency"] = guarded(rec, "cpu-concurrency", scenario_cpu, server, mode, cpu_n)
        sc["cpu-workers"] = guarded(rec, "cpu-workers", scenario_cpu, server, mode, cpu_n, "/bench/cpu-worker")
        for route, key in (("/bench/trivial", "latency-trivial"), ("/bench/apicall", "latency-apicall"),
                           ("/system", "latency-native")):
            res = guarded(rec, key, scenario_latency, server, route, mode)
            sc[key + "-p50"], sc[key + "-p99"] = res if isinstance(res, tuple) else (res, res)
        sc.update(derived(sc))
        rec["rss_end_kb"] = vm_rss_kb(server.process.pid)
        rec["alive_at_end"] = server.alive()
    finally:
        stop_server(server, rec)
    return rec


def derived(sc):
    """The derived figures of one main run: how the nested call compares with its two parts."""
    def v(key):
        return sc.get(key, {}).get("value")
    out = {}
    parts = [v(k) for k in ("latency-apicall-p50", "latency-trivial-p50", "latency-native-p50")]
    out["apicall-excess-p50"] = {"derived": True, "value": parts[0] - parts[1] - parts[2]} \
        if None not in parts else {"derived": True, "value": None, "error": "a latency figure is missing"}
    parts = [v(k) for k in ("rest-apicall", "rest-trivial", "native-limit")]
    if None in parts or not all(parts):
        out["apicall/additive"] = {"derived": True, "value": None, "error": "a throughput figure is missing"}
    else:
        additive = 1.0 / (1.0 / parts[1] + 1.0 / parts[2])
        out["apicall/additive"] = {"derived": True, "additive_rps": additive, "value": parts[0] / additive}
    return out


def run_memory(cfg, mode, workroot):
    plugin_name = cfg["name"]
    rec = {"plugin": plugin_name, "instance": "memory", "scenarios": {}}
    server = start_server(cfg, workroot, plugin_name + "-memory")
    try:
        rec["pid"] = server.process.pid
        rec["scenarios"]["memory"] = guarded(rec, "memory", scenario_memory, server, mode)
        rec["alive_at_end"] = server.alive()
    finally:
        stop_server(server, rec)
    return rec


def run_bodies(cfg, mode, workroot, big_dicom):
    """The large-body scenarios, each in a fresh Orthanc of its own (its peak RSS is not that of
    other scenarios), then, for pythanc, the worker ones in the upload's Orthanc.  One record."""
    plugin_name = cfg["name"]
    rec = {"plugin": plugin_name, "instance": "bodies", "scenarios": {}, "pids": []}
    alive = True
    for direction in ("upload", "download"):
        server = start_server(cfg, workroot, "%s-%s" % (plugin_name, direction))
        sub = {}
        try:
            rec["pids"].append(server.process.pid)
            res = guarded(rec, "body-" + direction, scenario_body, server, mode, direction)
            for key in ("body-" + direction, "body-%s-rss" % direction):
                rec["scenarios"][key] = res.get(key, res) if "value" not in res else res
            if plugin_name == "pythanc" and direction == "upload":
                res = guarded(rec, "workers", scenario_workers, server, mode, big_dicom)
                for key in PYTHANC_ONLY:
                    rec["scenarios"][key] = res.get(key, res) if "value" not in res else res
            alive = alive and server.alive()
        finally:
            stop_server(server, sub)
            rec.setdefault("log_tail", "")
            rec["log_tail"] += sub.get("log_tail", "")[-1000:]
    rec["alive_at_end"] = alive
    return rec


# ---- summary --------------------------------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "FAIL"
    if unit == "req/s":
        return "%.0f" % v
    if unit in ("inst/s", "ms", "MB", "us", "MB/s"):
        return "%.1f" % v
    if unit == "fraction":
        return "%.3f" % v
    return "%.2f" % v


def summarise(runs, configs):
    """Per scenario: each configuration's median over the rounds, the official plugin's best
    configuration in this run (highest or lowest median, as the scenario's ``better`` says), and
    ratio = pythanc / that best official median."""
    names = [c["name"] for c in configs]
    official = [c["name"] for c in configs if c["plugin"] == "official"]
    summary = {}
    for name, unit, better, desc in SCENARIOS:
        entry = {"unit": unit, "better": better, "description": desc, "values": {}, "errors": {}}
        for p in names:
            vals, errs = [], []
            for r in runs:
                if r["plugin"] != p:
                    continue
                s = r["scenarios"].get(name)
                if s is None:
                    continue
                if s.get("error") or s.get("value") is None:
                    errs.append(s.get("error") or "no value")
                vals.append(s.get("value"))
            entry["values"][p] = vals
            entry["errors"][p] = errs
            ok = [v for v in vals if v is not None]
            entry[p] = statistics.median(ok) if ok and not errs else None
        best = None
        if name not in PYTHANC_ONLY:
            cands = [(entry[p], p) for p in official if entry.get(p) is not None]
            if cands:
                best = (max if better == "higher" else min)(cands)[1]
        entry["best_official"] = best
        entry["run"] = any(entry["values"].values())     # False: not run (--ingest-only)
        a, b = (entry[best] if best else None), entry.get("pythanc")
        entry["ratio"] = (b / a) if (a and b is not None and abs(a) >= RATIO_FLOOR.get(name, 0)
                                     and name not in NO_RATIO) else None
        summary[name] = entry
    # rest-trivial as a fraction of native-limit (each configuration's own Orthanc, per round, then median)
    frac = {}
    trivial_run = False
    for p in names:
        fs = []
        for r in runs:
            if r["plugin"] == p and r["instance"] == "main":
                trivial_run = trivial_run or "rest-trivial" in r["scenarios"]
                t, n = r["scenarios"].get("rest-trivial", {}), r["scenarios"].get("native-limit", {})
                if t.get("value") and n.get("value"):
                    fs.append(t["value"] / n["value"])
        frac[p] = statistics.median(fs) if fs else None
    cands = [(frac[p], p) for p in official if frac.get(p)]
    best = max(cands)[1] if cands else None
    entry = {"unit": "fraction", "better": "higher", "best_official": best, "run": trivial_run,
             "ratio": (frac["pythanc"] / frac[best]) if best and frac.get("pythanc") else None}
    entry.update(frac)
    summary["rest-trivial/native-limit"] = entry
    return summary


def checks(runs, configs):
    out = []

    def add(name, ok, detail=""):
        out.append({"check": name, "ok": bool(ok), "detail": detail})

    with_answers = any("answers" in r for r in runs)     # none with --ingest-only
    for key in ("rest-kwargs", "rest-trivial", "rest-apicall") if with_answers else ():
        seen = {}
        for r in runs:
            if "answers" in r:
                seen.setdefault(json.dumps(r["answers"][key], sort_keys=True), []).append(r["plugin"])
        detail = "" if len(seen) == 1 else "; ".join("%s -> %s" % (sorted(set(v)), k[:400]) for k, v in seen.items())
        what = " (modulo %s)" % ", ".join(SYSTEM_PER_PROCESS) if key == "rest-apicall" else ""
        add("%s answers identical for every configuration and round%s" % (key, what), len(seen) == 1, detail)
    mains = [r for r in runs if r["instance"] == "main" and "apicall_is_native" in r]
    bad = [r["plugin"] for r in mains if not r["apicall_is_native"]]
    if with_answers:
        add("rest-apicall answers the process's own GET /system (modulo %s)" % ", ".join(SYSTEM_PER_PROCESS),
            mains and not bad, "differs for %s" % sorted(set(bad)) if bad else "")
    kw = [r["answers"]["rest-kwargs"] for r in runs if "answers" in r]
    if kw:
        st, body = kw[0]
        ok = st == 200
        try:
            d = json.loads(body)
            ok = ok and d["method"] == "GET" and d["groups"] == ["item-42"] and d["get"].get("alpha") == "1" \
                and d["headers"].get("x-bench-two") == "hello world"
        except (ValueError, KeyError, TypeError):
            ok = False
        add("rest-kwargs answer carries method, groups, get and headers", ok, body[:400])
    tr = [r["answers"]["rest-trivial"] for r in runs if "answers" in r]
    if tr:
        add("rest-trivial answers 'ok'", all(a == [200, "ok\n"] for a in tr), repr(tr[0]))
    for r in runs:
        for name, s in r["scenarios"].items():
            if s.get("error"):
                add("%s / %s (%s instance)" % (name, r["plugin"], r["instance"]), False, s["error"])
            elif s.get("value") is None:
                add("%s / %s (%s instance) has a number" % (name, r["plugin"], r["instance"]), False, "no value")
        for e in r.get("errors", []):
            add("%s run (%s instance) raised" % (r["plugin"], r["instance"]), False, e)
        if not r.get("alive_at_end", False):
            add("Orthanc alive at the end (%s, %s instance)" % (r["plugin"], r["instance"]), False,
                r.get("log_tail", "")[-800:])
    lost = [r for r in runs if "counted" in r["scenarios"].get("onchange-drain", {})
            and r["scenarios"]["onchange-drain"]["counted"] != r["scenarios"]["onchange-drain"]["expected"]]
    add("onchange-drain: no lost or duplicate NEW_INSTANCE event", not lost,
        "; ".join("%s counted %s" % (r["plugin"], r["scenarios"]["onchange-drain"]["counted"]) for r in lost))
    for c in configs:
        if c["plugin"] == "official" and c.get("expect_version"):
            got = {r.get("plugin_version") for r in runs if r["plugin"] == c["name"] and r["instance"] == "main"}
            add("%s: /plugins/python says version %s" % (c["name"], c["expect_version"]),
                got == {c["expect_version"]}, "got %s" % sorted(map(str, got)))
    return out


def print_table(summary, mode, mem_note, configs, meta):
    names = [c["name"] for c in configs]
    short = {"official": "official", "official-allowthreads": "off+AT", "pythanc": "pythanc"}
    log("")
    log("%s: Orthanc %s, index %s, Python %s, official plugin %s (%s), pythanc %s" % (
        meta["release"], meta.get("orthanc_version"), meta["index"], meta.get("python_versions"),
        meta.get("plugin_versions", {}).get("official"), ", ".join(
            "%s = %s" % (c["name"], json.dumps(c["orthanc_config"]) if c["orthanc_config"] else "defaults")
            for c in configs if c["plugin"] == "official"), meta.get("plugin_versions", {}).get("pythanc")))
    head = "%-26s %-7s" % ("scenario", "unit") + "".join(" %10s" % short.get(n, n) for n in names)
    log(head + " %8s %7s  %s" % ("best off", "ratio", "better"))
    log("-" * (len(head) + 26))
    for name, unit, better, desc in SCENARIOS + [("rest-trivial/native-limit", "fraction", "higher", "")]:
        e = summary[name]
        if not e["run"]:
            continue    # not run (--ingest-only)
        ratio = "-" if e["ratio"] is None else "%.2f" % e["ratio"]
        row = "%-26s %-7s" % (name, unit)
        for n in names:
            row += " %10s" % ("-" if name in PYTHANC_ONLY and n != "pythanc" else fmt(e.get(n), unit))
        log(row + " %8s %7s  %s" % (short.get(e["best_official"], "-") if e["best_official"] else "-", ratio, better))
    log("-" * (len(head) + 26))
    log("medians of %d rounds per configuration; ratio = pythanc / the official plugin's best configuration "
        "in this run (column 'best off'); worker-* rows: pythanc only" % mode["rounds"])
    log("ingest-onstored, onchange-drain: %d DICOM files; index: %s" % (mode["ingest"], meta["index"]))
    if summary["memory"]["run"]:
        log(mem_note)
    if summary["body-upload"]["run"]:
        log("body-*: %d MB bodies, %d requests per run; worker-apiget: RestApiGet of a %d MB instance file"
            % (mode["body_mb"], mode["body_requests"], mode["file_mb"]))


# ---- configurations -------------------------------------------------------------------------------

def _version_key(path):
    return tuple(int(x) for x in re.findall(r"\d+", path.rsplit(".so.", 1)[-1]))


def find_official():
    """The official plugin of this Debian release: the highest libOrthancPython.so.X.Y there."""
    libs = [p for p in glob.glob(OFFICIAL_GLOB) if re.search(r"\.so\.\d+(\.\d+)*$", p)]
    return max(libs, key=_version_key) if libs else None


def plugin_configs(official_lib, pythanc_lib, allow_threads):
    """The configurations to alternate: the official plugin with its defaults, the official plugin
    with "Python": {"AllowThreads": true} (4.3+: the option it documents for throughput), pythanc."""
    version = _version_key(official_lib)
    expect = ".".join(map(str, version)) if version else None
    cfgs = []
    has_at = version >= (4, 3)
    if allow_threads in ("both", "off") or not has_at:
        cfgs.append({"name": "official", "plugin": "official", "library": official_lib, "orthanc_config": {},
                     "expect_version": expect})
    if has_at and allow_threads in ("both", "on"):
        cfgs.append({"name": "official-allowthreads", "plugin": "official", "library": official_lib,
                     "orthanc_config": {"Python": {"AllowThreads": True}}, "expect_version": expect})
    cfgs.append({"name": "pythanc", "plugin": "pythanc", "library": pythanc_lib, "orthanc_config": {}})
    return cfgs


def debian_release():
    try:
        with open("/etc/os-release") as f:
            d = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        return d.get("VERSION_CODENAME", "").strip('"') or d.get("ID", "unknown").strip('"')
    except OSError:
        return "unknown"


# ---- profiling ------------------------------------------------------------------------------------

def profile_apicall(args, cfg, mode, out_dir):
    """One Orthanc of ``cfg`` under the rest-apicall load (wrk -t2 -c8); py-spy or perf attached to
    its process meanwhile.  Writes the flame graph / report to ``out_dir``; returns its paths."""
    release = debian_release()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    base = os.path.join(out_dir, "profile-apicall-%s-%s-%s" % (release, cfg["name"], stamp))
    workroot = tempfile.mkdtemp(prefix="pythanc-bench-profile-")
    outputs = []
    server = start_server(cfg, workroot, cfg["name"] + "-profile")
    try:
        pid = server.process.pid
        url = server.url + "/bench/apicall"
        run_wrk(url, mode["warmup"])
        load = subprocess.Popen(wrk_args(url, args.duration + 4), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            time.sleep(1)
            if args.profile_apicall == "py-spy":
                pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
                svg = base + ".svg"
                # 100 samples a second with --native: unwinding native stacks costs each sample more
                rate = "100" if args.native else "200"
                cmd = [pyspy, "record", "--pid", str(pid), "--duration", str(args.duration), "--rate", rate,
                       "--format", "flamegraph", "--output", svg]
                # --native: py-spy pauses the process for each sample (it cannot unwind native
                # stacks otherwise); without it, --nonblocking reads the Python stacks as it runs.
                cmd.append("--native" if args.native else "--nonblocking")
                log("running: " + " ".join(cmd))
                subprocess.run(cmd, check=True, timeout=args.duration + 120)
                outputs.append(svg)
            else:
                data = base + ".perf.data"
                # cpu-clock, a software event, works without hardware counters (a VM); where perf
                # cannot name it (a chroot without /sys), its default event, which falls back to it.
                for event in (["-e", "cpu-clock"], []):
                    cmd = ["perf", "record"] + event + ["-F", "499", "-g", "-p", str(pid), "-o", data,
                                                        "--", "sleep", str(args.duration)]
                    log("running: " + " ".join(cmd))
                    if subprocess.run(cmd, timeout=args.duration + 120).returncode == 0:
                        break
                else:
                    raise RuntimeError("perf record failed (see above)")
                report = base + ".perf.txt"
                with open(report, "w") as f:
                    subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "0.5"],
                                   stdout=f, stderr=subprocess.STDOUT, check=True, timeout=600)
                flat = base + ".perf-flat.txt"
                with open(flat, "w") as f:
                    for sort in ("dso", "dso,sym"):     # where the CPU goes, by library, then by function
                        f.flush()
                        subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                                        "--sort", sort, "--percent-limit", "0.5"],
                                       stdout=f, stderr=subprocess.STDOUT, check=True, timeout=600)
                outputs += [data, report, flat]
        finally:
            out, err = load.communicate(timeout=args.duration + 60)
        r = parse_wrk(out)
        log("load during the profile: %s req/s of /bench/apicall (%s)" % (r.get("rps"), cfg["name"]))
        with open(base + ".wrk.txt", "w") as f:
            f.write(out)
        outputs.append(base + ".wrk.txt")
    finally:
        server.stop()
        shutil.rmtree(workroot, ignore_errors=True)
    return outputs


# ---- main -----------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds, short wrk runs, 20,000 memory requests (~4 min)")
    ap.add_argument("--out", help="JSON file to write (default bench/results/RELEASE-DATE[-quick].json)")
    ap.add_argument("--rounds", type=int, help="rounds of every configuration (default 2 quick, 5 full)")
    ap.add_argument("--duration", type=int, help="seconds of each measured wrk run (default 2 quick, 10 full)")
    ap.add_argument("--mem-requests", type=int, help="total rest-kwargs requests of the memory scenario")
    ap.add_argument("--body-mb", type=int, help="MB of the large-body scenarios (default 64)")
    ap.add_argument("--body-requests", type=int, help="measured requests of each large-body scenario")
    ap.add_argument("--official", help="the official plugin library (default: the highest %s)" % OFFICIAL_GLOB)
    ap.add_argument("--allow-threads", choices=("both", "off", "on"), default="both",
                    help="the official plugin's configurations where it has AllowThreads (4.3+): both (default), "
                         "only false, only true")
    ap.add_argument("--dicom", default=DICOM_DEFAULT, help="DICOM file copied for the ingest")
    ap.add_argument("--keep", action="store_true", help="keep the Orthanc work folders (storage, logs)")
    ap.add_argument("--profile-apicall", choices=("py-spy", "perf"),
                    help="instead of the benchmark: profile one Orthanc under the rest-apicall load")
    ap.add_argument("--profile-config", default="pythanc", choices=("pythanc", "official", "official-allowthreads"),
                    help="with --profile-apicall: the configuration profiled (default pythanc)")
    ap.add_argument("--native", action="store_true", help="with --profile-apicall py-spy: native frames too")
    ap.add_argument("--index", choices=("sqlite", "postgresql"), default="sqlite",
                    help="Orthanc's index: its default SQLite, or a PostgreSQL server started for the benchmark "
                         "(Debian's postgresql and orthanc-postgresql), a fresh database per Orthanc run")
    ap.add_argument("--ingest-only", action="store_true",
                    help="only the ingest-onstored and onchange-drain scenarios (no wrk, no memory, body or "
                         "worker runs)")
    ap.add_argument("--ingest", type=int, help="number of DICOM files of the ingest (default 300)")
    args = ap.parse_args(argv)
    if args.ingest is not None and args.ingest < 1:
        ap.error("--ingest must be at least 1")
    if args.ingest_only and args.profile_apicall:
        ap.error("--ingest-only and --profile-apicall exclude each other")

    mode = dict(MODES["quick" if args.quick else "full"])
    for key, value in (("rounds", args.rounds), ("duration", args.duration), ("mem_total", args.mem_requests),
                       ("body_mb", args.body_mb), ("body_requests", args.body_requests), ("ingest", args.ingest)):
        if value:   # an option given on the command line overrides the mode's value
            mode[key] = value
    mode["mem_total"] = max(mode["mem_total"], mode["mem_warm"] + 100)

    try:
        import pythanc.testing  # noqa: F401
        from pythanc import plugin_path
        pythanc_lib = plugin_path()
    except ImportError as e:
        sys.exit("pythanc is not importable (%s): run with the venv's Python, e.g. .venv/bin/python bench/run.py" % e)
    official_lib = args.official or find_official()
    if not official_lib:
        sys.exit("official plugin not found (%s): apt-get install orthanc-python, or bash bench/setup.sh"
                 % OFFICIAL_GLOB)
    needed = [(official_lib, "official plugin"), (pythanc_lib, "pythanc plugin"), (args.dicom, "DICOM file")]
    if not args.ingest_only:
        needed.append((WRK, "wrk"))
    if args.index == "postgresql":
        from pythanc.testing import postgresql_bin, postgresql_index_plugin
        needed += [(postgresql_index_plugin() or "/usr/lib/orthanc/libOrthancPostgreSQLIndex.so",
                    "orthanc-postgresql's index plugin"),
                   (postgresql_bin("initdb") or "initdb", "PostgreSQL's initdb (Debian's postgresql)")]
    for path, what in needed:
        if not os.path.exists(path):
            sys.exit("%s not found: %s (bash bench/setup.sh installs what the benchmark needs)" % (what, path))
    configs = plugin_configs(official_lib, pythanc_lib, args.allow_threads)
    release = debian_release()

    if args.profile_apicall:
        if args.duration is None:
            args.duration = 10
        cfg = next((c for c in configs if c["name"] == args.profile_config), None)
        if cfg is None:
            sys.exit("configuration %s is not available here (official plugin %s)" % (args.profile_config, official_lib))
        out_dir = os.path.join(HERE, "results")
        os.makedirs(out_dir, exist_ok=True)
        try:
            if args.index == "postgresql":
                cfg = dict(cfg, index=PostgresIndex())
            for path in profile_apicall(args, cfg, mode, out_dir):
                log("written: " + path)
        finally:
            if cfg.get("index") is not None:
                cfg["index"].stop()
        return 0

    out = args.out or os.path.join(HERE, "results", "%s-%s%s.json" % (
        release, datetime.date.today().isoformat(), "-quick" if args.quick else ""))
    mem_note = "memory: VmRSS after %d rest-kwargs requests minus after %d" % (mode["mem_total"], mode["mem_warm"])
    if mode["mem_total"] != 100000:
        mem_note += " (NOT the 100,000 of the full run)"
    t_start = time.monotonic()
    log("pythanc benchmark on %s (%s): %d rounds of %s, wrk %d s (+%d s warm-up) per REST scenario, %d cores;"
        " index: %s%s" % (release, "quick" if args.quick else "full", mode["rounds"],
                          " / ".join(c["name"] for c in configs), mode["duration"], mode["warmup"], os.cpu_count(),
                          args.index, ", ingest only" if args.ingest_only else ""))
    files = make_dicom_files(args.dicom, mode["ingest"])
    big_dicom = None if args.ingest_only else make_big_dicom(args.dicom, mode["file_mb"])
    cpu_n = calibrate_cpu(mode["cpu_seconds"])
    log("%d DICOM files of ~%d bytes; cpu-concurrency loop n=%d (~%.1f s here)"
        % (len(files), len(files[0]), cpu_n, mode["cpu_seconds"]))

    workroot = tempfile.mkdtemp(prefix="pythanc-bench-")
    runs = []
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "release": release,
        "mode": "quick" if args.quick else "full",
        "settings": mode,
        "cpu_n": cpu_n,
        "cores": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "platform": platform.platform(),
        "bench_python": sys.version.split()[0],
        "official_plugin": official_lib,
        "pythanc_plugin": pythanc_lib,
        "configurations": [{k: c[k] for k in ("name", "plugin", "library", "orthanc_config")} for c in configs],
        "ratio": "pythanc / the official plugin's best configuration in this run, per scenario (best_official)",
        "orthanc": __import__("pythanc.testing").testing.ORTHANC,
        "wrk": "-t2 -c8 (latency-*, worker-*: -t1 -c1)",
        "kwargs_request": {"path": KWARGS_PATH, "headers": KWARGS_HEADERS},
        "system_fields_ignored": list(SYSTEM_PER_PROCESS),
        "memory_note": mem_note,
        "index": args.index,
        "ingest_only": args.ingest_only,
    }
    if args.index == "postgresql":
        from pythanc.testing import postgresql_bin, postgresql_index_plugin
        meta["index_plugin"] = postgresql_index_plugin()
        try:
            meta["postgresql"] = subprocess.run([postgresql_bin("postgres") or "postgres", "--version"],
                                                capture_output=True, text=True, timeout=30).stdout.strip() or None
        except Exception:  # noqa: BLE001
            meta["postgresql"] = None
    try:
        meta["git_head"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                          text=True, timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001
        meta["git_head"] = None
    index = None
    try:
        if args.index == "postgresql":
            index = PostgresIndex()
            log("PostgreSQL server of the benchmark on 127.0.0.1:%d (pid %d), index plugin %s"
                % (index.cluster.port, index.cluster.pid, index.plugin))
        for cfg in configs:
            cfg["index"] = index
        for rnd in range(1, mode["rounds"] + 1):
            for cfg in configs:
                name = cfg["name"]
                t = time.monotonic()
                rec = run_main(cfg, mode, files, cpu_n, workroot, args.ingest_only)
                rec["round"] = rnd
                runs.append(rec)
                sc = rec["scenarios"]
                if args.ingest_only:
                    log("[round %d/%d] %-21s ingest %s inst/s | drain %s ms  (%.0f s)" % (
                        rnd, mode["rounds"], name, fmt(sc.get("ingest-onstored", {}).get("value"), "inst/s"),
                        fmt(sc.get("onchange-drain", {}).get("value"), "ms"), time.monotonic() - t))
                    for e in rec.get("errors", []):
                        log("    error: " + e)
                    continue
                log("[round %d/%d] %-21s native %s  trivial %s  kwargs %s  apicall %s req/s | cpu x%s workers x%s"
                    " | ingest %s inst/s | drain %s ms | latency p50 trivial %s apicall %s us  (%.0f s)" % (
                        rnd, mode["rounds"], name, *(fmt(sc.get(k, {}).get("value"), u) for k, u in (
                            ("native-limit", "req/s"), ("rest-trivial", "req/s"), ("rest-kwargs", "req/s"),
                            ("rest-apicall", "req/s"), ("cpu-concurrency", "x"), ("cpu-workers", "x"),
                            ("ingest-onstored", "inst/s"), ("onchange-drain", "ms"),
                            ("latency-trivial-p50", "us"), ("latency-apicall-p50", "us"))), time.monotonic() - t))
                for e in rec.get("errors", []):
                    log("    error: " + e)
                t = time.monotonic()
                rec = run_memory(cfg, mode, workroot)
                rec["round"] = rnd
                runs.append(rec)
                m = rec["scenarios"]["memory"]
                log("[round %d/%d] %-21s memory %s MB over %s requests (%.0f s)" % (
                    rnd, mode["rounds"], name, fmt(m.get("value"), "MB"), m.get("requests_total"),
                    time.monotonic() - t))
                for e in rec.get("errors", []):
                    log("    error: " + e)
                t = time.monotonic()
                rec = run_bodies(cfg, mode, workroot, big_dicom)
                rec["round"] = rnd
                runs.append(rec)
                sc = rec["scenarios"]
                line = "[round %d/%d] %-21s upload %s MB/s (RSS x%s)  download %s MB/s (RSS x%s)" % (
                    rnd, mode["rounds"], name, *(fmt(sc.get(k, {}).get("value"), u) for k, u in (
                        ("body-upload", "MB/s"), ("body-upload-rss", "x"), ("body-download", "MB/s"),
                        ("body-download-rss", "x"))))
                if name == "pythanc":
                    line += " | worker overhead %s us, worker apiget x%s" % (
                        fmt(sc.get("worker-trivial-overhead", {}).get("value"), "us"),
                        fmt(sc.get("worker-apiget", {}).get("value"), "x"))
                log(line + "  (%.0f s)" % (time.monotonic() - t))
                for e in rec.get("errors", []):
                    log("    error: " + e)
    finally:
        if index is not None:
            index.stop()
        if args.keep:
            log("work folders kept in " + workroot)
        else:
            shutil.rmtree(workroot, ignore_errors=True)

    summary = summarise(runs, configs)
    chk = checks(runs, configs)
    versions = {}
    for c in configs:
        versions.setdefault(c["plugin"], next((r.get("plugin_version") for r in runs
                                               if r["plugin"] == c["name"] and r.get("plugin_version")), None))
    meta["plugin_versions"] = versions
    meta["python_versions"] = {c["name"]: next((r.get("python_version") for r in runs
                                                if r["plugin"] == c["name"] and r.get("python_version")), None)
                               for c in configs}
    meta["orthanc_version"] = next((r["orthanc_version"] for r in runs if r.get("orthanc_version")), None)
    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    ok = all(c["ok"] for c in chk)
    print_table(summary, mode, mem_note, configs, meta)
    log("%.0f s; load average %.1f at the start, %.1f at the end" % (
        meta["elapsed_s"], meta["loadavg_start"][0], meta["loadavg_end"][0]))
    for c in chk:
        if not c["ok"]:
            log("CHECK FAILED: %s: %s" % (c["check"], c["detail"][:600]))
    log("checks: %d/%d passed" % (sum(c["ok"] for c in chk), len(chk)))

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"meta": meta, "summary": summary, "checks": chk, "ok": ok, "runs": runs}, f, indent=2)
    log("results written to " + out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
