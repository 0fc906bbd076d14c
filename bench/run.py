#!/usr/bin/env python3
"""Benchmark pythanc against the official Orthanc Python plugin (see bench/README.md).

    .venv/bin/python bench/run.py [--quick] [--out bench/results/results.json]
    .venv/bin/python bench/run.py --index postgresql --ingest-only   # the ingest on a PostgreSQL index

The same script (bench/scripts/bench_script.py) runs on the same Orthanc binary with each plugin,
alternating official / pythanc over several rounds; every run is a fresh Orthanc with an empty
storage folder, started through ``pythanc.testing.OrthancServer`` on free ports of 127.0.0.1.
Prints, per scenario, the median over the rounds for each plugin and the ratio pythanc/official,
and writes every raw figure to a JSON file.  Exit code 0 if every check passed, 1 otherwise.
"""

import argparse
import datetime
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
OFFICIAL_DEFAULT = "/usr/lib/orthanc/libOrthancPython.so.4.0"
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
    "quick": dict(rounds=2, duration=2, warmup=1, ingest=300, ingest_threads=4, mem_warm=1000,
                  mem_total=20000, cpu_seconds=0.3, cpu_t1_runs=2, cpu_t3_runs=1, drain_timeout=30),
    "full": dict(rounds=5, duration=10, warmup=2, ingest=300, ingest_threads=4, mem_warm=1000,
                 mem_total=100000, cpu_seconds=0.3, cpu_t1_runs=3, cpu_t3_runs=3, drain_timeout=60),
}

# scenario -> (unit, which is better, description)
SCENARIOS = [
    ("native-limit", "req/s", "higher", "Orthanc's own GET /system (no Python), wrk -t2 -c8"),
    ("rest-trivial", "req/s", "higher", "OnRest answering 'ok', wrk -t2 -c8"),
    ("rest-kwargs", "req/s", "higher", "regex group + query + headers answered as JSON, wrk -t2 -c8"),
    ("rest-apicall", "req/s", "higher", "callback calls RestApiGet('/system'), wrk -t2 -c8"),
    ("cpu-concurrency", "speed-up", "higher", "3 x t1 / t3 for a ~0.3 s pure-Python callback"),
    ("cpu-workers", "speed-up", "higher", "the same, registered with worker=True where the plugin accepts it"),
    ("ingest-onstored", "inst/s", "higher", "POST /instances from 4 threads, stored callback reads JSON + metadata"),
    ("onchange-drain", "ms", "lower", "after the ingest, time until the change callback has counted every NEW_INSTANCE"),
    ("memory", "MB", "lower", "VmRSS growth between 1,000 and N rest-kwargs requests"),
]


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

def scenario_wrk(server, path, mode, headers=()):
    url = server.url + path
    run_wrk(url, mode["warmup"], headers=headers)
    r = run_wrk(url, mode["duration"], headers=headers)
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
        drain["lag_s"] = now - t_end
        drain["polls"] = polls
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

# ``--index postgresql``: one PostgreSQL server for the whole benchmark (pythanc.testing.PostgresCluster),
# and a fresh database for each Orthanc run, the same setup for both plugins.
_postgres = []


def index_config(label):
    """The configuration that puts an Orthanc run's index on a new PostgreSQL database (Debian's
    orthanc-postgresql plugin), or nothing for Orthanc's default SQLite index."""
    if not _postgres:
        return {}, []
    from pythanc.testing import postgresql_index_plugin
    cluster = _postgres[0]
    db = cluster.createdb("bench_%s_%d" % (re.sub(r"\W", "_", label), len(cluster.databases)))
    cluster.databases.append(db)
    return {"PostgreSQL": cluster.index_config(db)}, [postgresql_index_plugin()]


def start_server(plugin_path, workroot, label):
    from pythanc.testing import OrthancServer
    from pythanc import plugin_path as pythanc_path
    workdir = tempfile.mkdtemp(prefix=label + "-", dir=workroot)
    config = dict(ORTHANC_CONFIG)
    extra, plugins = index_config(label)
    if plugins:
        config.update(extra)
        config["Plugins"] = [plugin_path or pythanc_path()] + plugins
    return OrthancServer(script=SCRIPT, plugin=plugin_path, config=config, workdir=workdir)


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


def run_main(plugin_name, plugin_path, mode, files, cpu_n, workroot, ingest_only=False):
    """ingest + drain on empty storage, then the REST scenarios (unless ``ingest_only``), in one
    fresh Orthanc."""
    rec = {"plugin": plugin_name, "instance": "main", "scenarios": {}}
    server = start_server(plugin_path, workroot, plugin_name + "-main")
    try:
        rec["pid"] = server.process.pid
        rec["orthanc_version"] = get_json(server.http_port, "/system").get("Version")
        try:
            rec["plugin_version"] = get_json(server.http_port, "/plugins/python").get("Version")
        except Exception:  # noqa: BLE001
            rec["plugin_version"] = None
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
        try:
            answers["rest-apicall"] = [st, sorted(json.loads(body))]
        except ValueError:
            answers["rest-apicall"] = [st, body.decode("utf-8", "replace")]
        rec["answers"] = answers
        sc["native-limit"] = guarded(rec, "native-limit", scenario_wrk, server, "/system", mode)
        sc["rest-trivial"] = guarded(rec, "rest-trivial", scenario_wrk, server, "/bench/trivial", mode)
        sc["rest-kwargs"] = guarded(rec, "rest-kwargs", scenario_wrk, server, KWARGS_PATH, mode, KWARGS_HEADERS)
        sc["rest-apicall"] = guarded(rec, "rest-apicall", scenario_wrk, server, "/bench/apicall", mode)
        sc["cpu-concurrency"] = guarded(rec, "cpu-concurrency", scenario_cpu, server, mode, cpu_n)
        sc["cpu-workers"] = guarded(rec, "cpu-workers", scenario_cpu, server, mode, cpu_n, "/bench/cpu-worker")
        rec["rss_end_kb"] = vm_rss_kb(server.process.pid)
        rec["alive_at_end"] = server.alive()
    finally:
        stop_server(server, rec)
    return rec


def run_memory(plugin_name, plugin_path, mode, workroot):
    rec = {"plugin": plugin_name, "instance": "memory", "scenarios": {}}
    server = start_server(plugin_path, workroot, plugin_name + "-memory")
    try:
        rec["pid"] = server.process.pid
        rec["scenarios"]["memory"] = guarded(rec, "memory", scenario_memory, server, mode)
        rec["alive_at_end"] = server.alive()
    finally:
        stop_server(server, rec)
    return rec


# ---- summary --------------------------------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "FAIL"
    if unit == "req/s":
        return "%.0f" % v
    if unit in ("inst/s", "ms", "MB"):
        return "%.1f" % v
    return "%.2f" % v


def summarise(runs, plugins):
    summary = {}
    for name, unit, better, desc in SCENARIOS:
        entry = {"unit": unit, "better": better, "description": desc, "values": {}, "errors": {}}
        for p in plugins:
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
        a, b = entry.get("official"), entry.get("pythanc")
        entry["ratio"] = (b / a) if (a and b is not None) else None
        summary[name] = entry
    # rest-trivial as a fraction of native-limit (each plugin's own Orthanc, per round, then median)
    frac = {}
    for p in plugins:
        fs = []
        for r in runs:
            if r["plugin"] == p and r["instance"] == "main":
                t, n = r["scenarios"].get("rest-trivial", {}), r["scenarios"].get("native-limit", {})
                if t.get("value") and n.get("value"):
                    fs.append(t["value"] / n["value"])
        frac[p] = statistics.median(fs) if fs else None
    summary["rest-trivial/native-limit"] = {"unit": "fraction", "better": "higher", "official": frac.get("official"),
                                            "pythanc": frac.get("pythanc"),
                                            "ratio": (frac["pythanc"] / frac["official"])
                                            if frac.get("official") and frac.get("pythanc") else None}
    return summary


def checks(runs, plugins):
    out = []

    def add(name, ok, detail=""):
        out.append({"check": name, "ok": bool(ok), "detail": detail})

    for key in ("rest-kwargs", "rest-trivial", "rest-apicall"):
        if not any("answers" in r for r in runs):
            break   # --ingest-only
        seen = {}
        for r in runs:
            if "answers" in r:
                seen.setdefault(json.dumps(r["answers"][key], sort_keys=True), []).append(r["plugin"])
        detail = "" if len(seen) == 1 else "; ".join("%s -> %s" % (sorted(set(v)), k[:400]) for k, v in seen.items())
        add("%s answers identical for both plugins and every round" % key, len(seen) == 1, detail)
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
        for e in r.get("errors", []):
            add("%s run (%s instance) raised" % (r["plugin"], r["instance"]), False, e)
        if not r.get("alive_at_end", False):
            add("Orthanc alive at the end (%s, %s instance)" % (r["plugin"], r["instance"]), False,
                r.get("log_tail", "")[-800:])
    lost = [r for r in runs if "counted" in r["scenarios"].get("onchange-drain", {})
            and r["scenarios"]["onchange-drain"]["counted"] != r["scenarios"]["onchange-drain"]["expected"]]
    add("onchange-drain: no lost or duplicate NEW_INSTANCE event", not lost,
        "; ".join("%s counted %s" % (r["plugin"], r["scenarios"]["onchange-drain"]["counted"]) for r in lost))
    return out


def print_table(summary, mode, mem_note):
    log("")
    log("%-26s %-9s %11s %11s %9s  %s" % ("scenario", "unit", "official", "pythanc", "ratio", "better"))
    log("-" * 80)
    for name, unit, better, desc in SCENARIOS + [("rest-trivial/native-limit", "fraction", "higher", "")]:
        e = summary[name]
        if not any(e.get("values", {}).values()) and name != "rest-trivial/native-limit" or \
                name == "rest-trivial/native-limit" and e["official"] is None and e["pythanc"] is None \
                and not any(summary["native-limit"]["values"].values()):
            continue   # not run (--ingest-only)
        ratio = "-" if e["ratio"] is None else "%.2f" % e["ratio"]
        log("%-26s %-9s %11s %11s %9s  %s" % (name, unit, fmt(e["official"], unit), fmt(e["pythanc"], unit),
                                               ratio, better))
    log("-" * 80)
    log("medians of %d rounds per plugin; ratio = pythanc/official" % mode["rounds"])
    log(mem_note)


# ---- main -----------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds, short wrk runs, 20,000 memory requests (~2 min)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "results.json"), help="JSON file to write")
    ap.add_argument("--rounds", type=int, help="A B rounds (default 2 quick, 5 full)")
    ap.add_argument("--duration", type=int, help="seconds of each measured wrk run (default 2 quick, 10 full)")
    ap.add_argument("--mem-requests", type=int, help="total rest-kwargs requests of the memory scenario")
    ap.add_argument("--official", default=OFFICIAL_DEFAULT, help="the official plugin library")
    ap.add_argument("--dicom", default=DICOM_DEFAULT, help="DICOM file copied for the ingest")
    ap.add_argument("--keep", action="store_true", help="keep the Orthanc work folders (storage, logs)")
    ap.add_argument("--index", choices=("sqlite", "postgresql"), default="sqlite",
                    help="Orthanc's index: its default SQLite, or a PostgreSQL server started for the benchmark "
                         "(Debian's postgresql and orthanc-postgresql), a fresh database per Orthanc run")
    ap.add_argument("--ingest-only", action="store_true",
                    help="only the ingest-onstored and onchange-drain scenarios (no wrk, no memory run)")
    ap.add_argument("--ingest", type=int, help="number of DICOM files of the ingest (default 300)")
    args = ap.parse_args(argv)

    mode = dict(MODES["quick" if args.quick else "full"])
    if args.rounds:
        mode["rounds"] = args.rounds
    if args.duration:
        mode["duration"] = args.duration
    if args.mem_requests:
        mode["mem_total"] = args.mem_requests
    if args.ingest:
        mode["ingest"] = args.ingest
    mode["mem_total"] = max(mode["mem_total"], mode["mem_warm"] + 100)

    try:
        import pythanc.testing  # noqa: F401
        from pythanc import plugin_path
        pythanc_lib = plugin_path()
    except ImportError as e:
        sys.exit("pythanc is not importable (%s): run with the venv's Python, e.g. .venv/bin/python bench/run.py" % e)
    needed = [(args.official, "official plugin"), (pythanc_lib, "pythanc plugin"), (args.dicom, "DICOM file")]
    if not args.ingest_only:
        needed.append((WRK, "wrk"))
    if args.index == "postgresql":
        from pythanc.testing import postgresql_bin, postgresql_index_plugin
        needed += [(postgresql_index_plugin() or "/usr/lib/orthanc/libOrthancPostgreSQLIndex.so",
                    "orthanc-postgresql's index plugin"), (postgresql_bin("initdb") or "initdb", "PostgreSQL's initdb")]
    for path, what in needed:
        if not os.path.exists(path):
            sys.exit("%s not found: %s" % (what, path))

    plugins = [("official", args.official), ("pythanc", None)]
    mem_note = "memory: VmRSS after %d rest-kwargs requests minus after %d" % (mode["mem_total"], mode["mem_warm"])
    if mode["mem_total"] != 100000:
        mem_note += " (NOT the 100,000 of the full run)"
    t_start = time.monotonic()
    log("pythanc benchmark (%s): %d rounds, wrk %d s (+%d s warm-up) per REST scenario, %d cores; index: %s%s"
        % ("quick" if args.quick else "full", mode["rounds"], mode["duration"], mode["warmup"], os.cpu_count(),
           args.index, ", ingest only" if args.ingest_only else ""))
    files = make_dicom_files(args.dicom, mode["ingest"])
    cpu_n = calibrate_cpu(mode["cpu_seconds"])
    log("%d DICOM files of ~%d bytes; cpu-concurrency loop n=%d (~%.1f s here)"
        % (len(files), len(files[0]), cpu_n, mode["cpu_seconds"]))

    workroot = tempfile.mkdtemp(prefix="pythanc-bench-")
    if args.index == "postgresql":
        from pythanc.testing import PostgresCluster
        cluster = PostgresCluster()
        cluster.databases = []
        _postgres.append(cluster)
        log("PostgreSQL server of the benchmark on 127.0.0.1:%d (pid %d)" % (cluster.port, cluster.pid))
    runs = []
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "settings": mode,
        "cpu_n": cpu_n,
        "cores": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "platform": platform.platform(),
        "bench_python": sys.version.split()[0],
        "official_plugin": args.official,
        "pythanc_plugin": pythanc_lib,
        "orthanc": __import__("pythanc.testing").testing.ORTHANC,
        "wrk": "-t2 -c8",
        "kwargs_request": {"path": KWARGS_PATH, "headers": KWARGS_HEADERS},
        "memory_note": mem_note,
        "index": args.index,
        "ingest_only": args.ingest_only,
    }
    try:
        meta["git_head"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                          text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        meta["git_head"] = None
    try:
        for rnd in range(1, mode["rounds"] + 1):
            for name, lib in plugins:
                t = time.monotonic()
                rec = run_main(name, lib, mode, files, cpu_n, workroot, args.ingest_only)
                rec["round"] = rnd
                runs.append(rec)
                sc = rec["scenarios"]
                if args.ingest_only:
                    log("[round %d/%d] %-8s ingest %s inst/s | drain %s ms  (%.0f s)" % (
                        rnd, mode["rounds"], name, fmt(sc.get("ingest-onstored", {}).get("value"), "inst/s"),
                        fmt(sc.get("onchange-drain", {}).get("value"), "ms"), time.monotonic() - t))
                else:
                    log("[round %d/%d] %-8s native %s  trivial %s  kwargs %s  apicall %s req/s | cpu x%s workers x%s"
                        " | ingest %s inst/s | drain %s ms  (%.0f s)" % (
                            rnd, mode["rounds"], name, *(fmt(sc.get(k, {}).get("value"), u) for k, u in (
                                ("native-limit", "req/s"), ("rest-trivial", "req/s"), ("rest-kwargs", "req/s"),
                                ("rest-apicall", "req/s"), ("cpu-concurrency", "x"), ("cpu-workers", "x"),
                                ("ingest-onstored", "inst/s"),
                                ("onchange-drain", "ms"))), time.monotonic() - t))
                for e in rec.get("errors", []):
                    log("    error: " + e)
                if args.ingest_only:
                    continue
                t = time.monotonic()
                rec = run_memory(name, lib, mode, workroot)
                rec["round"] = rnd
                runs.append(rec)
                m = rec["scenarios"]["memory"]
                log("[round %d/%d] %-8s memory %s MB over %s requests (%.0f s)" % (
                    rnd, mode["rounds"], name, fmt(m.get("value"), "MB"), m.get("requests_total"),
                    time.monotonic() - t))
                for e in rec.get("errors", []):
                    log("    error: " + e)
    finally:
        for cluster in _postgres:
            cluster.stop()
        if args.keep:
            log("work folders kept in " + workroot)
        else:
            shutil.rmtree(workroot, ignore_errors=True)

    summary = summarise(runs, [p for p, _ in plugins])
    chk = checks(runs, [p for p, _ in plugins])
    versions = {r["plugin"]: r.get("plugin_version") for r in runs if r.get("plugin_version")}
    meta["plugin_versions"] = versions
    meta["orthanc_version"] = next((r["orthanc_version"] for r in runs if r.get("orthanc_version")), None)
    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    ok = all(c["ok"] for c in chk)
    print_table(summary, mode, mem_note)
    log("Orthanc %s; official plugin %s; pythanc %s; %.0f s" % (
        meta["orthanc_version"], versions.get("official"), versions.get("pythanc"), meta["elapsed_s"]))
    for c in chk:
        if not c["ok"]:
            log("CHECK FAILED: %s: %s" % (c["check"], c["detail"][:600]))
    log("checks: %d/%d passed" % (sum(c["ok"] for c in chk), len(chk)))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "summary": summary, "checks": chk, "ok": ok, "runs": runs}, f, indent=2)
    log("results written to " + args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
