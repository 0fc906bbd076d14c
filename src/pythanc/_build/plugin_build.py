"""Build the plugin library with cffi's embedding mode.

Reads the SDK header (``sdkmodel``), generates the cdef and the Python layer (``generate``), and
compiles cffi's glue followed by the hand-written C (``C_SOURCES``: ``bootstrap.c``, then
``rest_dispatch.c``, as one translation unit) into one shared library that Orthanc loads.  Used by
``setup.py``; can also be run by hand: ``python -m pythanc._build.plugin_build OUTDIR``.
"""

import json
import os
import sys
import sysconfig

from . import generate, sdkmodel

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = "_pythanc_cffi"
LIBRARY = "libpythanc.so"
# The hand-written C, in this order (each file's header comment says what it owns).
C_SOURCES = ("bootstrap.c", "rest_dispatch.c")


# The REST entry point: C (rest_dispatch.c) packs the request, Python (pythanc/callbacks/rest.py)
# handles it.
REST_DECLARATIONS = """
unsigned pythanc_start_rest_threads(unsigned);
OrthancPluginRestCallback pythanc_rest_entry_for(int32_t route);
int pythanc_rest_enter(void);
void pythanc_rest_leave(void);
int pythanc_rest_add_route(const char* regex, int32_t route, int chunked, OrthancPluginRestCallback get,
    OrthancPluginServerChunkedRequestReaderFactory post, OrthancPluginRestCallback del,
    OrthancPluginServerChunkedRequestReaderFactory put, uint32_t timeout_ms);
extern "Python" int64_t pythanc_rest_packed(OrthancPluginRestOutput*, int32_t route, int32_t method,
    uint32_t groups, uint32_t get, uint32_t headers, const char* strings, size_t size,
    const char* body, uint32_t bodySize, const char* payload, uint32_t payloadSize, char* answer,
    uint32_t answerCapacity);
"""


class BuildError(RuntimeError):
    pass


def libpython():
    """``(soname, libdir)`` of the shared libpython of this interpreter, or ``BuildError``."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    names = [sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")]
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for name in names:
        if not name or not name.endswith((".so",)) and ".so." not in name:
            continue
        for d in (libdir, os.path.join(libdir, multiarch), "/usr/lib/" + multiarch):
            if d and os.path.exists(os.path.join(d, name)):
                return name, d
    raise BuildError(
        "pythanc needs a CPython built with a shared libpython, and %s (%s) has none "
        "(Py_ENABLE_SHARED=%s, LDLIBRARY=%s). Fix: use Debian's python3 with 'apt-get install "
        "libpython3-dev', or rebuild your Python with --enable-shared (pyenv: "
        "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.11)."
        % (sys.executable, sys.version.split()[0], sysconfig.get_config_var("Py_ENABLE_SHARED"),
           sysconfig.get_config_var("LDLIBRARY")))


def make_ffi(model, version, python_executable):
    import cffi
    soname, libdir = libpython()
    ffi = cffi.FFI()
    ffi.embedding_api("")
    ffi.cdef(generate.cdef(model) + '\nextern "Python" int32_t pythanc_initialize(OrthancPluginContext*);\n'
             'extern "Python" void pythanc_finalize(void);\n'
             + REST_DECLARATIONS)
    # The functions above marked "extern Python" are Python, called from the hand-written C.
    ffi.embedding_init_code("from pythanc.lifecycle import plugin\n")
    hand_written_c = ""
    for name in C_SOURCES:
        with open(os.path.join(HERE, name)) as f:
            hand_written_c += '#line 1 "%s"\n' % name + f.read() + "\n"
    # The parsed header itself, by its path, for cffi's glue and the hand-written C after it (which
    # include no copy of their own): the C compiled is the C the cdef describes, wherever it is.
    source = ("#include %s\n" % json.dumps(os.path.abspath(model["header"]))
              + "#include <Python.h>\n"
              + generate.extern_forward_decls(model) + "\n"
              "static int32_t pythanc_initialize(OrthancPluginContext*);\n"
              "static int64_t pythanc_rest_packed(OrthancPluginRestOutput*, int32_t, int32_t, uint32_t, "
              "uint32_t, uint32_t, const char*, size_t, const char*, uint32_t, const char*, uint32_t, char*, uint32_t);\n"
              "static void pythanc_finalize(void);\n"
              + hand_written_c)
    ffi.set_source(MODULE, source,
                   include_dirs=[sysconfig.get_paths()["include"]],
                   define_macros=[("PYTHANC_VERSION", json.dumps(version)),
                                  ("PYTHANC_LIBPYTHON", json.dumps(soname)),
                                  ("PYTHANC_PYTHON_EXECUTABLE", json.dumps(python_executable))],
                   libraries=["dl"],
                   library_dirs=[libdir],
                   extra_link_args=["-Wl,-rpath," + libdir])
    return ffi


def build(outdir, version, python_executable=None, header=None, tmpdir=None):
    """Generate everything into ``outdir`` (a ``pythanc`` package folder). Returns the library path."""
    header = header or sdkmodel.find_header()
    model = sdkmodel.parse(header)
    gen = os.path.join(outdir, "_generated")
    os.makedirs(gen, exist_ok=True)
    with open(os.path.join(gen, "__init__.py"), "w") as f:
        f.write('"""Files generated at build time from the installed Orthanc SDK header."""\n')
    with open(os.path.join(gen, "api.py"), "w") as f:
        f.write(generate.python_module(model))
    with open(os.path.join(HERE, "not_generated_stubs.pyi")) as f:
        hand_stubs = f.read()
    with open(os.path.join(gen, "orthanc.pyi"), "w") as f:
        f.write(generate.stubs(model, hand_stubs))
    with open(os.path.join(gen, "codemodel.json"), "w") as f:
        json.dump(model, f, indent=1)
    with open(os.path.join(gen, "coverage.json"), "w") as f:
        json.dump(generate.coverage(model), f, indent=1)
    ffi = make_ffi(model, version, python_executable or sys.executable)
    tmpdir = tmpdir or os.path.join(outdir, "_cffi_build")
    os.makedirs(tmpdir, exist_ok=True)
    os.makedirs(os.path.join(outdir, "lib"), exist_ok=True)
    target = os.path.join(os.path.abspath(outdir), "lib", LIBRARY)
    built = ffi.compile(tmpdir=tmpdir, target=target, verbose=bool(os.environ.get("PYTHANC_VERBOSE_BUILD")))
    return built


if __name__ == "__main__":
    print(build(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "0.0.0"))
