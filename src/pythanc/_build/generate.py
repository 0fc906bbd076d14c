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

Every conversion is a call into ``pythanc.core.convert``; the generated text holds no conversion logic.
"""

import keyword
import re
import textwrap

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


# A string parameter that the SDK's text says "can be NULL" takes None (passed as NULL).
NULLABLE = r"\bcan be (?:``)?NULL\b"


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
    nullable = {n for n, t in (f.get("docs") or {}).get("params", []) if re.search(NULLABLE, t)}
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
        elif a["kind"] == "const char*" and name in nullable:
            plan["params"].append(pyname)
            plan["ptypes"].append("str or None")
            plan["cnames"].append(name)
            plan["call"].append("_optional_str(%s, %r)" % (pyname, name))
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
    for name in extern_python(model):
        c = callbacks[name]
        args = ", ".join(c["args"]) or "void"
        out.append('extern "Python" %s pythanc_%s(%s);' % (c["result"], name, args))
    return "\n".join(out) + "\n"


def extern_python(model):
    """The callback types of ``not_generated.EXTERN_PYTHON`` that this header defines (those of a newer
    SDK, such as ``OrthancPluginFindCallback2``, get no C entry point from an older header: the family
    module defines its Python side only when the plugin library has it)."""
    defined = {c["name"] for c in model["callbacks"]}
    return [n for n in hw.EXTERN_PYTHON if n in defined]


def extern_forward_decls(model):
    """C forward declarations of the Python entry points, for the hand-written C prelude."""
    callbacks = {c["name"]: c for c in model["callbacks"]}
    return "\n".join("static %s pythanc_%s(%s);" % (callbacks[n]["result"], n, ", ".join(callbacks[n]["args"]) or "void")
                     for n in extern_python(model))


# ---------------------------------------------------------------------------------------------
# The Python layer


# ---------------------------------------------------------------------------------------------
# Docstrings: the SDK's own text for what things mean, in Python terms for how they are called.
#
# A generated docstring (numpydoc layout, as pydicom's) has the SDK's summary and description, then
# "Parameters" (the Python parameters, with their Python types and the SDK's text for their
# meaning), "Returns" (the Python value, from the kind of the C result and the out-parameters),
# "Raises", and the SDK's notes, warnings and "see also".  The rules below turn the SDK's text into
# Python terms; none is written for one function.

DOC_WIDTH = 79

# A sentence of the SDK's text that matches one of these concerns C only (who frees what, how a
# string was allocated, the plugin context): it is left out.
C_ONLY_SENTENCES = [
    r"\bfreed?\b", r"\bOrthancPluginFree\w*", r"\bMemoryBuffer\w*", r"\bdeallocated\b", r"\bstatically-allocated\b",
    r"\bmake a copy of the string\b", r"\ballocated (?:by|using|with)\b", r"\bOrthancPluginInitialize\(\)",
    r"^0 if success\b", r"\berror code if failure\b",  # an error code is raised, never returned
]

# Rewrites of the SDK's text, in order: (pattern, replacement).
TEXT_REWRITES = [
    (r"^Opaque structure (?:to an object )?that ", "An object that "),
    (r"^Opaque structure to ", ""),
    (r"\bthe OrthancPluginContext\b", "the ``orthanc`` module"),
    (r"\b(?:the )?target memory buffer is filled with the NULL value and a zero size\b", "the result is empty"),
    (r"\b(?:[Tt]he )?target memory buffer\b", "the result"),
    (r"\bMemory buffer\b", "Buffer"),
    (r"\bmemory buffer\b", "buffer"),
    (r"\ba new pointer to a data structure that is managed by the Orthanc core\b", "a new object"),
    (r"^(?:A |The )?[Pp]ointer to (?:a |an |the )?", "The "),
    (r"\b([Aa]|[Tt]he) pointer to (?:a|an|the) ", r"\1 "),
    (r"\bnewly allocated\b", "new"),
    (r"\bthe NULL value\b", "None"),
    (r"\bNULL\b", "None"),
]

# What an out-parameter's text says, in Python terms: (pattern, replacement of the whole text).
OUTPUT_REWRITES = [
    (r"^(?:The )?target memory buffer\.\s*", ""),  # says nothing: the description may say more
    (r"^(?:[Tt]he )?(?:target )?[Mm]emory buffer (?:where to store|that will be filled by the Orthanc core with) (.+)$",
     r"\1"),
    (r"^Variable that will be filled by the Orthanc core with (.+)$", r"\1"),
    (r'^Pointer to a Boolean that is set to "true" iff\.? (.+)$', r"True if and only if \1"),
    (r"\s*\(1\) or not \(0\)", ""),
    (r"\s*\((?:out|output)\)", ""),
]
# The text of a presence flag ("found"): the condition under which the outputs are not None.
PRESENCE_FORM = r'^Pointer to a Boolean that is set to "true" iff\.? (.+?)\.?$'
# An output buffer whose text says nothing more than "the target memory buffer".
EMPTY_OUTPUT = "The result."

# Where the description says that the C function stores its result in a new memory buffer: the
# words are left out, and what they name (the "what" group) says what the Python function returns
# when the out-parameter's own text says nothing more.
STORED_RESULT_FORMS = [
    r"(?:^|(?<=\. ))(?:The )?(?P<what>[^.]+?) (?:is|are) (?:stored|written) (?:in|into|to) a (?:newly allocated |new )?memory buffer\.?",
    r"(?:^|(?<=\. ))As an output, it writes (?P<what>[^.]+?) (?:in|into|to) a newly allocated memory buffer\.?",
    r",? and (?:stores|writes) (?P<what>[^.]+?) (?:in|into|to) a newly allocated memory buffer",
    r",? and returns it (?:in|into) a newly allocated memory buffer",
]
# The forms of the SDK's @return text for a pointer result: "<value>" and "<condition>" of a NULL.
NULL_RESULT_FORMS = [
    r"^(?:The )?NULL(?: value)? (?:if|in) (?P<cond>.+?), or (?P<value>.+)$",
    r"^(?P<value>.+?),? or (?:the )?NULL(?: value)?,? (?:if|in) (?P<cond>.+)$",
    r"^(?P<value>.+?) if success, NULL if (?P<cond>.+)$",
    r"^(?P<value>.+?), NULL (?:if|in) (?P<cond>.+)$",
]
VALUE_REWRITES = [
    (r"^(?:a|the) (?:newly allocated |new )?string containing ", ""),
    (r"^The pointer to ", ""),
]
ERROR_CONDITIONS = r"^(?:the )?(?:case of (?:an )?)?(?:error|failure)s?$"

# Python types of the parameters and results.
PARAM_TYPES = {"str": "str", "str or None": "str or None", "buffer": "bytes, bytearray, memoryview or str",
               "int": "int", "float": "float"}
OUTPUT_TYPES = {"buffer": "bytes", "buffer64": "bytes", "bool": "bool", "int": "int", "enum": "int"}
RESULT_TYPES = {"string": "str", "static_string": "str or None", "int": "int", "float": "float"}

RAISES_ORTHANC = "If Orthanc reports an error: ``code`` is a value of ``orthanc.ErrorCode``."
RAISES_ARGUMENTS = "If an argument has the wrong type, or a value that C cannot take (out of range, a NUL character)."
NOTE_TITLES = {"note": "Notes", "warning": "Warnings", "deprecated": "Deprecated"}


class Docs:
    """Writes the docstrings of one header's ``orthanc`` module."""

    def __init__(self, m, plans, table):
        self.m = m
        self.plans = plans
        self.python = {}  # C function -> "orthanc.Name" / "orthanc.Class.Method"
        for c, (status, detail) in table.items():
            if status == "generated":
                self.python[c] = "orthanc." + detail
        for n, cfuns in handwritten_names(m).items():
            if len(cfuns) == 1 and (cfuns[0] not in self.python or "." not in n and n == short(cfuns[0])):
                self.python[cfuns[0]] = "orthanc." + n
        self.constants = {}
        for e in m.model["enums"]:
            for v in e["values"]:
                self.constants[v["name"]] = "orthanc.%s.%s" % (short(e["name"]), enum_member_name(e["name"], v["name"]))

    # ---- text

    def _names(self, text):
        """C names -> Python names: functions, enumeration values, types."""
        def function(mo):
            py = self.python.get(mo.group(1))
            return "``%s()``" % (py or mo.group(1))  # an SDK function with no Python name keeps its C name

        def name(mo):
            n = mo.group(0)
            if n in self.constants:
                return "``%s``" % self.constants[n]
            if n in self.m.classes or n in self.m.enums:
                return "``orthanc.%s``" % short(n)
            return n
        text = re.sub(r"::(?=OrthancPlugin)", "", text)
        text = re.sub(r"\b(OrthancPlugin\w+)\(\)", function, text)
        return re.sub(r"\bOrthancPlugin\w+", name, text)

    @staticmethod
    def _unquote(text):
        """SDK names written in quotes or as alternatives: ``"OrthancPluginRestApi[Get|Post]()"`` ->
        ``OrthancPluginRestApiGet() or OrthancPluginRestApiPost()``."""
        def alternatives(mo):
            names = ["OrthancPlugin%s%s%s()" % (mo.group(1), alt, mo.group(3)) for alt in mo.group(2).split("|")]
            return ", ".join(names[:-1]) + " or " + names[-1]
        text = re.sub(r"OrthancPlugin(\w+)\[([\w|]+)\](\w*)\(\)", alternatives, text)
        return re.sub(r'"((?:OrthancPlugin\w+(?:\(\))?(?:, | or )?)+)"', r"\1", text)

    @staticmethod
    def _sentences(paragraph):
        """Split a paragraph into sentences (not after "e.g.", "i.e.", "iff.", "etc.")."""
        out, start = [], 0
        for mo in re.finditer(r"(?<=[.!?])\s+(?=[A-Z`\"(])", paragraph):
            before = paragraph[start:mo.start()]
            if re.search(r"\b(?:e\.g|i\.e|iff|etc|vs)\.$", before):
                continue
            out.append(before)
            start = mo.end()
        out.append(paragraph[start:])
        return [s for s in out if s.strip()]

    def text(self, text):
        """The SDK's text in Python terms: names translated, C-only sentences left out."""
        paras = []
        for para in (text or "").split("\n\n"):
            lines = []
            for line in para.split("\n"):
                line = self._unquote(line)
                for form in STORED_RESULT_FORMS:
                    line = re.sub(form, "", line).strip()
                kept = [s for s in self._sentences(line) if not any(re.search(p, s) for p in C_ONLY_SENTENCES)]
                line = " ".join(kept)
                for pattern, repl in TEXT_REWRITES:
                    line = re.sub(pattern, repl, line)
                line = self._names(line).strip()
                if line:
                    lines.append(line)
            if lines:
                paras.append("\n".join(lines))
        return "\n\n".join(paras)

    @staticmethod
    def _sentence(text):
        text = text.strip()
        if not text:
            return ""
        text = text[0].upper() + text[1:]
        return text if text.endswith((".", "!", "?", ":")) else text + "."

    def output_text(self, text):
        text = " ".join((text or "").split())
        for pattern, repl in OUTPUT_REWRITES:
            text = re.sub(pattern, repl, text)
        return self._sentence(self.text(text))

    def null_result(self, text):
        """``(value, condition)`` of a pointer result's @return text (``condition`` is None without NULL)."""
        text = " ".join((text or "").split()).rstrip(".")
        first, _, rest = text.partition(". ")
        for form in NULL_RESULT_FORMS:
            mo = re.match(form, first)
            if mo:
                value, cond = mo.group("value"), mo.group("cond")
                for pattern, repl in VALUE_REWRITES:
                    value = re.sub(pattern, repl, value)
                value = self._sentence(self.text(value + (". " + rest if rest else "")))
                cond = None if re.match(ERROR_CONDITIONS, cond.strip()) else self.text(cond.strip())
                return value, cond or ""
        return self._sentence(self.text(text)), None

    # ---- layout

    @staticmethod
    def _wrap(text, indent=0):
        pad = " " * indent
        out = []
        for para in text.split("\n\n"):
            lines = []
            for line in para.split("\n"):
                lines.extend(textwrap.wrap(line, DOC_WIDTH - indent, initial_indent=pad, subsequent_indent=pad + (
                    "  " if line.startswith("- ") else ""), break_long_words=False, break_on_hyphens=False) or [""])
            out.append("\n".join(lines))
        return "\n\n".join(out)

    def _section(self, title, entries):
        """A numpydoc section: ``entries`` are ``(head, text)``."""
        out = [title, "-" * len(title)]
        for head, text in entries:
            out.append(head)
            if text:
                out.append(self._wrap(text, 4))
        return "\n".join(out)

    # ---- functions

    def function(self, plan, f):
        docs = f.get("docs") or {"brief": f["doc"], "details": "", "params": [], "returns": "", "notes": [], "see": []}
        sdk_params = {n: t for n, t in docs["params"]}
        parts = []
        brief = self._sentence(self.text(docs["brief"]))
        parts.append(self._wrap(brief or "Call the SDK function %s." % f["name"]))
        details = docs["details"]
        first = self._sentences(details.split("\n")[0]) if details else []
        if first and " ".join(first[0].split()) == " ".join(docs["brief"].split()):  # repeats the summary
            details = details[len(first[0]):].lstrip()
        details = self.text(details)
        if details:
            parts.append(self._wrap(details))
        # parameters
        entries = []
        for pyname, ptype, cname in zip(plan["params"], plan["ptypes"], plan["cnames"]):
            if ptype.startswith("enum:"):
                t = "int, a value of ``orthanc.%s``" % short(ptype.split(":", 1)[1])
            elif ptype.startswith("object:"):
                t = "orthanc.%s" % short(ptype.split(":", 1)[1])
            else:
                t = PARAM_TYPES[ptype]
            entries.append(("%s : %s" % (pyname, t), self._sentence(self.text(sdk_params.get(cname, "")))))
        if entries:
            parts.append(self._section("Parameters", entries))
        # result
        returns, raises = self.returns(plan, f, docs, sdk_params)
        if returns:
            parts.append(self._section("Returns", returns))
        if plan["params"]:
            raises.append(("TypeError, ValueError", RAISES_ARGUMENTS))
        if raises:
            parts.append(self._section("Raises", raises))
        # notes, warnings, see also
        for kind in ("deprecated", "warning", "note"):
            texts = [self._sentence(self.text(t)) for k, t in docs["notes"] if k == kind]
            texts = [t for t in texts if t]
            if texts:
                title = NOTE_TITLES[kind]
                parts.append("%s\n%s\n%s" % (title, "-" * len(title), self._wrap("\n\n".join(texts))))
        see = []
        for ref in docs["see"]:
            for c in re.findall(r"\b(OrthancPlugin\w+)\(\)", ref):
                if c in self.python and self.python[c] not in see:
                    see.append(self.python[c])
        if see:
            parts.append("See Also\n--------\n" + "\n".join(see))
        return "\n\n".join(parts)

    def returns(self, plan, f, docs, sdk_params):
        """``(returns entries, raises entries)`` of a function."""
        r = plan["result"]
        raises = []
        outs = returned_outputs(plan)
        if r == "check":
            raises.append(("OrthancException", RAISES_ORTHANC))
        if outs:
            presence = ""
            if plan["presence"] is not None:
                flag = " ".join(sdk_params.get(plan["presence"]["name"], "").split())
                mo = re.match(PRESENCE_FORM, flag)
                presence = "``None`` unless %s." % self.text(mo.group(1)) if mo else "``None`` if there is none."
            entries = []
            for o in outs:
                t = OUTPUT_TYPES[o["kind"]]
                if o["kind"] == "enum":
                    t = "int, a value of ``orthanc.%s``" % short(o["ctype"])
                text = hw.OUTPUT_MEANINGS.get((f["name"], o["name"])) or \
                    self.output_text(sdk_params.get(o["name"], ""))
                if o["kind"].startswith("buffer") and not text:
                    text = self.stored_result(docs) or EMPTY_OUTPUT
                if presence:
                    t, text = t + " or None", text + " " + presence
                entries.append(("%s : %s" % (o["name"], t) if len(outs) > 1 else t, text))
            return entries, raises
        if r in ("void", "check"):
            return [], raises
        if r.startswith("object:"):
            cls = short(r.split(":", 1)[1])
            value, cond = self.null_result(docs["returns"])
            raises.append(("OrthancException", "If Orthanc returns no object%s." % (
                " (%s)" % cond if cond else "")))
            return [("orthanc.%s" % cls, (value + " " if value else "") + "Owned by Python: Orthanc's copy is released "
                     "when the object is garbage-collected.")], raises
        if r == "string":
            value, cond = self.null_result(docs["returns"])
            raises.append(("OrthancException", "If Orthanc returns no string%s." % (" (%s)" % cond if cond else "")))
            return [("str", value)], raises
        if r == "static_string":
            value, cond = self.null_result(docs["returns"])
            if cond is not None:
                value = (value + " " if value else "") + ("``None`` if %s." % cond if cond else "``None`` on error.")
            return [("str or None", value)], raises
        if r.startswith("enum:"):
            return [("int, a value of ``orthanc.%s``" % short(r.split(":", 1)[1]),
                     self._sentence(self.text(docs["returns"])))], raises
        return [(RESULT_TYPES[r], self._sentence(self.text(docs["returns"])))], raises

    def stored_result(self, docs):
        text = " ".join((docs["details"] or "").split())
        for form in STORED_RESULT_FORMS:
            mo = re.search(form, text)
            if mo and "what" in mo.groupdict():
                what = re.sub(r"^the ", "", mo.group("what"))
                return self._sentence(self.text("the " + what))
        return ""

    # ---- classes and enumerations

    def _type_doc(self, t, default):
        docs = t.get("docs") or {"brief": t["doc"], "details": "", "notes": [], "see": []}
        parts = [self._sentence(self.text(docs["brief"])) or default]
        details = self.text(docs["details"])
        if details:
            parts.append(self._wrap(details))
        for kind in ("deprecated", "warning", "note"):
            for k, text in docs["notes"]:
                text = self._sentence(self.text(text))
                if k == kind and text:
                    parts.append(self._wrap("%s: %s" % (NOTE_TITLES[kind].rstrip("s"), text)))
        see = [self.python[c] for ref in docs["see"] for c in re.findall(r"\b(OrthancPlugin\w+)\(\)", ref)
               if c in self.python]
        if see:
            parts.append("See also: %s." % ", ".join("``%s()``" % n for n in see))
        return "\n\n".join([self._wrap(parts[0])] + parts[1:])

    def cls(self, c):
        return self._type_doc(c, "An object of the Orthanc SDK (%s)." % c["name"])

    def enum(self, e):
        return self._type_doc(e, "Values of the SDK enumeration %s." % e["name"])

    def member(self, v):
        return self._sentence(self.text(v["doc"]))


def _doc(text, indent):
    text = (text or "").replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    pad = " " * indent
    lines = text.splitlines() or [""]
    if len(lines) == 1:
        return '%s"""%s"""' % (pad, lines[0])
    body = "\n".join((pad + l) if l else "" for l in lines[1:])
    return '%s"""%s\n%s\n%s"""' % (pad, lines[0], body, pad)


def _output_value(o):
    """The Python value of an out-parameter after the call."""
    if o["kind"].startswith("buffer"):
        return "_take_buffer(%s)" % o["var"]
    if o["kind"] == "bool":
        return "%s[0] != 0" % o["var"]
    return "%s[0]" % o["var"]


def _emit_function(m, p, f, indent, name, docs):
    pad = " " * indent
    params = (["self"] if p["receiver"] else []) + p["params"]
    lines = ["%sdef %s(%s):" % (pad, name, ", ".join(params)), _doc(docs.function(p, f), indent + 4)]
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
    docs = Docs(m, plans, table)
    fn = m.functions
    out = ['"""Orthanc plugin SDK %s for Python (pythanc).' % ".".join(map(str, model["sdk_version"])),
           "",
           "Generated by pythanc from %s. Do not edit: change the generator or the" % model["header"],
           'hand-written parts (pythanc/sdk/, pythanc/callbacks/) instead."""',
           "",
           "from pythanc.core.convert import (STATE as _S, _lib, _ctx, _check, _str, _buf, _buf64, _int, _float, _obj,",
           "                                  _own, _rawbuf, _new_buffer, _new_buffer64, _take_buffer, _take_string,",
           "                                  _static_string, OrthancObject, OrthancException, _method)"]
    extra = set()  # helpers that only some headers need, imported on a line of their own
    for p in plans.values():
        if any(o["kind"] not in OUT_BUFFER_TYPES.values() for o in p["outputs"]):
            extra.add("_new_out")
        if "str or None" in p["ptypes"]:
            extra.add("_optional_str")
    if extra:
        out.append("from pythanc.core.convert import %s" % ", ".join(sorted(extra)))
    out += ["",
            "SDK_VERSION = %r" % ".".join(map(str, model["sdk_version"])),
            "_type, _len = type, len  # SDK parameters may be called 'type'",
            ""]
    # enums
    for e in model["enums"]:
        out.append("")
        out.append("class %s:" % short(e["name"]))
        out.append(_doc(docs.enum(e), 4))
        for v in e["values"]:
            if v["name"].endswith("_INTERNAL"):
                continue
            member = enum_member_name(e["name"], v["name"])
            out.append("    %s = %d" % (member, v["value"]))
            if v["doc"]:
                out.append("    # %s" % docs.member(v).replace("\n", " "))
        out.append("")
    # classes with their methods
    methods = {}
    for cname, p in plans.items():
        if p["receiver"]:
            methods.setdefault(p["receiver"], []).append(cname)
    for c in model["classes"]:
        cls = short(c["name"])
        out.append("")
        out.append("class %s(OrthancObject):" % cls)
        out.append(_doc(docs.cls(c), 4))
        out.append("    __slots__ = ()")
        out.append("    _c_type = %r" % (c["name"] + " *"))
        for cname in methods.get(c["name"], []):
            out.append("")
            out.extend(_emit_function(m, plans[cname], fn[cname], 4, short(cname), docs))
        for alias, target in class_aliases(m, plans, c["name"]):
            out.append("    %s = %s" % (alias, target))
        out.append("")
    # global functions
    for cname, p in plans.items():
        if not p["receiver"]:
            out.append("")
            out.extend(_emit_function(m, p, fn[cname], 0, short(cname), docs))
            out.append("")
    out.append("")
    out.append("# The names reached by hand-written code whose C functions this SDK has (see")
    out.append("# pythanc/_build/not_generated.py): pythanc.lifecycle.module binds each to its implementation")
    out.append("# (\"Class.Method\" for methods).")
    out.append("_HANDWRITTEN = (")
    for n in sorted(handwritten_names(m)):
        out.append("    %r," % n)
    out.append(")")
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

# Stubs of the hand-written methods (pythanc/sdk/handwritten.py and pythanc/callbacks/): "Class.Method" -> (signature, docstring).
_STUB_HANDWRITTEN_METHODS = {
    "DicomInstance.GetInstanceData": (
        "def GetInstanceData(self) -> bytes",
        "Get the content of the DICOM instance: the whole DICOM file, as bytes."),
    "DicomInstance.GetInstanceDicomWebJson": (
        "def GetInstanceDicomWebJson(self) -> str",
        "Convert the DICOM instance to DICOMweb JSON.\n\nBinary tags are left to Orthanc's defaults."),
    "DicomInstance.GetInstanceDicomWebXml": (
        "def GetInstanceDicomWebXml(self) -> str",
        "Convert the DICOM instance to DICOMweb XML.\n\nBinary tags are left to Orthanc's defaults."),
    "Image.GetImageBuffer": (
        "def GetImageBuffer(self) -> bytes",
        "A copy of the pixels of the image, as bytes (``pitch * height`` of them)."),
    "FindQuery.GetFindQueryTagGroup": (
        "def GetFindQueryTagGroup(self, index: int) -> int",
        "The group of the tag at ``index`` in the C-FIND query."),
    "FindQuery.GetFindQueryTagElement": (
        "def GetFindQueryTagElement(self, index: int) -> int",
        "The element of the tag at ``index`` in the C-FIND query."),
    "RestOutput.AnswerBuffer": (
        "def AnswerBuffer(self, answer: _Buffer, mimeType: str) -> None",
        "Answer the REST request with ``answer`` (bytes-like, or str sent as UTF-8) of type ``mimeType``."),
    "RestOutput.SendHttpStatus": (
        "def SendHttpStatus(self, status: int, body: _Buffer = ..., bodySize: Optional[int] = ...) -> None",
        "Answer the REST request with an HTTP status and a body.\n\n``bodySize`` (the official plugin 4.0's "
        "third argument) can only shorten the body."),
    "RestOutput.SendMultipartItem2": (
        "def SendMultipartItem2(self, answer: _Buffer, headers: Dict[str, str]) -> None",
        "Send one item of a multipart answer, with its own HTTP headers."),
    "Peers.CallPeerApi": (
        "def CallPeerApi(self, peerIndex: int, method: int, uri: str, headers: Optional[Dict[str, str]] = ..., "
        "body: _Buffer = ..., timeout: int = ...) -> Tuple[int, Dict[str, str], bytes]",
        "Call the REST API of the Orthanc peer at ``peerIndex``.\n\nReturns ``(status, headers, body)``; "
        "``method`` is a value of ``orthanc.HttpMethod``."),
    "Job.SubmitJob": (
        "def SubmitJob(self, priority: int) -> str",
        "Submit the job to Orthanc's jobs engine and return its ID.\n\nOrthanc takes the job over: this object "
        "can no longer be used."),
}


def _stub_type(ptype):
    if ptype == "buffer":
        return "_Buffer"
    if ptype == "str or None":
        return "Optional[str]"
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


def _stub_def(signature, doc, indent):
    pad = " " * indent
    return ["%s%s:" % (pad, signature), _doc(doc, indent + 4)]


def stubs(model, handwritten_stub_text):
    """The text of ``orthanc.pyi``: enums as integer attributes, classes, functions, callbacks, each
    with the docstring of the module."""
    m, plans, table = classify(model)
    docs = Docs(m, plans, table)
    out = ['"""Type stubs of the ``orthanc`` module of pythanc (Orthanc SDK %s). Generated; do not edit."""'
           % ".".join(map(str, model["sdk_version"])),
           "from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union", "",
           "_Buffer = Union[bytes, bytearray, memoryview, str]", "",
           "SDK_VERSION: str",
           '"""The version of the Orthanc plugin SDK that pythanc was built for, e.g. ``\'1.10.1\'``."""', "",
           "class OrthancException(Exception):",
           '    """An error reported by Orthanc: ``args == (code, description)``."""',
           "    @property"]
    out += _stub_def("def code(self) -> int", "The error code, a value of ``orthanc.ErrorCode``.", 4)
    out += ["    @property"]
    out += _stub_def("def description(self) -> str", "The description of the error.", 4)
    out.append("")
    for e in model["enums"]:
        out.append("class %s:" % short(e["name"]))
        out.append(_doc(docs.enum(e), 4))
        for v in e["values"]:
            if not v["name"].endswith("_INTERNAL"):
                out.append("    %s: int" % enum_member_name(e["name"], v["name"]))
                if docs.member(v):
                    out.append(_doc(docs.member(v), 4))
        out.append("")
    allowed = handwritten_names(m)
    hw_methods = {}
    for key, (signature, doc) in _STUB_HANDWRITTEN_METHODS.items():
        if key in allowed:
            hw_methods.setdefault(key.split(".")[0], []).append((signature, doc))
    for c in model["classes"]:
        cls = short(c["name"])
        out.append("class %s:" % cls)
        out.append(_doc(docs.cls(c), 4))
        for cname, p in plans.items():
            if p["receiver"] == c["name"]:
                params = ["self"] + _stub_params(m, p, m.functions[cname])
                out += _stub_def("def %s(%s) -> %s" % (short(cname), ", ".join(params), _stub_result(p)),
                                 docs.function(p, m.functions[cname]), 4)
        for signature, doc in hw_methods.get(cls, []):
            out += _stub_def(signature, doc, 4)
        for alias, target in class_aliases(m, plans, c["name"]):
            out.append("    %s = %s" % (alias, target))
        out.append("")
    for cname, p in plans.items():
        if not p["receiver"]:
            out += _stub_def("def %s(%s) -> %s" % (short(cname), ", ".join(_stub_params(m, p, m.functions[cname])),
                                                    _stub_result(p)), docs.function(p, m.functions[cname]), 0)
    out.append("")
    out.append(_handwritten_stub_text(m, handwritten_stub_text))
    return "\n".join(out) + "\n"
