"""The worker side of pythanc's worker processes (see ``pythanc/workers/pool.py`` for the Orthanc side).

A worker is a fresh interpreter (``python -m pythanc.workers.worker FD``, started by the Orthanc
process with ``sys.executable``, like ``multiprocessing``'s "spawn": nothing of Orthanc's memory,
threads or sockets is inherited; only the socket ``FD`` to Orthanc is passed).  It:

1. receives ``("init", config)``: ``sys.path``, the scripts, the names of the ``orthanc`` module;
2. installs an ``orthanc`` module whose functions forward to the Orthanc process, and runs the
   user's scripts (``Register*`` calls are recorded, nothing else);
3. answers ``("call", kind, key, args)`` messages by running the callback registered with
   ``worker=True`` under that key, forwarding its ``orthanc`` calls (module functions, the methods
   of the request's ``RestOutput`` or of the stored ``DicomInstance``) until it sends ``done``.

This module is also the wire format, used by both sides: :class:`Channel`.  It imports nothing of
the plugin library (it runs outside Orthanc).
"""

import io
import os
import pickle
import socket
import struct
import sys
import threading
import time
import types

from pythanc.core import logbridge, tracebacks
from pythanc.core.errors import OrthancException
from pythanc.core.script_env import keep_fork_start_method

# ---------------------------------------------------------------------------------------------
# Wire format: [u64 pickle size][u32 blob count][u64 blob size]*count [pickle][blob]*count
#
# Large ``bytes`` (and any ``bytearray``/``memoryview``) anywhere in a message are not pickled:
# the pickle refers to them by index (pickle's persistent IDs) and they follow as raw frames,
# written from the object itself (``sendall`` of the buffer) and read straight into their final
# buffer (``recv_into`` / ``recv(MSG_WAITALL)``).  The socket calls release the GIL.

_HEAD = struct.Struct("<QI")
BLOB_MIN = 16 * 1024     # smaller bytes travel inside the pickle
_JOIN_MAX = 256 * 1024   # messages up to this size go in one sendall


class ChannelClosed(Exception):
    """The other side has gone (EOF, reset)."""


class ChannelTimeout(Exception):
    """Nothing arrived in time."""


class _Pickler(pickle.Pickler):
    def __init__(self, f, blobs):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self.blobs = blobs

    def persistent_id(self, o):
        t = type(o)
        if t is bytes:
            if len(o) < BLOB_MIN:
                return None
        elif t is not bytearray and t is not memoryview:
            return None
        self.blobs.append(o)
        return len(self.blobs) - 1


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, blobs):
        super().__init__(f)
        self.blobs = blobs

    def persistent_load(self, pid):
        return self.blobs[pid]


def _nbytes(b):
    return b.nbytes if type(b) is memoryview else len(b)


class Channel:
    """Framed messages over a stream socket.  ``bytes_blobs``: large values are received as
    ``bytes`` (worker side, what scripts expect) rather than ``bytearray`` (Orthanc side, passed
    as they are to the SDK).  Not thread-safe: one user at a time."""

    def __init__(self, sock, bytes_blobs):
        self.sock = sock
        self.bytes_blobs = bytes_blobs
        self.alive = None  # optional callable: False once the peer process is known dead

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending --------------------------------------------------------------------------------
    def send(self, obj, deadline=None):
        blobs = []
        f = io.BytesIO()
        _Pickler(f, blobs).dump(obj)
        pk = f.getvalue()
        sizes = [_nbytes(b) for b in blobs]
        head = _HEAD.pack(len(pk), len(blobs)) + struct.pack("<%dQ" % len(blobs), *sizes) + pk
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelTimeout()
            self.sock.settimeout(remaining)
        try:
            if sum(sizes) <= _JOIN_MAX:
                self.sock.sendall(b"".join([head] + [bytes(b) if type(b) is memoryview else b for b in blobs]))
            else:
                self.sock.sendall(head)
                for b in blobs:
                    if len(b):
                        self.sock.sendall(b if type(b) is not memoryview else b.cast("B"))
        except socket.timeout:
            raise ChannelTimeout() from None
        except (OSError, ValueError) as e:
            raise ChannelClosed(str(e)) from None

    # -- receiving ------------------------------------------------------------------------------
    def _fill(self, view, deadline):
        """Fill the writable ``view`` from the socket (``deadline``: time.monotonic() or None)."""
        n = len(view)
        got = 0
        sock = self.sock
        while got < n:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChannelTimeout()
                # in slices, so that a dead peer is noticed even if someone else holds its socket
                sock.settimeout(min(remaining, 1.0))
            try:
                k = sock.recv_into(view[got:])
            except socket.timeout:
                if self.alive is not None and not self.alive():
                    raise ChannelClosed("the worker process has exited") from None
                continue
            except OSError as e:
                raise ChannelClosed(str(e)) from None
            if k == 0:
                raise ChannelClosed("end of file")
            got += k

    def _read_bytes(self, n, deadline):
        if n == 0:
            return b""
        if deadline is None:  # blocking socket: the kernel fills one bytes object
            try:
                data = self.sock.recv(n, socket.MSG_WAITALL)
            except OSError as e:
                raise ChannelClosed(str(e)) from None
            if len(data) == n:
                return data
            if not data:
                raise ChannelClosed("end of file")
            buf = bytearray(n)
            buf[:len(data)] = data
            self._fill(memoryview(buf)[len(data):], None)
            return bytes(buf)
        buf = bytearray(n)
        self._fill(memoryview(buf), deadline)
        return buf

    def recv(self, deadline=None):
        head = bytearray(_HEAD.size)
        self._fill(memoryview(head), deadline)
        pk_size, count = _HEAD.unpack(head)
        sizes = struct.unpack("<%dQ" % count, self._read_bytes(8 * count, deadline)) if count else ()
        pk = self._read_bytes(pk_size, deadline)
        blobs = []
        for n in sizes:
            if self.bytes_blobs:
                b = self._read_bytes(n, deadline)
                blobs.append(bytes(b) if type(b) is bytearray else b)
            else:
                buf = bytearray(n)
                if n:
                    self._fill(memoryview(buf), deadline)
                blobs.append(buf)
        return _Unpickler(io.BytesIO(pk), blobs).load()


def exception_reply(e):
    """What the serving side sends back for an exception raised by a forwarded call."""
    if type(e).__name__ == "OrthancException" and len(e.args) >= 1:
        return ("exc", "OrthancException", tuple(e.args))
    return ("exc", type(e).__name__, (str(e),))


def callback_key(kind, callback, regex=None):
    """How a callback registered with ``worker=True`` is named across processes."""
    return (kind, getattr(callback, "__module__", None), getattr(callback, "__qualname__", None), regex)


# ---------------------------------------------------------------------------------------------
# Worker side

ERROR_BAD_SEQUENCE_OF_CALLS = 6


class _Worker:
    def __init__(self, channel, detached=False):
        self.ch = channel
        self.detached = detached   # a multiprocessing child: no connection to Orthanc at all
        self.lock = threading.RLock()
        self.active = False        # True while Orthanc serves this worker's calls
        self.registered = {}       # key -> callback, from Register*(..., worker=True) in this process
        self.registrations = []    # (name, args, kwargs) of every Register* call (recorded only)
        self.made = []             # proxies of the objects that forwarded calls returned, this callback
        self.orthanc = None
        self.deferred = None       # a RestOutput.AnswerBuffer not yet sent (see answer_later)
        self.output_used = True    # a method of this REST callback's RestOutput was called

    # -- forwarding -----------------------------------------------------------------------------
    def call(self, target, name, args, kwargs):
        with self.lock:
            if self.detached:
                raise OrthancException(
                    ERROR_BAD_SEQUENCE_OF_CALLS,
                    "orthanc.%s: this process was started by multiprocessing, it has no connection to "
                    "Orthanc (only the enumerations and OrthancException); run the callback in a pythanc "
                    "worker process instead (worker=True)" % name)
            if not self.active:
                raise OrthancException(
                    ERROR_BAD_SEQUENCE_OF_CALLS,
                    "orthanc.%s: in a pythanc worker process, the orthanc module can be used only while "
                    "a callback offloaded to it (or the script, at start-up) runs" % name)
            if self.deferred is not None:
                self.flush()
            self.ch.send((target, name, args, kwargs))
            reply = self.ch.recv()
        return self.result(reply)

    # A REST callback's answer usually ends it: RestOutput.AnswerBuffer(bytes or ASCII str, ASCII
    # MIME type) as the first method of the request's output is not sent at once but with the next
    # message, forwarded call or "done" (one round trip instead of two).  Only such calls are
    # deferred: with these arguments, Orthanc's process accepts them (nothing answered yet, no
    # conversion that can fail), so no exception is moved away from the line that caused it.
    def answer_later(self, args, kwargs):
        """True if ``out.AnswerBuffer(*args, **kwargs)`` is deferred (self.lock held)."""
        if self.output_used or kwargs or len(args) != 2:
            return False
        answer, mime = args
        if not (type(answer) is bytes or (type(answer) is str and answer.isascii())) or \
                type(mime) is not str or not mime.isascii() or "\0" in mime:
            return False
        self.deferred = ("out", "AnswerBuffer", args, {})
        return True

    def flush(self):
        """Send the deferred call, before any other message of the callback (self.lock held)."""
        call, self.deferred = self.deferred, None
        self.ch.send(call)
        self.result(self.ch.recv())

    def result(self, reply):
        if reply[0] == "ret":
            return reply[1]
        if reply[0] == "obj":   # an SDK object kept in Orthanc's process until the callback ends
            _, cls, key = reply
            proxy = self.proxies[cls]._make(key)
            with self.lock:
                self.made.append(proxy)
            return proxy
        _, typename, eargs = reply
        if typename == "OrthancException":
            raise OrthancException(*eargs)
        import builtins
        cls = getattr(builtins, typename, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            cls = RuntimeError
            eargs = ("%s: %s" % (typename, eargs[0] if eargs else ""),)
        raise cls(*eargs)

    def forwarder(self, name, doc=None):
        def f(*args, **kwargs):
            return self.call("api", name, args, kwargs)
        f.__name__ = f.__qualname__ = name
        f.__module__ = "orthanc"
        f.__doc__ = doc
        return f

    def recorder(self, name, kind):
        def register(*args, worker=False, **kwargs):
            self.registrations.append((name, args, dict(kwargs, worker=worker)))
            if worker and kind is not None:
                if kind == "rest":
                    regex = args[0] if args else kwargs.get("pathRegularExpression")
                    callback = args[1] if len(args) > 1 else kwargs.get("callback")
                else:
                    regex, callback = None, (args[0] if args else kwargs.get("callback"))
                self.registered[callback_key(kind, callback, regex)] = callback
        register.__name__ = register.__qualname__ = name
        register.__module__ = "orthanc"
        register.__doc__ = "In a pythanc worker process, registrations are recorded and do nothing."
        return register

    def log_function(self, name):
        fwd = self.forwarder(name)

        def log(message):
            if self.active:
                try:
                    return fwd(message)
                except Exception:
                    pass
            sys.stderr.write("pythanc worker %d: %s\n" % (os.getpid(), message))
        log.__name__ = log.__qualname__ = name
        log.__module__ = "orthanc"
        return log

    # -- the orthanc module ---------------------------------------------------------------------
    def build_module(self, info):
        mod = types.ModuleType("orthanc", info.get("doc"))
        worker = self

        class _Proxy:
            """An object of the Orthanc process, used through its methods (forwarded by name)."""
            __slots__ = ("_target", "_valid")
            _kind = None

            def __init__(self, *args, **kwargs):
                raise TypeError("orthanc.%s objects are created by Orthanc, not by calling the class"
                                % type(self).__name__)

            @classmethod
            def _make(cls, target):
                o = object.__new__(cls)
                o._target = target
                o._valid = True
                return o

            def __getattr__(self, name):
                if name.startswith("_"):
                    raise AttributeError(name)

                def method(*args, **kwargs):
                    if not self._valid:
                        raise OrthancException(
                            ERROR_BAD_SEQUENCE_OF_CALLS,
                            "This orthanc.%s is no longer valid: it was handed to (or made by) a "
                            "callback that has returned" % type(self).__name__)
                    if self._target == "out":
                        with worker.lock:
                            deferred = name == "AnswerBuffer" and worker.answer_later(args, kwargs)
                            worker.output_used = True
                        if deferred:
                            return None
                    return worker.call(self._target, name, args, kwargs)
                method.__name__ = name
                return method

            def __repr__(self):
                return "<orthanc.%s (forwarded to the Orthanc process%s)>" % (
                    type(self).__name__, "" if self._valid else ", invalid")

        proxies = {}
        for name in info["object_classes"]:
            cls = type(name, (_Proxy,), {"__slots__": (), "__module__": "orthanc",
                                         "__doc__": "orthanc.%s of the Orthanc process (pythanc worker proxy)" % name})
            proxies[name] = cls
            mod.__dict__[name] = cls
        self.proxies = proxies
        for name, values in info["enums"].items():
            mod.__dict__[name] = type(name, (), dict(values, __module__="orthanc"))
        for name, value in info["constants"].items():
            mod.__dict__[name] = value
        kinds = {"RegisterRestCallback": "rest", "RegisterOnStoredInstanceCallback": "stored",
                 "RegisterOnChangeCallback": "change", "RegisterAuditLogHandler": "audit"}
        for name, doc in info["functions"].items():
            if name.startswith("Register"):
                mod.__dict__[name] = self.recorder(name, kinds.get(name))
            elif name in ("LogInfo", "LogWarning", "LogError"):
                mod.__dict__[name] = self.log_function(name)
            else:
                mod.__dict__[name] = self.forwarder(name, doc)
        mod.OrthancException = OrthancException
        mod.IsWorkerProcess = lambda: True
        self.orthanc = mod
        return mod

    # -- running callbacks ----------------------------------------------------------------------
    def find(self, key):
        cb = self.registered.get(key)
        if cb is not None:
            return cb
        kind, module, qualname, regex = key
        obj = sys.modules.get(module)
        for part in (qualname or "<none>").split("."):
            if obj is None or part == "<locals>":
                obj = None
                break
            obj = getattr(obj, part, None)
        if obj is None or not callable(obj):
            raise LookupError("pythanc worker: the callback %s.%s was not found in the worker process "
                              "(the script must register it with worker=True, or define it at module "
                              "level)" % (module, qualname))
        return obj

    def run(self, kind, key, args):
        callback = self.find(key)
        if kind == "rest":
            uri, kw = args
            out = self.proxies["RestOutput"]._make("out")
            try:
                callback(out, uri, **kw)
            finally:
                out._valid = False
        elif kind == "stored":
            inst = self.proxies["DicomInstance"]._make("inst")
            try:
                callback(inst, args[0])
            finally:
                inst._valid = False
        else:
            callback(*args)

    def serve(self):
        while True:
            try:
                msg = self.ch.recv()
            except ChannelClosed:
                return
            op = msg[0]
            if op == "stop":
                return
            if op != "call":
                continue
            _, kind, key, args = msg
            with self.lock:
                self.active = True
                self.output_used = kind != "rest"
            try:
                self.run(kind, key, args)
                reply = ("done", None)
            except BaseException as e:
                reply = ("failed", tracebacks.format_exception(e),
                         tuple(e.args) if type(e).__name__ == "OrthancException" else None)
            with self.lock:
                self.active = False
                self.invalidate_made()
                # the deferred answer travels with the end: Orthanc's process sends it first
                reply, self.deferred = reply + (self.deferred,), None
                self.output_used = True
                self.ch.send(reply)

    def invalidate_made(self):
        """The objects that forwarded calls returned live in Orthanc's process until the callback
        (or the start-up) ends: their proxies become invalid then."""
        for proxy in self.made:
            proxy._valid = False
        del self.made[:]


def _module_info_from_source():
    """The names of the ``orthanc`` module, read from the generated source (no plugin library)."""
    import ast
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(package, "_generated", "api.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    enums, classes, functions, constants = {}, [], {}, {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            if node.bases:
                classes.append(node.name)
                continue
            values = {}
            for st in node.body:
                if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                    try:
                        v = ast.literal_eval(st.value)
                    except ValueError:
                        continue
                    if type(v) is int:
                        values[st.targets[0].id] = v
            enums[node.name] = values
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            functions[node.name] = ast.get_docstring(node)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "_HANDWRITTEN":  # the functions implemented by hand (not in this source)
                for n in ast.literal_eval(node.value):
                    if "." not in n:
                        functions[n] = None
                continue
            if name.startswith("_"):
                continue
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, (str, int, float, bool)):
                constants[name] = node.value.value
            elif isinstance(node.value, ast.Attribute):
                functions[name] = None
    for name in ("GetSharedValue", "SetSharedValue", "IncrementSharedValue"):
        functions[name] = None
    return {"doc": ast.get_docstring(tree), "enums": enums, "object_classes": classes,
            "functions": functions, "constants": constants}


def detached_module():
    """The ``orthanc`` module of a process started by ``multiprocessing`` ("spawn", "forkserver")
    from a script: it may import the script, which imports ``orthanc``.  Enumerations and
    ``OrthancException`` work, ``Register*`` do nothing, other calls raise ``OrthancException``."""
    w = _Worker(None, detached=True)
    mod = w.build_module(_module_info_from_source())
    mod.IsWorkerProcess = lambda: False
    return mod


def _watch_parent(parent):
    """Exit if Orthanc has gone (our socket may also be held open by Orthanc's other children)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _load(path):
    import importlib.util
    path = os.path.abspath(path)
    folder, filename = os.path.split(path)
    stem = os.path.splitext(filename)[0]
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    spec.loader.exec_module(module)


def main(fd):
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches Orthanc, which stops us
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), name="pythanc-watch", daemon=True).start()
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    w = _Worker(Channel(sock, bytes_blobs=True))
    try:
        op, config = w.ch.recv()
    except ChannelClosed:
        return 1
    sys.path[:] = list(config["sys_path"])
    mod = w.build_module(config["module"])
    sys.modules["orthanc"] = mod
    tracebacks.set_full(config.get("full_tracebacks", False))   # PythonVerbose in Orthanc's process
    # Python's logging as in Orthanc's process: its defaults, what would go to stderr for want of a
    # handler into Orthanc's log, and the option Python.LoggingLevel
    logbridge.configure(mod.LogError, mod.LogWarning, mod.LogInfo, config.get("logging_level"))
    keep_fork_start_method()
    w.active = True  # the script may use the orthanc module at start-up: Orthanc serves us now
    try:
        for path in config["scripts"]:
            _load(path)
    except BaseException:
        w.active = False
        w.ch.send(("fatal", tracebacks.format_exception()))
        return 1
    w.active = False
    w.invalidate_made()
    w.ch.send(("ready", {"pid": os.getpid(), "registered": len(w.registered)}))
    w.serve()
    return 0


if __name__ == "__main__":
    code = main(int(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # do not wait for threads that the user's script started
