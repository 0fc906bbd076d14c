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
            if (f["name"].startswith(PREFIX + "Free") and len(a) == 2 and _is_context(a[0]["type"])
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


def _is_context(ctype):
    """The SDK context argument (``const`` since SDK 1.13.0 for the functions that only read it)."""
    return ctype in ("OrthancPluginContext *", "const OrthancPluginContext *")


# Out-parameters: a non-const pointer to one of these C types is written by the SDK function and
# becomes (part of) what the Python function returns.  ``uint8_t`` is the SDK's Boolean.
OUT_BUFFER_TYPES = {"OrthancPluginMemoryBuffer": "buffer", "OrthancPluginMemoryBuffer64": "buffer64"}
OUT_BOOL_TYPES = ("uint8_t",)
# A Boolean out-parameter with one of these names says whether the other outputs were produced;
# it is not returned itself: the other outputs are ``None`` when it is false.
PRESENCE_FLAGS = ("found",)


def out_kind(m, a):
    """``"buffer"``, ``"buffer64"``, ``"bool"``, ``"int"`` or ``"enum"`` for an out-parameter, else ``None``."""
    t = a["type"]
    if t.count("*") != 1 or not t.rstrip().endswith("*") or t.startswith("const ") or " const" in t:
        return None
    b = _base(t)
    if b in OUT_BUFFER_TYPES:
        return OUT_BUFFER_TYPES[b]
    if b in OUT_BOOL_TYPES:
        return "bool"
    if b in INT_RANGES:
        return "int"
    if b in m.enums:
        return "enum"
    return None


def callback_args(f):
    """The SDK callback types among the arguments of ``f`` (a function taking one registers it)."""
    return [a["type"] for a in f["args"] if a["kind"] == "callback"]


def plan_function(m, f):
    """Decide how a C function maps to Python.  Returns a dict, or raises Unsupported.

    ``params`` are the Python parameters, ``ptypes`` their kinds (``str``, ``buffer``, ``int``,
    ``enum:<C enum>``, ``float``, ``object:<C class>``) and ``cnames`` the C argument each stands
    for; ``merged`` maps a buffer parameter to the C size argument it also fills; ``outputs`` are the
    out-parameters (returned, see :func:`out_kind`); ``presence`` the out-parameter that says
    whether the others were produced; ``result`` the kind of the C result."""
    args = list(f["args"])
    plan = {"c": f["name"], "params": [], "ptypes": [], "cnames": [], "merged": {}, "call": [], "receiver": None,
            "outputs": [], "presence": None, "result": None}
    if args and _is_context(args[0]["type"]):
        plan["call"].append("(_S.ctx or _ctx())")
        args = args[1:]
    else:
        raise Unsupported("no context argument")
    i = 0
    first = True
    nbuf = 0
    while i < len(args):
        a = args[i]
        name = a["name"]
        pyname = name + "_" if keyword.iskeyword(name) else name
        cls = m.object_class(a["type"])
        nxt = args[i + 1] if i + 1 < len(args) else None
        ok = out_kind(m, a)
        if ok is not None:
            if ok.startswith("buffer"):
                nbuf += 1
                var = "_t" if nbuf == 1 else "_t%d" % nbuf
            else:
                var = "_o_" + name
            plan["outputs"].append({"name": name, "kind": ok, "var": var, "ctype": _base(a["type"])})
            plan["call"].append(var)
            i += 1
            continue  # an output before the receiver does not make it a global function
        if cls is not None:
            if first:
                plan["receiver"] = cls
                plan["call"].append("(self._ptr or self._p())")
            else:
                plan["params"].append(pyname)
                plan["ptypes"].append("object:" + cls)
                plan["cnames"].append(name)
                plan["call"].append("_obj(%s, %s, %r)" % (pyname, short(cls), name))
        elif a["kind"] in ("const void*", "const char*") and nxt is not None and nxt["kind"] == "int" and \
                (nxt["name"].lower().endswith("size")) and "*" not in nxt["type"]:
            plan["params"].append(pyname)
            plan["ptypes"].append("buffer")
            plan["cnames"].append(name)
            plan["merged"][pyname] = nxt["name"]
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
            plan["ptypes"].append("buffer")
            plan["cnames"].append(name)
            plan["call"].append("_rawbuf(%s, %r, %s)" % (pyname, name, hw.IMPLICIT_BUFFER_SIZES[f["name"]]))
        elif a["kind"] == "const char*":
            plan["params"].append(pyname)
            plan["ptypes"].append("str")
            plan["cnames"].append(name)
            plan["call"].append("(%s.encode('utf-8', 'surrogateescape') if _type(%s) is str and '\\0' not in %s "
                                "else _str(%s, %r))" % (pyname, pyname, pyname, pyname, name))
        elif a["kind"] == "enum":
            # cffi gives an enum with no negative value an unsigned type: check the range it accepts
            e = m.enums.get(_base(a["type"]))
            signed = e is None or any(v["value"] < 0 for v in e["values"])
            lo, hi = INT_RANGES["int32_t"] if signed else INT_RANGES["uint32_t"]
            plan["params"].append(pyname)
            plan["ptypes"].append("enum:" + _base(a["type"]) if e is not None else "int")
            plan["cnames"].append(name)
            plan["call"].append("_int(%s, %r, %d, %d)" % (pyname, name, lo, hi))
        elif a["kind"] == "int":
            lo, hi = INT_RANGES.get(a["type"].replace("const ", "").strip(), INT_RANGES["int64_t"])
            plan["params"].append(pyname)
            plan["ptypes"].append("int")
            plan["cnames"].append(name)
            plan["call"].append("_int(%s, %r, %d, %d)" % (pyname, name, lo, hi))
        elif a["kind"] == "float":
            plan["params"].append(pyname)
            plan["ptypes"].append("float")
            plan["cnames"].append(name)
            plan["call"].append("_float(%s, %r)" % (pyname, name))
        else:
            raise Unsupported("argument %s of type %s" % (name, a["type"]))
        first = False
        i += 1
    outs = plan["outputs"]
    flags = [o for o in outs if o["kind"] == "bool" and o["name"] in PRESENCE_FLAGS]
    if flags and len(outs) > 1:
        plan["presence"] = flags[0]
    r = f["result"]
    if outs and r not in ("OrthancPluginErrorCode", "void"):
        raise Unsupported("a result of type %s and out-parameters" % r)
    if r == "void":
        plan["result"] = "void"
    elif r == "OrthancPluginErrorCode":
        plan["result"] = "check"
    elif r == "char *":
        plan["result"] = "string"
    elif r == "const char *":
        plan["result"] = "static_string"
    elif m.object_class(r) is not None:
        plan["result"] = "object:" + m.object_class(r)
    elif r in m.enums:
        plan["result"] = "enum:" + r
    elif r in INT_RANGES or r in ("int", "uint32_t", "int32_t", "int64_t", "uint16_t"):
        plan["result"] = "int"
    elif r == "float":
        plan["result"] = "float"
    else:
        raise Unsupported("result of type %s" % r)
    return plan


def returned_outputs(plan):
    """The out-parameters that the Python function returns (all but a presence flag), in C order."""
    return [o for o in plan["outputs"] if o is not plan["presence"]]


def method_aliases(plan, pyname):
    """Short names of a method (official plugin 6.0+): the class name is dropped from the start of
    the method name (``FindMatcher.FindMatcherIsMatch`` -> ``FindMatcher.IsMatch``)."""
    cls = short(plan["receiver"]) if plan["receiver"] else None
    if cls and pyname.startswith(cls) and pyname[len(cls):][:1].isupper():
        return [pyname[len(cls):]]
    return []


def handwritten_names(m):
    """``{Python name: [C functions]}`` of the hand-written entry points that this header allows: a name
    exists only if every C function it calls is in the header (as the official module does)."""
    uses = {}
    for cfun, pynames in hw.HANDWRITTEN.items():
        for n in pynames:
            uses.setdefault(n, []).append(cfun)
    return {n: cfuns for n, cfuns in uses.items() if all(c in m.functions for c in cfuns)}


def classify(model):
    """Split the header's functions into generated / hand-written / internal / not applicable /
    destructor / to hand-write (callback registrations that need hand-written run-time code) /
    unsupported.

    Returns ``(m, plans, table)`` where ``table`` maps each C function to ``(status, detail)``.
    """
    m = Model(model)
    plans, table = {}, {}
    destructor_fns = set(m.destructors.values())
    taken = set(handwritten_names(m))
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
        elif callback_args(f):
            pyname = hw.TO_HANDWRITE.get(n, short(n))
            table[n] = ("to hand-write", "takes the SDK callback type(s) %s: needs hand-written run-time code "
                        "(Python name: %s)" % (", ".join(_base(t) for t in callback_args(f)), pyname))
        else:
            try:
                p = plan_function(m, f)
            except Unsupported as e:
                table[n] = ("unsupported", str(e))
                continue
            pyname = short(n) if p["receiver"] is None else "%s.%s" % (short(p["receiver"]), short(n))
            if pyname in taken:
                table[n] = ("unsupported", "its Python name %s is taken by a hand-written entry point" % pyname)
                continue
            plans[n] = p
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


def _output_value(o):
    """The Python value of an out-parameter after the call."""
    if o["kind"].startswith("buffer"):
        return "_take_buffer(%s)" % o["var"]
    if o["kind"] == "bool":
        return "%s[0] != 0" % o["var"]
    return "%s[0]" % o["var"]


def _emit_function(m, p, f, indent, name):
    pad = " " * indent
    params = (["self"] if p["receiver"] else []) + p["params"]
    lines = ["%sdef %s(%s):" % (pad, name, ", ".join(params)), _doc(_doc_without_context(f), indent + 4)]
    body = pad + "    "
    for line in p.get("prelude", []):
        lines.append(body + line)
    buffers = [o for o in p["outputs"] if o["kind"].startswith("buffer")]
    for o in p["outputs"]:
        if o["kind"].startswith("buffer"):
            lines.append("%s%s = _new_buffer%s()" % (body, o["var"], "64" if o["kind"] == "buffer64" else ""))
        else:
            lines.append("%s%s = _new_out(%r)" % (body, o["var"], o["ctype"]))
    call = "_lib.%s(%s)" % (p["c"], ", ".join(p["call"]))
    r = p["result"]
    if r == "check" and len(buffers) > 1:
        # an error leaves nothing to return: free whatever Orthanc may have put in the buffers
        lines.append("%s_e = %s" % (body, call))
        lines.append("%sif _e:" % body)
        for o in buffers[1:]:
            lines.append("%s    _take_buffer(%s)" % (body, o["var"]))
        lines.append("%s_check(_e, %s)" % (body, buffers[0]["var"]))
    elif r == "check" and buffers:
        lines.append("%s_check(%s, %s)" % (body, call, buffers[0]["var"]))
    elif r == "check":
        lines.append("%s_check(%s)" % (body, call))
    elif r == "void":
        lines.append("%s%s" % (body, call))
    elif r == "string":
        lines.append("%sreturn _take_string(%s)" % (body, call))
    elif r == "static_string":
        lines.append("%sreturn _static_string(%s)" % (body, call))
    elif r.startswith("object:"):
        cls = r.split(":", 1)[1]
        free = m.destructors.get(cls)
        lines.append("%sreturn _own(%s, %s, %s)" % (body, short(cls), call, ("_lib." + free) if free else "None"))
    elif r in ("int", "float") or r.startswith("enum:"):
        lines.append("%sreturn %s" % (body, call))
    outs = returned_outputs(p)
    if p["presence"] is not None:
        lines.append("%sif not %s[0]:" % (body, p["presence"]["var"]))
        for o in buffers:
            lines.append("%s    _take_buffer(%s)" % (body, o["var"]))
        lines.append("%s    return %s" % (body, "None" if len(outs) == 1 else "(%s)" % ", ".join(["None"] * len(outs))))
    if len(outs) == 1:
        lines.append("%sreturn %s" % (body, _output_value(outs[0])))
    elif outs:
        lines.append("%sreturn (%s)" % (body, ", ".join(_output_value(o) for o in outs)))
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
           "from pythanc import _handwritten, _callbacks"]
    if any(o["kind"] not in OUT_BUFFER_TYPES.values() for p in plans.values() for o in p["outputs"]):
        out.append("from pythanc._convert import _new_out")
    out += ["",
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
    for n in handwritten_names(m):
        if "." in n:
            c, meth = n.split(".")
            hw_methods.setdefault(c, []).append(meth)
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
        for alias, target in class_aliases(m, plans, c["name"]):
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
    names = sorted(n for n in handwritten_names(m) if "." not in n)
    for n in names:
        src = "_callbacks" if n.startswith("Register") or n == "CreateJob" else "_handwritten"
        out.append("%s = %s.%s" % (n, src, n))
    out.append("")
    out.append("_handwritten._bind(globals())")
    out.append("")
    return "\n".join(out)


def class_aliases(m, plans, cname):
    """``[(alias, method)]`` of a class: the short method names of :func:`method_aliases`, and the
    aliases of ``not_generated.ALIASES`` whose method exists."""
    cls = short(cname)
    have = {short(c) for c, p in plans.items() if p["receiver"] == cname}
    have |= {n.split(".")[1] for n in handwritten_names(m) if n.startswith(cls + ".")}
    out = []
    for c, p in plans.items():
        if p["receiver"] == cname:
            for alias in method_aliases(p, short(c)):
                if alias not in have:
                    out.append((alias, short(c)))
                    have.add(alias)
    for a, target in hw.ALIASES.items():
        c, meth = a.split(".")
        if c == cls and meth not in have and target.split(".")[1] in have:
            out.append((meth, target.split(".")[1]))
            have.add(meth)
    return out


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


def _stub_type(ptype):
    if ptype == "buffer":
        return "_Buffer"
    if ptype in ("str", "int", "float"):
        return ptype
    if ptype.startswith("enum:"):
        return "int"
    if ptype.startswith("object:"):
        return "Optional[%s]" % short(ptype.split(":", 1)[1])
    return "Any"


def _stub_params(m, plan, f):
    return ["%s: %s" % (n, _stub_type(t)) for n, t in zip(plan["params"], plan["ptypes"])]


_STUB_OUTPUT = {"buffer": "bytes", "buffer64": "bytes", "bool": "bool", "int": "int", "enum": "int"}


def _stub_result(plan):
    outs = returned_outputs(plan)
    if outs:
        types = [_STUB_OUTPUT[o["kind"]] for o in outs]
        if plan["presence"] is not None:
            types = ["Optional[%s]" % t for t in types]
        return types[0] if len(types) == 1 else "Tuple[%s]" % ", ".join(types)
    r = plan["result"]
    if r.startswith("object:"):
        return short(r.split(":", 1)[1])
    if r.startswith("enum:"):
        return "int"
    return {"void": "None", "check": "None", "string": "str", "static_string": "Optional[str]",
            "int": "int", "float": "float"}[r]


def _handwritten_stub_text(m, text):
    """The hand-written stubs, without the entry points whose C functions this header lacks."""
    import ast
    allowed = handwritten_names(m)
    every = {n for ns in hw.HANDWRITTEN.values() for n in ns}
    tree = ast.parse(text)
    lines = text.splitlines()
    drop = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in every and node.name not in allowed:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            drop.update(range(start, node.end_lineno + 1))
    return "\n".join(l for i, l in enumerate(lines, 1) if i not in drop)


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
    allowed = handwritten_names(m)
    hw_methods = {}
    for key, text in _STUB_HANDWRITTEN_METHODS.items():
        if key in allowed:
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
        for alias, target in class_aliases(m, plans, c["name"]):
            body.append("    %s = %s" % (alias, target))
        out.extend(body or ["    ..."])
        out.append("")
    for cname, p in plans.items():
        if not p["receiver"]:
            out.append("def %s(%s) -> %s: ..." % (short(cname), ", ".join(_stub_params(m, p, m.functions[cname])),
                                                  _stub_result(p)))
    out.append("")
    out.append(_handwritten_stub_text(m, handwritten_stub_text))
    return "\n".join(out) + "\n"
