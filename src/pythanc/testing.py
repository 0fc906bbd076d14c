"""Start a real Orthanc with pythanc and a script, for tests (a pytest plugin) and ``pythanc run``.

In a test::

    def test_hello(orthanc_server):
        server = orthanc_server(script="my_script.py")
        assert server.get("/toto").text == "ok\\n"
        server.wait_for_log("Hello world!")

``orthanc_server(script=..., config={...})`` starts Orthanc on free ports of 127.0.0.1, with
``RemoteAccessAllowed: false`` and a temporary storage folder, and stops it (by its PID) at the
end of the test.  The returned :class:`OrthancServer` has ``url``, ``http_port``, ``dicom_port``,
``get/post/put/delete`` (``requests``), ``log()`` and ``wait_for_log()``, ``store_scu()`` (dcmtk's
``storescu``) and ``stop()``.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from . import plugin_path

ORTHANC = os.environ.get("ORTHANC_BINARY") or shutil.which("Orthanc") or "/usr/sbin/Orthanc"
# util-linux's setpriv: Orthanc is started through it with a parent-death signal, so that an
# Orthanc whose test process was killed (a CI timeout, kill -9 of pytest) stops instead of
# running on.  setpriv execs Orthanc: the PID is Orthanc's.
SETPRIV = shutil.which("setpriv") or ("/usr/bin/setpriv" if os.path.exists("/usr/bin/setpriv") else None)


def orthanc_version(binary=None):
    """The version of the Orthanc binary (``ORTHANC`` by default) as a tuple ``(1, 12, 7)``, from
    ``Orthanc --version``; ``None`` if it cannot be run.  Tests derive what to expect from it when
    the Orthanc releases differ."""
    try:
        out = subprocess.run([binary or ORTHANC, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def wait_until(predicate, timeout=60.0, what="condition", interval=0.05):
    """Poll ``predicate()`` until it returns something true (returned); ``AssertionError`` after
    ``timeout`` seconds.  For tests: a bounded wait on a condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %s s" % (what, timeout))
        time.sleep(interval)


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(storage, http_port, dicom_port, script=None, plugin=None, extra=None, aet="ORTHANC"):
    config = {
        "Name": "pythanc",
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [plugin or plugin_path()],
        "DicomModalities": {},
    }
    if script is not None:
        config["PythonScript"] = os.path.abspath(script)
    for k, v in (extra or {}).items():
        config[k] = v
    return config


class OrthancError(RuntimeError):
    pass


class OrthancServer:
    """One Orthanc process started by this code, with pythanc loaded."""

    def __init__(self, script=None, config=None, workdir=None, plugin=None, verbose=False, env=None,
                 cwd=None, start=True, startup_timeout=60.0):
        self.workdir = workdir or tempfile.mkdtemp(prefix="pythanc-test-")
        self.storage = os.path.join(self.workdir, "storage")
        os.makedirs(self.storage, exist_ok=True)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.url = "http://127.0.0.1:%d" % self.http_port
        self.config = make_config(self.storage, self.http_port, self.dicom_port, script, plugin, config)
        self.config_path = os.path.join(self.workdir, "orthanc.json")
        self.log_path = os.path.join(self.workdir, "orthanc.log")
        self.verbose = verbose
        self.env = env
        self.cwd = cwd or self.workdir
        self.startup_timeout = startup_timeout
        self.process = None
        self.returncode = None
        if start:
            self.start()

    # -- process ---------------------------------------------------------------------------------
    def start(self, wait=True):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)
        self._log_file = open(self.log_path, "ab")
        args = [ORTHANC, self.config_path]
        if self.verbose:
            args.append("--verbose")
        if SETPRIV and threading.current_thread() is threading.main_thread():
            # The signal comes when the thread that started Orthanc ends; the main thread ends
            # only with the process.  From another thread, Orthanc outlives a killed process.
            args = [SETPRIV, "--pdeathsig", "TERM", "--"] + args
        env = dict(os.environ)
        env.update(self.env or {})
        self.process = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=self.cwd,
                                        env=env, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        import requests
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OrthancError("Orthanc exited with code %s during start-up; log:\n%s"
                                   % (self.process.returncode, self.log()[-5000:]))
            try:
                if requests.get(self.url + "/system", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise OrthancError("Orthanc did not answer within %s s; log:\n%s" % (timeout, self.log()[-5000:]))

    def wait_exit(self, timeout=60.0):
        """Wait for the process to end by itself; its exit code."""
        try:
            self.returncode = self.process.wait(timeout)
        finally:
            self._close_log()
        return self.returncode

    def stop(self, timeout=60.0):
        """SIGTERM, then wait; SIGKILL only after ``timeout``. Returns the exit code."""
        p = self.process
        if p is None or p.poll() is not None:
            self._close_log()
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.returncode = p.wait(0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > deadline:
                    p.kill()
                    self.returncode = p.wait(10)
                    raise OrthancError("Orthanc did not stop within %s s after SIGTERM (killed)" % timeout)
                self._wake_servers()
        finally:
            self._close_log()
        return self.returncode

    def _wake_servers(self):
        """Open and close a connection to Orthanc's HTTP port, or once that is closed, to its DICOM
        port.  Stopping, Orthanc stops its HTTP server (CivetWeb), whose listening thread sees the
        stop request only when a connection arrives or after a 2-second poll, then its DICOM server,
        whose thread waits for an association up to 1 s: the connections spare that time on every
        stop.  An HTTP connection that sends nothing is not a request (nothing is logged); a DICOM
        one is an association without presentation context (logged with --verbose only)."""
        for port in (self.http_port, self.dicom_port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                pass

    def _close_log(self):
        f = getattr(self, "_log_file", None)
        if f is not None and not f.closed:
            f.close()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    # -- log ----------------------------------------------------------------------------------------
    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, timeout=30.0, count=1):
        """Wait until ``pattern`` (a regex) occurs ``count`` times in the log; returns the matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = rx.findall(self.log())
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError("%r seen %d times (wanted %d) within %s s; log tail:\n%s"
                                     % (pattern, len(found), count, timeout, self.log()[-4000:]))
            if self.process.poll() is not None and time.monotonic() > deadline - timeout + 1:
                found = rx.findall(self.log())
                if len(found) >= count:
                    return found
                raise AssertionError("Orthanc exited (code %s) before %r was logged; log tail:\n%s"
                                     % (self.process.returncode, pattern, self.log()[-4000:]))
            time.sleep(0.05)

    # -- HTTP -----------------------------------------------------------------------------------------
    def request(self, method, path, **kw):
        import requests
        kw.setdefault("timeout", 60)
        return requests.request(method, self.url + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, data=None, **kw):
        return self.request("POST", path, data=data, **kw)

    def put(self, path, data=None, **kw):
        return self.request("PUT", path, data=data, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def upload(self, path_or_bytes):
        if isinstance(path_or_bytes, (bytes, bytearray)):
            data = bytes(path_or_bytes)
        else:
            with open(path_or_bytes, "rb") as f:
                data = f.read()
        r = self.post("/instances", data=data)
        r.raise_for_status()
        return r.json()

    # -- DICOM --------------------------------------------------------------------------------------
    def store_scu(self, *files, calling_aet="STORESCU", timeout=60):
        """Send files with dcmtk's storescu; returns the CompletedProcess."""
        args = ["storescu", "-aet", calling_aet, "-aec", self.config.get("DicomAet", "ORTHANC"),
                "127.0.0.1", str(self.dicom_port)] + list(files)
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# ---- PostgreSQL: several Orthanc processes on one database ---------------------------------------

def postgresql_index_plugin():
    """The path of Debian's PostgreSQL index plugin (``orthanc-postgresql``:
    ``/usr/lib/orthanc/libOrthancPostgreSQLIndex.so.*`` or ``/usr/share/orthanc/plugins/``);
    ``None`` if it is not installed."""
    import glob
    for pattern in ("/usr/lib/orthanc/libOrthancPostgreSQLIndex.so*",
                    "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so*"):
        found = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if found:
            return os.path.realpath(found[-1])
    return None


def postgresql_bin(name):
    """The path of PostgreSQL's server program ``name`` (``initdb``, ``pg_ctl``, ``postgres``...)
    of the newest installed major version (Debian's ``/usr/lib/postgresql/<major>/bin``), else from
    PATH; ``None`` if none."""
    import glob
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name),
                   key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0))
    return found[-1] if found else shutil.which(name)


class PostgresCluster:
    """A PostgreSQL server of its own, in a temporary folder, on a free port of 127.0.0.1 (and a
    unix socket in that folder), for tests and benchmarks: ``initdb`` then ``pg_ctl start``, run as
    the unprivileged ``user`` (PostgreSQL refuses to run as root; Debian's ``postgresql`` package
    creates the ``postgres`` user).  Connections from 127.0.0.1 need no password (``trust``), as
    user ``postgres``.  :meth:`stop` stops the server by the PID of its postmaster and deletes the
    folder.  Debian's own default cluster is never touched."""

    def __init__(self, user="postgres", start=True, timeout=120.0):
        import pwd
        self.user = user
        pw = pwd.getpwnam(user)
        self._uid, self._gid = pw.pw_uid, pw.pw_gid
        self.workdir = tempfile.mkdtemp(prefix="pythanc-pg-")
        os.chown(self.workdir, self._uid, self._gid)
        self.datadir = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "postgresql.log")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.timeout = timeout
        self.pid = None
        if start:
            self.start()

    def _run(self, args, **kw):
        kw.setdefault("timeout", self.timeout)
        cmd = ["setpriv", "--reuid=%d" % self._uid, "--regid=%d" % self._gid, "--init-groups", "--"] + args
        env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", HOME=self.workdir)
        return subprocess.run(cmd, capture_output=True, text=True, cwd=self.workdir, env=env, **kw)

    def _check(self, r, what):
        if r.returncode != 0:
            raise OrthancError("%s failed (%s):\n%s%s" % (what, r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        return r

    def start(self):
        initdb, pg_ctl = postgresql_bin("initdb"), postgresql_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise OrthancError("PostgreSQL's initdb/pg_ctl are not installed (Debian's postgresql package)")
        self._check(self._run([initdb, "-D", self.datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                               "--no-sync"]), "initdb")
        options = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
                   % (self.port, self.workdir))
        self._check(self._run([pg_ctl, "-D", self.datadir, "-l", self.log_path, "-o", options, "-w",
                               "-t", str(int(self.timeout)), "start"]), "pg_ctl start")
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        return self

    def createdb(self, name):
        """Create the database ``name`` (owned by ``postgres``); returns ``name``."""
        createdb = postgresql_bin("createdb") or shutil.which("createdb")
        self._check(self._run([createdb, "-h", self.workdir, "-p", str(self.port), "-U", "postgres", name]),
                    "createdb " + name)
        return name

    def psql(self, database, sql):
        """Run ``sql`` with ``psql`` (unaligned, tuples only); its output as ``str``."""
        psql = postgresql_bin("psql") or shutil.which("psql")
        return self._check(self._run([psql, "-h", self.workdir, "-p", str(self.port), "-U", "postgres", "-d",
                                      database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]), "psql").stdout

    def index_config(self, database, **extra):
        """The ``"PostgreSQL"`` section of an Orthanc configuration using this server's ``database``
        as index only (the storage stays on files), without the plugin's exclusive lock
        (``"Lock": false``), so that several Orthanc processes share it."""
        section = {"EnableIndex": True, "EnableStorage": False, "Host": self.host, "Port": self.port,
                   "Database": database, "Username": "postgres", "Password": "", "Lock": False}
        section.update(extra)
        return section

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=60.0):
        """Stop the server by its postmaster's PID (SIGINT: fast shutdown; SIGKILL after
        ``timeout``), then delete its folder."""
        pid, self.pid = self.pid, None
        try:
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pid = None
                deadline = time.monotonic() + timeout
                while pid is not None and time.monotonic() < deadline:
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)
                else:
                    if pid is not None:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# ---- pytest plugin ----------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    @pytest.fixture
    def orthanc_server(tmp_path):
        """A factory: ``orthanc_server(script=..., config=...)`` starts Orthanc with pythanc."""
        servers = []

        def start(script=None, config=None, wait=True, **kw):
            kw.setdefault("workdir", str(tmp_path / ("orthanc-%d" % len(servers))))
            os.makedirs(kw["workdir"], exist_ok=True)
            s = OrthancServer(script=script, config=config, start=False, **kw)
            servers.append(s)
            s.start(wait=wait)
            return s

        yield start
        errors = []
        for s in servers:
            try:
                s.stop()
            except Exception as e:  # still stopped (killed) by stop()
                errors.append(e)
        if errors:
            raise errors[0]
