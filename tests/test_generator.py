"""Pure unit tests of the header parser and the code generator (no Orthanc process)."""

import ast
import json
import os

import pytest

from pythanc._build import generate, not_generated, sdkmodel

from conftest import SHARED


@pytest.fixture(scope="module")
def model():
    return sdkmodel.parse()


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(SHARED, "reference", "official-api-4.0.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def api_tree(model):
    return ast.parse(generate.python_module(model))


def _module_names(tree):
    funcs, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs.add(node.name)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            funcs.add(node.targets[0].id)
        elif isinstance(node, ast.ClassDef):
            members = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members[item.name] = None
                elif isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                    v = item.value
                    try:
                        members[item.targets[0].id] = ast.literal_eval(v)
                    except ValueError:
                        members[item.targets[0].id] = None
            classes[node.name] = members
    return funcs, classes


def test_parser_finds_every_inline_function(model):
    with open(model["header"]) as f:
        text = f.read()
    # Each SDK function is defined as "ORTHANC_PLUGIN_INLINE <type> OrthancPluginX(": count the definitions.
    inline_defs = sum(1 for line in text.splitlines() if line.strip().startswith("ORTHANC_PLUGIN_INLINE "))
    assert len(model["functions"]) == inline_defs
    assert model["sdk_version"] == [1, 10, 1]
    names = {f["name"] for f in model["functions"]}
    assert {"OrthancPluginRestApiGet", "OrthancPluginAnswerBuffer", "OrthancPluginGetInstanceSize"} <= names


def test_parser_reads_arguments_and_documentation(model):
    f = next(f for f in model["functions"] if f["name"] == "OrthancPluginRestApiGet")
    assert [a["name"] for a in f["args"]] == ["context", "target", "uri"]
    assert f["result"] == "OrthancPluginErrorCode"
    assert f["doc"].startswith("Make a GET call to the built-in Orthanc REST API.")
    assert "uri: The URI in the built-in Orthanc API." in f["doc"]
    enums = {e["name"]: e for e in model["enums"]}
    change = {v["name"]: v["value"] for v in enums["OrthancPluginChangeType"]["values"]}
    assert change["OrthancPluginChangeType_StableStudy"] == 9
    classes = {c["name"] for c in model["classes"]}
    assert {"OrthancPluginRestOutput", "OrthancPluginDicomInstance", "OrthancPluginImage"} <= classes
    callbacks = {c["name"]: c for c in model["callbacks"]}
    assert callbacks["OrthancPluginRestCallback"]["args"] == [
        "OrthancPluginRestOutput *", "const char *", "const OrthancPluginHttpRequest *"]


@pytest.mark.parametrize("enum,constant,expected", [
    ("OrthancPluginErrorCode", "OrthancPluginErrorCode_SQLiteNotOpened", "SQLITE_NOT_OPENED"),
    ("OrthancPluginErrorCode", "OrthancPluginErrorCode_NoCFindHandler", "NO_CFIND_HANDLER"),
    ("OrthancPluginErrorCode", "OrthancPluginErrorCode_ReferencedSOPClassNotSupported",
     "REFERENCED_SOPCLASS_NOT_SUPPORTED"),
    ("OrthancPluginDicomToJsonFormat", "OrthancPluginDicomToJsonFormat_Full", "FULL"),
    ("OrthancPluginChangeType", "OrthancPluginChangeType_StableStudy", "STABLE_STUDY"),
])
def test_enum_member_names(enum, constant, expected):
    assert generate.enum_member_name(enum, constant) == expected


def test_every_official_name_exists(api_tree, reference):
    funcs, classes = _module_names(api_tree)
    missing = [f for f in reference["functions"] if f not in funcs]
    assert missing == []
    for cls, info in reference["classes"].items():
        assert cls in classes, cls
        methods = info.get("methods", info)
        assert [m for m in methods if m not in classes[cls]] == [], cls
    for enum, values in reference["enumerations"].items():
        assert enum in classes, enum
        for name, value in values.items():
            assert classes[enum].get(name) == value, (enum, name)
    assert "OrthancException" in generate.python_module(sdkmodel.parse())


def test_coverage_bar(model):
    cov = generate.coverage(model)
    assert cov["functions"] == len(model["functions"])
    assert cov["percent"] >= 95.0
    assert cov["totals"].get("unsupported", 0) == 0
    for name, status, detail in cov["rows"]:
        assert status in ("generated", "hand-written", "internal", "not applicable", "destructor")
        assert detail, name
    # every hand-written/not-applicable entry names a real SDK function
    names = {f["name"] for f in model["functions"]}
    for table in (not_generated.HANDWRITTEN, not_generated.NOT_APPLICABLE, not_generated.INTERNAL,
                  not_generated.IMPLICIT_BUFFER_SIZES):
        assert set(table) <= names


def test_generated_wrapper_shapes(model):
    text = generate.python_module(model)
    # memory buffer -> bytes, freed; error code checked
    assert "def RestApiGet(uri):" in text
    assert ("_check(_lib.OrthancPluginRestApiGet((_S.ctx or _ctx()), _t, (uri.encode('utf-8', 'surrogateescape') "
            "if _type(uri) is str and '\\0' not in uri else _str(uri, 'uri'))), _t)") in text
    # buffer + size pair -> one argument; method of the receiver's class
    assert ("_lib.OrthancPluginSendMultipartItem((_S.ctx or _ctx()), (self._ptr or self._p()), _answer_p, _answer_n)"
            in text)
    assert "_answer_p, _answer_n = _buf(answer, 'answer')" in text
    # char* result -> str, freed
    assert "return _take_string(_lib.OrthancPluginLookupPatient(" in text
    # object result -> owned, with its destructor
    assert "return _own(Image, _lib.OrthancPluginCreateImage(" in text and "_lib.OrthancPluginFreeImage)" in text
    # raw image buffer checked against its implicit size
    assert "_rawbuf(buffer, 'buffer', pitch * height)" in text


def test_generated_module_compiles_and_never_calls_shadowed_builtins(model):
    text = generate.python_module(model)
    tree = ast.parse(text)
    params = {a.arg for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for a in node.args.args}
    assert "type" in params  # e.g. SetMetricsValue(name, value, type)
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not (calls & params), calls & params


def test_cdef_is_accepted_by_cffi(model):
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(generate.cdef(model))
    assert ffi.sizeof("OrthancPluginMemoryBuffer") >= 12
    assert int(ffi.cast("OrthancPluginChangeType", 9)) == 9


def test_missing_header_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sdkmodel, "DEFAULT_HEADER", str(tmp_path / "nope.h"))
    monkeypatch.setenv("ORTHANC_SDK_INCLUDE", str(tmp_path))
    with pytest.raises(sdkmodel.HeaderNotFound, match="orthanc-dev"):
        sdkmodel.find_header()
