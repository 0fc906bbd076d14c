"""Parse the installed Orthanc plugin SDK header into a code model.

The header is read with libclang (the PyPI ``libclang`` package), never with
regular expressions.  The result is a plain, JSON-serialisable dictionary:

``sdk_version``
    ``[major, minor, revision]`` from ``ORTHANC_PLUGINS_MINIMAL_*_NUMBER``.
``functions``
    every ``OrthancPlugin*`` inline function: ``name``, ``result`` (C type),
    ``args`` (list of ``{"name", "type", "kind"}``), ``doc`` (the comment as plain
    text) and ``docs`` (the same comment split by :func:`parse_comment`).
``enums``
    every ``OrthancPlugin*`` enum: ``name``, ``doc``, ``docs`` and ``values``
    (``{"name", "value", "doc"}``), in header order.
``classes``
    opaque object types (``typedef struct _X_t OrthancPluginX;`` without a
    definition): ``name`` (C typedef), ``doc`` and ``docs``.
``structs``
    public structures with their fields (``name``, ``fields``, ``doc``).
``callbacks``
    function-pointer typedefs: ``name``, ``result``, ``args`` (types) and ``doc``.
``decl_order``
    the type declarations in header order (``[kind, name]``), so that a C
    declaration list emitted from the model is valid C.
"""

import json
import os
import subprocess
import sys

DEFAULT_HEADER = "/usr/include/orthanc/OrthancCPlugin.h"
PREFIX = "OrthancPlugin"


class HeaderNotFound(RuntimeError):
    pass


def find_header():
    """Return the path of ``OrthancCPlugin.h``: ``$ORTHANC_SDK_INCLUDE`` first, then /usr/include/orthanc."""
    env = os.environ.get("ORTHANC_SDK_INCLUDE")
    candidates = []
    if env:
        candidates += [os.path.join(env, "OrthancCPlugin.h"), os.path.join(env, "orthanc", "OrthancCPlugin.h"), env]
    candidates.append(DEFAULT_HEADER)
    for c in candidates:
        if os.path.isfile(c):
            return os.path.abspath(c)
    raise HeaderNotFound(
        "The Orthanc plugin SDK header OrthancCPlugin.h was not found (looked in: %s). "
        "Install it with 'apt-get install orthanc-dev' (Debian/Ubuntu), or set ORTHANC_SDK_INCLUDE "
        "to the folder that holds it." % ", ".join(candidates))


def _system_include_dirs():
    """Folders holding the compiler's own headers (stddef.h, stdint.h), which the pip libclang lacks."""
    dirs = []
    for cc in ("gcc", "cc", "clang"):
        try:
            out = subprocess.run([cc, "-print-file-name=include"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out and os.path.isdir(out):
            dirs.append(out)
            break
    return dirs


def clean_comment(raw):
    """Turn a Doxygen comment into plain text for a Python docstring."""
    if not raw:
        return ""
    lines = []
    for line in raw.splitlines():
        s = line.strip()
        if s.startswith("/**") or s.startswith("/*"):
            s = s.lstrip("/").lstrip("*")
            if s.startswith("!<"):  # /*!< member documentation */
                s = s[2:]
            elif s.startswith("!"):
                s = s[1:]
        if s.endswith("*/"):
            s = s[:-2].rstrip("*")
        s = s.strip()
        if s.startswith("*"):
            s = s[1:]
            if s.startswith(" "):
                s = s[1:]
        s = s.rstrip()
        for tag, repl in (("@brief ", ""), ("@return ", "Returns: "), ("@note ", "Note: "),
                          ("@warning ", "Warning: "), ("@deprecated ", "Deprecated: ")):
            if s.startswith(tag):
                s = repl + s[len(tag):]
        if s.startswith("@param "):
            parts = s[len("@param "):].split(None, 1)
            s = "%s: %s" % (parts[0], parts[1] if len(parts) > 1 else "")
        for a, b in (("<tt>", "``"), ("</tt>", "``"), ("<i>", ""), ("</i>", ""), ("<b>", ""), ("</b>", "")):
            s = s.replace(a, b)
        if s.startswith("@ingroup"):
            continue
        lines.append(s)
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    out, blank = [], False
    for s in lines:
        if not s:
            if not blank:
                out.append("")
            blank = True
        else:
            out.append(s)
            blank = False
    return "\n".join(out)


_SECTION_TAGS = {"@brief": "brief", "@param": "param", "@return": "returns", "@result": "returns",
                 "@note": "note", "@warning": "warning", "@remark": "note", "@deprecated": "deprecated",
                 "@see": "see"}


def _comment_lines(raw):
    """The lines of a Doxygen comment without its delimiters and leading ``*``, HTML-ish markup
    turned into reStructuredText literals."""
    out = []
    for line in raw.splitlines():
        s = line.strip()
        if s.startswith("/**") or s.startswith("/*!") or s.startswith("/*"):
            s = s[3:] if s.startswith(("/**", "/*!")) else s[2:]
            if s.startswith("<"):  # /*!< member documentation */
                s = s[1:]
        if s.endswith("*/"):
            s = s[:-2].rstrip("*")
        s = s.strip()
        if s.startswith("*"):
            s = s[1:]
        s = s.strip()
        for a, b in (("<tt>", "``"), ("</tt>", "``"), ("<i>", ""), ("</i>", ""), ("<b>", ""), ("</b>", ""),
                     ("<br/>", "")):
            s = s.replace(a, b)
        out.append(s)
    return out


def _paragraphs(lines):
    """Join the lines of a comment section into paragraphs: a blank line separates paragraphs, a
    line starting with ``- `` starts a list item of its own; other lines continue the previous one."""
    paras, cur = [], []
    for s in lines:
        if not s:
            if cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        if s.startswith("- ") and cur:
            paras.append(" ".join(cur))
            cur = []
        cur.append(s)
    if cur:
        paras.append(" ".join(cur))
    return "\n".join(paras) if len(paras) <= 1 else "\n\n".join(paras).replace("\n\n- ", "\n- ")


def parse_comment(raw):
    """Split a Doxygen comment into its parts.

    Returns ``{"brief", "details", "params", "returns", "notes", "see"}``: ``params`` is a list
    of ``[name, text]`` in comment order, ``notes`` a list of ``[kind, text]`` (``note``,
    ``warning``, ``deprecated``), ``see`` the references of ``@see``.  A tagged section runs until a
    blank line or the next tag; untagged text outside a section belongs to ``details``.  Texts
    are single paragraphs, except ``details`` (paragraphs separated by a blank line)."""
    parts = {"brief": "", "details": "", "params": [], "returns": "", "notes": [], "see": []}
    if not raw:
        return parts
    sections = []  # [kind, name, lines]
    current = None
    for s in _comment_lines(raw):
        tag = s.split(None, 1)[0] if s.startswith(("@", "\\")) else None
        if tag is not None:
            rest = s[len(tag):].strip()
            kind = _SECTION_TAGS.get(tag)
            if kind is None:  # @ingroup, @defgroup, \mainpage...: not part of the documentation
                current = None
                continue
            name = None
            if kind == "param":
                bits = rest.split(None, 1)
                name, rest = (bits[0], bits[1] if len(bits) > 1 else "") if bits else ("", "")
            current = [kind, name, [rest]]
            sections.append(current)
        elif not s:
            if current is not None and current[0] != "details":
                current = None
            elif current is not None:
                current[2].append(s)
        else:
            if current is None:
                current = ["details", None, []]
                sections.append(current)
            current[2].append(s)
    details = []
    for kind, name, lines in sections:
        text = _paragraphs(lines)
        if kind == "brief":
            parts["brief"] = (parts["brief"] + " " + text).strip()
        elif kind == "details":
            if text:
                details.append(text)
        elif kind == "param":
            parts["params"].append([name, text])
        elif kind == "returns":
            parts["returns"] = text
        elif kind == "see":
            parts["see"].append(text)
        else:
            parts["notes"].append([kind, text])
    parts["details"] = "\n\n".join(details)
    if not parts["brief"] and details:  # no @brief: the first paragraph is the summary
        first, _, rest = parts["details"].partition("\n\n")
        parts["brief"], parts["details"] = first, rest
    return parts


def parse(header=None):
    """Parse ``header`` (default: :func:`find_header`) and return the code model."""
    import clang.cindex as ci

    header = header or find_header()
    args = ["-x", "c", "-std=gnu99", "-fparse-all-comments"]
    for d in _system_include_dirs():
        args.append("-I" + d)
    index = ci.Index.create()
    tu = index.parse(header, args=args,
                     options=ci.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD)
    errors = [d for d in tu.diagnostics if d.severity >= ci.Diagnostic.Error]
    if errors:
        raise RuntimeError("libclang could not parse %s: %s" % (header, "; ".join(str(e) for e in errors[:5])))

    header_real = os.path.realpath(header)

    def in_header(cur):
        return cur.location.file is not None and os.path.realpath(cur.location.file.name) == header_real

    model = {"header": header, "sdk_version": [0, 0, 0], "functions": [], "enums": [], "classes": [],
             "structs": [], "callbacks": [], "decl_order": []}
    version_macros = {"ORTHANC_PLUGINS_MINIMAL_MAJOR_NUMBER": 0, "ORTHANC_PLUGINS_MINIMAL_MINOR_NUMBER": 1,
                      "ORTHANC_PLUGINS_MINIMAL_REVISION_NUMBER": 2}
    seen_enums = set()

    for cur in tu.cursor.get_children():
        if not in_header(cur):
            continue
        kind = cur.kind
        if kind == ci.CursorKind.MACRO_DEFINITION and cur.spelling in version_macros:
            toks = [t.spelling for t in cur.get_tokens()]
            model["sdk_version"][version_macros[cur.spelling]] = int(toks[-1])
        elif kind == ci.CursorKind.FUNCTION_DECL and cur.spelling.startswith(PREFIX) and cur.is_definition():
            model["functions"].append({
                "name": cur.spelling,
                "result": cur.result_type.spelling,
                "args": [{"name": a.spelling, "type": a.type.spelling, "kind": _kind(a.type)}
                         for a in cur.get_arguments()],
                "doc": clean_comment(cur.raw_comment),
                "docs": parse_comment(cur.raw_comment),
            })
        elif kind == ci.CursorKind.TYPEDEF_DECL and cur.spelling.startswith(PREFIX):
            _typedef(ci, cur, model, seen_enums)
    return model


def _kind(t):
    """A coarse classification of a C type, used by the generator."""
    import clang.cindex as ci
    c = t.get_canonical()
    if c.kind == ci.TypeKind.POINTER:
        p = c.get_pointee()
        if p.kind in (ci.TypeKind.CHAR_S, ci.TypeKind.SCHAR, ci.TypeKind.CHAR_U, ci.TypeKind.UCHAR):
            return "const char*" if p.is_const_qualified() else "char*"
        if p.kind == ci.TypeKind.VOID:
            return "const void*" if p.is_const_qualified() else "void*"
        if p.kind == ci.TypeKind.FUNCTIONPROTO:
            return "callback"
        if p.kind == ci.TypeKind.RECORD:
            return "record*"
        return "pointer"
    if c.kind == ci.TypeKind.ENUM:
        return "enum"
    if c.kind in (ci.TypeKind.FLOAT, ci.TypeKind.DOUBLE):
        return "float"
    if c.kind == ci.TypeKind.VOID:
        return "void"
    if c.kind in (ci.TypeKind.INT, ci.TypeKind.UINT, ci.TypeKind.LONG, ci.TypeKind.ULONG, ci.TypeKind.LONGLONG,
                  ci.TypeKind.ULONGLONG, ci.TypeKind.SHORT, ci.TypeKind.USHORT, ci.TypeKind.CHAR_S,
                  ci.TypeKind.UCHAR, ci.TypeKind.SCHAR, ci.TypeKind.CHAR_U, ci.TypeKind.BOOL):
        return "int"
    return "other"


def _typedef(ci, cur, model, seen_enums):
    name = cur.spelling
    under = cur.underlying_typedef_type
    canon = under.get_canonical()
    doc = clean_comment(cur.raw_comment)
    docs = parse_comment(cur.raw_comment)
    if canon.kind == ci.TypeKind.ENUM:
        if name in seen_enums:
            return
        seen_enums.add(name)
        edecl = canon.get_declaration()
        values = [{"name": c.spelling, "value": c.enum_value, "doc": clean_comment(c.raw_comment)}
                  for c in edecl.get_children() if c.kind == ci.CursorKind.ENUM_CONSTANT_DECL]
        model["enums"].append({"name": name, "doc": doc or clean_comment(edecl.raw_comment), "values": values,
                               "docs": docs if cur.raw_comment else parse_comment(edecl.raw_comment)})
        model["decl_order"].append(["enum", name])
    elif canon.kind == ci.TypeKind.RECORD:
        rdecl = canon.get_declaration()
        if not rdecl.is_definition() and (rdecl.get_definition() is None):
            model["classes"].append({"name": name, "struct": rdecl.spelling, "doc": doc, "docs": docs})
            model["decl_order"].append(["class", name])
        else:
            fields = [{"name": f.spelling, "type": f.type.spelling, "kind": _kind(f.type)}
                      for f in rdecl.get_definition().get_children() if f.kind == ci.CursorKind.FIELD_DECL]
            model["structs"].append({"name": name, "struct": rdecl.spelling, "doc": doc, "fields": fields})
            model["decl_order"].append(["struct", name])
    elif canon.kind == ci.TypeKind.POINTER and canon.get_pointee().kind in (ci.TypeKind.FUNCTIONPROTO,
                                                                             ci.TypeKind.FUNCTIONNOPROTO):
        # Keep the typedef'd spellings of the arguments: walk the typedef's own children.
        fn = under.get_pointee() if under.kind == ci.TypeKind.POINTER else canon.get_pointee()
        argtypes = [a.spelling for a in fn.argument_types()] if fn.kind == ci.TypeKind.FUNCTIONPROTO else []
        argnames = [c.spelling for c in cur.get_children() if c.kind == ci.CursorKind.PARM_DECL]
        model["callbacks"].append({"name": name, "result": fn.get_result().spelling, "args": argtypes,
                                   "argnames": argnames, "doc": doc})
        model["decl_order"].append(["callback", name])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    model = parse(argv[0] if argv else None)
    json.dump(model, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
