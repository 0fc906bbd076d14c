"""Generate, from the code model of the SDK header, the C declarations for cffi and the
Python layer of the ``orthanc`` module.

Rules (see README, "How the SDK is mapped"):

* ``OrthancPluginX`` -> ``orthanc.X``; a function whose first argument after the context (and
  after an output ``target`` buffer) is an object becomes a method of that object's class.
* ``OrthancPluginMemoryBuffer* target`` -> the function returns ``bytes``.
* ``OrthancPluginErrorCode`` result -> ``None``, or ``orthanc.OrthancException(code, text)``.
* ``char*`` result -> ``str`` (freed by pythanc); ``const char*`` result -> ``str`` or ``None``.
* ``const void*``/``const char*`` followed by a ``...Size``/``size`` integer -> one buffer argument.
* An object result is owned by Python, and freed with ``OrthancPluginFree<Class>`` if it exists.
* Enums -> classes with integer attributes (``CamelCase`` -> ``UPPER_SNAKE``).

Every conversion is a call into ``pythanc._convert``; the generated text holds no conversion logic.
"""

import keyword

from . import not_generated as hw

PREFIX = "OrthancPlugin"
INT_RANGES = {
    "int8_t": (-2**7, 2**7 - 1), "uint8_t": (0, 2**8 - 1), "int16_t": (-2**15, 2**15 - 1),
    "uint16_t": (0, 2**16 - 1), "int32_t": (-2**31, 2**31 - 1), "uint32_t": (0, 2**32 - 1),
    "int64_t": (-2**63, 2**63 - 1), "uint64_t": (0, 2**64 - 1), "int": (-2**31, 2**31 - 1),
    "unsigned int": (0, 2**32 - 1),
}


def short(cname):
    return cname[len(PREFIX):] if cname.startswith(PREFIX) else cname


def enum_member_name(enum_name, constant):
    """``OrthancPluginChangeType_StableStudy`` -> ``STABLE_STUDY`` (rule of the official plugin)."""
    suffix = constant[len(enum_name) + 1:] if constant.startswith(enum_name + "_") else constant
    out = []
    for i, ch in enumerate(suffix):
        if i > 0 and ch.isupper() and suffix[i - 1].islower():
            out.append("_")
        out.append(ch)
    return "".join(out).upper()


def _base(ctype):
    t = ctype.replace("const ", "").replace("*", "").strip()
    return t


class Model:
    """Indexes over the code model that the generator and the coverage report share."""

    def __init__(self, model):
        self.model = model
        self.classes = {c["name"]: c for c in model["classes"]}
        self.enums = {e["name"]: e for e in model["enums"]}
        self.functions = {f["name"]: f for f in model["functions"]}
        self.destructors = {}
        for f in model["functions"]:
            a = f["args"]
            if (f["name"].startswith(PREFIX + "Free") and len(a) == 2 and a[0]["type"] == "OrthancPluginContext *"
                    and _base(a[1]["type"]) in self.classes):
                self.destructors[_base(a[1]["type"])] = f["name"]

    def object_class(self, ctype):
        """The opaque class of a pointer type (``const OrthancPluginImage *`` -> ``OrthancPluginImage``)."""
        if ctype.count("*") != 1:
            return None
        b = _base(ctype)
        return b if b in self.classes else None


class Unsupported(Exception):
    pass


def plan_function(m, f):
    """Decide how a C function maps to Python.  Returns a dict, or raises Unsupported."""
    args = list(f["args"])
    plan = {"c": f["name"], "params": [], "call": [], "receiver": None, "target": None, "result": None}
    if args and args[0]["type"] == "OrthancPluginContext *":
        plan["call"].append("(_S.ctx or _ctx())")
        args = args[1:]
    else:
        raise Unsupported("no context argument")
    if args and args[0]["name"] == "target" and _base(args[0]["type"]) in ("OrthancPluginMemoryBuffer",
                                                                           "OrthancPluginMemoryBuffer64"):
        plan["target"] = _base(args[0]["type"])
        plan["call"].append("_t")
        args = args[1:]
    i = 0
    first = True
    while i < len(args):
        a = args[i]
        name = a["name"]
        pyname = name + "_" if keyword.iskeyword(name) else name
        cls = m.object_class(a["type"])
        nxt = args[i + 1] if i + 1 < len(args) else None
        if cls is not None:
            if first:
                plan["receiver"] = cls
                plan["call"].append("(self._ptr or self._p())")
            else:
                plan["params"].append(pyname)
                plan["call"].append("_obj(%s, %s, %r)" % (pyname, short(cls), name))
        elif a["kind"] in ("const void*", "const char*") and nxt is not None and nxt["kind"] == "int" and \
                (nxt["name"].lower().endswith("size")) and "*" not in nxt["type"]:
            plan["params"].append(pyname)
            fn = "_buf64" if nxt["type"] == "uint64_t" else "_buf"
            limit = 2**63 - 1 if nxt["type"] == "uint64_t" else 2**32 - 1
            # bytes go to C as they are; anything else through the converter
            plan.setdefault("prelude", []).extend([
                "if _type(%s) is bytes and _len(%s) <= %d:" % (pyname, pyname, limit),
                "    _%s_p, _%s_n = %s, _len(%s)" % (pyname, pyname, pyname, pyname),
                "elif _type(%s) is str and _len(%s) <= %d:" % (pyname, pyname, limit // 4),
                "    _%s_p = %s.encode('utf-8', 'surrogateescape')" % (pyname, pyname),
                "    _%s_n = _len(_%s_p)" % (pyname, pyname),
                "else:",
                "    _%s_p, _%s_n = %s(%s, %r)" % (pyname, pyname, fn, pyname, name)])
            plan["call"].append("_%s_p, _%s_n" % (pyname, pyname))
            i += 1
        elif a["kind"] == "const void*" and f["name"] in hw.IMPLICIT_BUFFER_SIZES:
            plan["params"].append(pyname)
            plan["call"].append("_rawbuf(%s, %r, %s)" % (pyname, name, hw.IMPLICIT_BUFFER_SIZES[f["name"]]))
        elif a["kind"] == "const char*":
            plan["params"].append(pyname)
            plan["call"].append("(%s.encode('utf-8', 'surrogateescape') if _type(%s) is str and '\\0' not in %s "
                                "else _str(%s, %r))" % (pyname, pyname, pyname, pyname, name))
        elif a["kind"] == "enum":
            # cffi gives an enum with no negative value an unsigned type: check the range it accepts
            e = m.enums.get(_base(a["type"]))
            signed = e is None or any(v["value"] < 0 for v in e["values"])
            lo, hi = INT_RANGES["int32_t"] if signed else INT_RANGES["uint32_t"]
            plan["params"].append(pyname)
            plan["call"].append("_int(%s, %r, %d, %d)" % (pyname, name, lo, hi))
        elif a["kind"] == "int":
            lo, hi = INT_RANGES.get(a["type"].replace("const ", "").strip(), INT_RANGES["int64_t"])
            plan["params"].append(pyname)
            plan["call"].append("_int(%s, %r, %d, %d)" % (pyname, name, lo, hi))
        elif a["kind"] == "float":
            plan["params"].append(pyname)
            plan["call"].append("_float(%s, %r)" % (pyname, name))
        else:
            raise Unsupported("argument %s of type %s" % (name, a["type"]))
        first = False
        i += 1
    r = f["result"]
    if plan["target"]:
        if r != "OrthancPluginErrorCode":
            raise Unsupported("target buffer without an error code")
        plan["result"] = "buffer"
    elif r == "void":
        plan["result"] = "void"
    elif r == "OrthancPluginErrorCode":
        plan["result"] = "check"
    elif r == "char *":
        plan["result"] = "string"
    elif r == "const char *":
        plan["result"] = "static_string"
    elif m.object_class(r) is not None:
        plan["result"] = "object:" + m.object_class(r)
    elif r in m.enums or r in INT_RANGES or r in ("int", "uint32_t", "int32_t", "int64_t", "uint16_t"):
        plan["result"] = "int"
    elif r == "float":
        plan["result"] = "float"
    else:
        raise Unsupported("result of type %s" % r)
    return plan


def classify(model):
    """Split the header's functions into generated / hand-written / internal / not applicable / destructor.

    Returns ``(m, plans, table)`` where ``table`` maps each C function to ``(status, detail)``.
    """
    m = Model(model)
    plans, table = {}, {}
    destructor_fns = set(m.destructors.values())
    for f in model["functions"]:
        n = f["name"]
        if n in hw.HANDWRITTEN:
            table[n] = ("hand-written", ", ".join(hw.HANDWRITTEN[n]))
        elif n in hw.INTERNAL and n != PREFIX + "CheckVersion":
            table[n] = ("internal", hw.INTERNAL[n])
        elif n in hw.NOT_APPLICABLE:
            table[n] = ("not applicable", hw.NOT_APPLICABLE[n])
        elif n in destructor_fns:
            table[n] = ("destructor", "frees %s objects owned by Python" % short(_base(f["args"][1]["type"])))
        else:
            try:
                p = plan_function(m, f)
            except Unsupported as e:
                table[n] = ("unsupported", str(e))
                continue
            plans[n] = p
            pyname = short(n) if p["receiver"] is None else "%s.%s" % (short(p["receiver"]), short(n))
            table[n] = ("generated", pyname)
    return m, plans, table


# ---------------------------------------------------------------------------------------------
# C declarations for cffi


def _c_decl_type(t):
    return t.replace(" *", "*")


def cdef(model):
    """The ``ffi.cdef`` text: types in header order, the SDK functions, and the Python entry points."""
    m = Model(model)
    out = ["/* Generated by pythanc from %s (SDK %s). Do not edit. */" % (model["header"],
                                                                          ".".join(map(str, model["sdk_version"])))]
    structs = {s["name"]: s for s in model["structs"]}
    callbacks = {c["name"]: c for c in model["callbacks"]}
    for kind, name in model["decl_order"]:
        if kind == "class":
            out.append("typedef struct %s %s;" % (m.classes[name]["struct"], name))
        elif kind == "enum":
            vals = ",\n".join("  %s = %d" % (v["name"], v["value"]) for v in m.enums[name]["values"])
            out.append("typedef enum {\n%s\n} %s;" % (vals, name))
        elif kind == "struct":
            s = structs[name]
            if name == "OrthancPluginContext":
                out.append("typedef struct %s { const char* orthancVersion; ...; } %s;" % (s["struct"], name))
                continue
            fields = "\n".join("  %s %s;" % (f["type"], f["name"]) for f in s["fields"])
            out.append("typedef struct {\n%s\n} %s;" % (fields, name))
        elif kind == "callback":
            c = callbacks[name]
            out.append("typedef %s (*%s)(%s);" % (c["result"], name, ", ".join(c["args"]) or "void"))
    for f in model["functions"]:
        args = ", ".join("%s %s" % (a["type"], a["name"]) for a in f["args"]) or "void"
        out.append("%s %s(%s);" % (f["result"], f["name"], args))
    for name in hw.EXTERN_PYTHON:
        c = callbacks[name]
        args = ", ".join(c["args"]) or "void"
        out.append('extern "Python" %s pythanc_%s(%s);' % (c["result"], name, args))
    return "\n".join(out) + "\n"


def extern_forward_decls(model):
    """C forward declarations of the Python entry points, for the hand-written C prelude."""
    callbacks = {c["name"]: c for c in model["callbacks"]}
    return "\n".join("static %s pythanc_%s(%s);" % (callbacks[n]["result"], n, ", ".join(callbacks[n]["args"]) or "void")
                     for n in hw.EXTERN_PYTHON)


# ---------------------------------------------------------------------------------------------
# The Python layer


def _doc(text, indent):
    text = (text or "").replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    pad = " " * indent
    lines = text.splitlines() or [""]
    body = ("\n" + pad).join(l for l in lines)
    return '%s"""%s\n%s"""' % (pad, body, pad)


def _doc_without_context(f):
    lines = [l for l in f["doc"].splitlines() if not l.startswith("context: ")]
    return "\n".join(lines)


def _emit_function(m, p, f, indent, name):
    pad = " " * indent
    params = (["self"] if p["receiver"] else []) + p["params"]
    lines = ["%sdef %s(%s):" % (pad, name, ", ".join(params)), _doc(_doc_without_context(f), indent + 4)]
    body = pad + "    "
    for line in p.get("prelude", []):
        lines.append(body + line)
    if p["target"]:
        lines.append("%s_t = _new_buffer%s()" % (body, "64" if p["target"].endswith("64") else ""))
    call = "_lib.%s(%s)" % (p["c"], ", ".join(p["call"]))
    r = p["result"]
    if r == "buffer":
        lines.append("%s_check(%s, _t)" % (body, call))
        lines.append("%sreturn _take_buffer(_t)" % body)
    elif r == "void":
        lines.append("%s%s" % (body, call))
    elif r == "check":
        lines.append("%s_check(%s)" % (body, call))
    elif r == "string":
        lines.append("%sreturn _take_string(%s)" % (body, call))
    elif r == "static_string":
        lines.append("%sreturn _static_string(%s)" % (body, call))
    elif r.startswith("object:"):
        cls = r.split(":", 1)[1]
        free = m.destructors.get(cls)
        lines.append("%sreturn _own(%s, %s, %s)" % (body, short(cls), call, ("_lib." + free) if free else "None"))
    elif r == "int":
        lines.append("%sreturn %s" % (body, call))
    elif r == "float":
        lines.append("%sreturn %s" % (body, call))
    return lines


def python_module(model):
    """The text of ``pythanc/_generated/api.py``, which pythanc installs as the ``orthanc`` module."""
    m, plans, table = classify(model)
    fn = m.functions
    out = ['"""Orthanc plugin SDK %s for Python (pythanc).' % ".".join(map(str, model["sdk_version"])),
           "",
           "Generated by pythanc from %s. Do not edit: change the generator or the" % model["header"],
           'hand-written parts (pythanc/_handwritten.py, pythanc/_callbacks.py) instead."""',
           "",
           "from pythanc._convert import (STATE as _S, _lib, _ctx, _check, _str, _buf, _buf64, _int, _float, _obj, _own,",
           "                              _rawbuf, _new_buffer, _new_buffer64, _take_buffer, _take_string, _static_string,",
           "                              OrthancObject, OrthancException, _method)",
           "from pythanc import _handwritten, _callbacks",
           "",
           "SDK_VERSION = %r" % ".".join(map(str, model["sdk_version"])),
           "_type, _len = type, len  # SDK parameters may be called 'type'",
           ""]
    # enums
    for e in model["enums"]:
        out.append("")
        out.append("class %s:" % short(e["name"]))
        out.append(_doc(e["doc"] or "Values of the SDK enumeration %s." % e["name"], 4))
        for v in e["values"]:
            if v["name"].endswith("_INTERNAL"):
                continue
            member = enum_member_name(e["name"], v["name"])
            out.append("    %s = %d" % (member, v["value"]))
            if v["doc"]:
                out.append("    # %s" % v["doc"].replace("\n", " "))
        out.append("")
    # classes with their methods
    methods = {}
    for cname, p in plans.items():
        if p["receiver"]:
            methods.setdefault(p["receiver"], []).append(cname)
    hw_methods = {}
    for cfun, pynames in hw.HANDWRITTEN.items():
        for n in pynames:
            if "." in n:
                c, meth = n.split(".")
                hw_methods.setdefault(c, []).append(meth)
    aliases = {}
    for a, target in hw.ALIASES.items():
        c, meth = a.split(".")
        aliases.setdefault(c, []).append((meth, target.split(".")[1]))
    for c in model["classes"]:
        cls = short(c["name"])
        out.append("")
        out.append("class %s(OrthancObject):" % cls)
        out.append(_doc(c["doc"] or "Object of type %s of the Orthanc SDK." % c["name"], 4))
        out.append("    __slots__ = ()")
        out.append("    _c_type = %r" % (c["name"] + " *"))
        for cname in methods.get(c["name"], []):
            out.append("")
            out.extend(_emit_function(m, plans[cname], fn[cname], 4, short(cname)))
        for meth in hw_methods.get(cls, []):
            out.append("    %s = _handwritten.%s_%s" % (meth, cls, meth))
        for alias, target in aliases.get(cls, []):
            out.append("    %s = %s" % (alias, target))
        out.append("")
    # global functions
    for cname, p in plans.items():
        if not p["receiver"]:
            out.append("")
            out.extend(_emit_function(m, p, fn[cname], 0, short(cname)))
            out.append("")
    out.append("")
    out.append("# Hand-written entry points (see pythanc/_build/not_generated.py)")
    names = sorted({n for ns in hw.HANDWRITTEN.values() for n in ns if "." not in n} | set(hw.PYTHON_ONLY))
    for n in names:
        src = "_callbacks" if n.startswith("Register") or n == "CreateJob" else "_handwritten"
        out.append("%s = %s.%s" % (n, src, n))
    out.append("")
    out.append("_handwritten._bind(globals())")
    out.append("")
    return "\n".join(out)


def coverage(model):
    """The coverage table: ``{"rows": [(c_function, status, detail)], "totals": {...}}``."""
    m, plans, table = classify(model)
    rows = [(n, table[n][0], table[n][1]) for n in sorted(table)]
    totals = {}
    for _, status, _ in rows:
        totals[status] = totals.get(status, 0) + 1
    reachable = sum(v for k, v in totals.items() if k in ("generated", "hand-written", "internal", "destructor"))
    return {"sdk_version": model["sdk_version"], "rows": rows, "totals": totals, "functions": len(rows),
            "reachable": reachable, "percent": round(100.0 * reachable / max(1, len(rows)), 1)}


# ---------------------------------------------------------------------------------------------
# Type stubs (PEP 561): the same code model, the same names

_STUB_HANDWRITTEN_METHODS = {
    "DicomInstance.GetInstanceData": "def GetInstanceData(self) -> bytes: ...",
    "DicomInstance.GetInstanceDicomWebJson": "def GetInstanceDicomWebJson(self) -> str: ...",
    "DicomInstance.GetInstanceDicomWebXml": "def GetInstanceDicomWebXml(self) -> str: ...",
    "Image.GetImageBuffer": "def GetImageBuffer(self) -> bytes: ...",
    "FindQuery.GetFindQueryTagGroup": "def GetFindQueryTagGroup(self, index: int) -> int: ...",
    "FindQuery.GetFindQueryTagElement": "def GetFindQueryTagElement(self, index: int) -> int: ...",
    "RestOutput.SendHttpStatus": "def SendHttpStatus(self, status: int, body: _Buffer = ..., "
                                 "bodySize: Optional[int] = ...) -> None: ...",
    "RestOutput.SendMultipartItem2": "def SendMultipartItem2(self, answer: _Buffer, headers: Dict[str, str]) -> None: ...",
    "Peers.CallPeerApi": "def CallPeerApi(self, peerIndex: int, method: int, uri: str, "
                         "headers: Optional[Dict[str, str]] = ..., body: _Buffer = ..., timeout: int = ...) "
                         "-> Tuple[int, Dict[str, str], bytes]: ...",
}


def _stub_params(m, plan, f):
    types = []
    args = [a for a in f["args"] if a["type"] != "OrthancPluginContext *"]
    if plan["target"]:
        args = args[1:]
    calls = [c for c in plan["call"] if c not in ("(_S.ctx or _ctx())", "_t", "(self._ptr or self._p())")]
    for call, name in zip(calls, plan["params"]):
        if call.startswith("_%s_p" % name) or call.startswith("_rawbuf"):
            types.append("_Buffer")
        elif call.startswith("(%s.encode(" % name):
            types.append("str")
        elif call.startswith("_int"):
            types.append("int")
        elif call.startswith("_float"):
            types.append("float")
        elif call.startswith("_obj"):
            types.append("Optional[%s]" % call.split(", ")[1])
        else:
            types.append("Any")
    return ["%s: %s" % (n, t) for n, t in zip(plan["params"], types)]


def _stub_result(plan):
    r = plan["result"]
    return {"buffer": "bytes", "void": "None", "check": "None", "string": "str", "static_string": "Optional[str]",
            "int": "int", "float": "float"}.get(r) or short(r.split(":", 1)[1])


def stubs(model, handwritten_stub_text):
    """The text of ``orthanc.pyi``: enums as integer attributes, classes, functions, callbacks."""
    m, plans, table = classify(model)
    out = ['"""Type stubs of the ``orthanc`` module of pythanc (Orthanc SDK %s). Generated; do not edit."""'
           % ".".join(map(str, model["sdk_version"])),
           "from typing import Any, Callable, Dict, List, Optional, Tuple, Union", "",
           "_Buffer = Union[bytes, bytearray, memoryview, str]", "",
           "SDK_VERSION: str", "",
           "class OrthancException(Exception):",
           "    @property", "    def code(self) -> int: ...",
           "    @property", "    def description(self) -> str: ...", ""]
    for e in model["enums"]:
        out.append("class %s:" % short(e["name"]))
        for v in e["values"]:
            if not v["name"].endswith("_INTERNAL"):
                out.append("    %s: int" % enum_member_name(e["name"], v["name"]))
        out.append("")
    hw_methods = {}
    for key, text in _STUB_HANDWRITTEN_METHODS.items():
        hw_methods.setdefault(key.split(".")[0], []).append(text)
    for c in model["classes"]:
        cls = short(c["name"])
        out.append("class %s:" % cls)
        body = []
        for cname, p in plans.items():
            if p["receiver"] == c["name"]:
                params = ["self"] + _stub_params(m, p, m.functions[cname])
                body.append("    def %s(%s) -> %s: ..." % (short(cname), ", ".join(params), _stub_result(p)))
        for text in hw_methods.get(cls, []):
            body.append("    " + text)
        for alias, target in hw.ALIASES.items():
            if alias.split(".")[0] == cls:
                body.append("    %s = %s" % (alias.split(".")[1], target.split(".")[1]))
        out.extend(body or ["    ..."])
        out.append("")
    for cname, p in plans.items():
        if not p["receiver"]:
            out.append("def %s(%s) -> %s: ..." % (short(cname), ", ".join(_stub_params(m, p, m.functions[cname])),
                                                  _stub_result(p)))
    out.append("")
    out.append(handwritten_stub_text)
    return "\n".join(out) + "\n"
