"""``pythanc`` command line: run, plugin-path, coverage."""

import argparse
import ast
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys

from . import __version__, plugin_path
from .testing import ORTHANC, make_config, orthanc_version


def cmd_plugin_path(args):
    path = plugin_path()
    if not os.path.isfile(path):
        sys.stderr.write("pythanc: the plugin library is missing (%s): reinstall pythanc\n" % path)
        return 1
    print(path)
    return 0


def cmd_coverage(args):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "_generated", "coverage.json")) as f:
        cov = json.load(f)
    if args.json:
        json.dump(cov, sys.stdout, indent=1)
        print()
        return 0
    width = max(len(r[0]) for r in cov["rows"])
    for name, status, detail in cov["rows"]:
        print("%-*s  %-14s  %s" % (width, name, status, detail))
    print()
    print("SDK %s: %d functions; %s" % (".".join(map(str, cov["sdk_version"])), cov["functions"],
                                          ", ".join("%s %d" % kv for kv in sorted(cov["totals"].items()))))
    print("reachable from Python: %d of %d (%.1f%%)" % (cov["reachable"], cov["functions"], cov["percent"]))
    return 0


def _doctor_checks(script=None, config_path=None):
    """Yield ``(ok: bool, message, fix)`` for each check of an installation."""
    here = os.path.dirname(os.path.abspath(__file__))
    # Orthanc
    version = None
    if not os.path.isfile(ORTHANC):
        yield False, "Orthanc is not installed (%s not found)" % ORTHANC, "apt-get install orthanc"
    else:
        version = orthanc_version()
        if version:
            yield True, "Orthanc %s at %s" % (".".join(map(str, version)), ORTHANC), None
        else:
            yield False, "Orthanc (%s) does not run or print its version" % ORTHANC, \
                "reinstall Orthanc: apt-get install --reinstall orthanc"
    # plugin library and the SDK it was built for
    lib = plugin_path()
    if not os.path.isfile(lib):
        yield False, "the plugin library is missing (%s)" % lib, "reinstall pythanc: pip install --force-reinstall ."
    else:
        yield True, "plugin library %s" % lib, None
        try:
            ldd = subprocess.run(["ldd", lib], capture_output=True, text=True, timeout=30).stdout
            missing = [l.strip() for l in ldd.splitlines() if "not found" in l]
        except (OSError, subprocess.SubprocessError):
            missing = []
        if missing:
            yield False, "the plugin library cannot find: %s" % ", ".join(missing), \
                "install the shared libpython it was built with (Debian: libpython3-dev), or rebuild pythanc"
        else:
            yield True, "shared libpython found for the plugin", None
    try:
        with open(os.path.join(here, "_generated", "codemodel.json")) as f:
            sdk = tuple(json.load(f)["sdk_version"])
        if version and version < sdk:
            yield False, "Orthanc %s is older than the SDK pythanc was built for (%s): Orthanc will refuse the plugin" % (
                ".".join(map(str, version)), ".".join(map(str, sdk))), \
                "rebuild pythanc against this Orthanc's orthanc-dev header, or upgrade Orthanc"
        elif version and version > sdk:
            yield True, "built for SDK %s, older than Orthanc %s: it works, but the SDK functions newer than %s " \
                "are not reachable; rebuild pythanc against this Orthanc's orthanc-dev to reach them" % (
                    ".".join(map(str, sdk)), ".".join(map(str, version)), ".".join(map(str, sdk))), None
        else:
            yield True, "built for SDK %s, which matches Orthanc %s" % (
                ".".join(map(str, sdk)), ".".join(map(str, version)) if version else "?"), None
    except (OSError, ValueError, KeyError):
        yield False, "the generated code model is missing", "reinstall pythanc"
    # the script's imports, in the environment the plugin will use
    if script:
        section = {}
        if config_path:
            with open(config_path) as f:
                section = json.load(f).get("Python", {})
        paths = [os.path.dirname(os.path.abspath(script))]
        venv = section.get("VirtualEnv")
        if venv:
            paths += glob.glob(os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages"))
        try:
            with open(script) as f:
                tree = ast.parse(f.read(), script)
        except (OSError, SyntaxError) as e:
            yield False, "the script %s cannot be read or compiled: %s" % (script, e), "fix the script"
            return
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        saved = list(sys.path)
        sys.path[:0] = paths
        try:
            for name in sorted(names - {"orthanc"}):
                try:
                    found = importlib.util.find_spec(name) is not None
                except (ImportError, ValueError):
                    found = False
                if found:
                    yield True, "the script's import %r resolves" % name, None
                else:
                    yield False, "the script imports %r, which is not installed in %s%s" % (
                        name, sys.prefix, " nor in the virtualenv %s" % venv if venv else ""), \
                        "%s -m pip install <the package that provides %s>" % (sys.executable, name)
        finally:
            sys.path[:] = saved


def cmd_doctor(args):
    problems = 0
    for ok, message, fix in _doctor_checks(args.script, args.config):
        if ok:
            print("ok:      %s" % message)
        else:
            problems += 1
            print("PROBLEM: %s\n         fix: %s" % (message, fix))
    print("%d problem(s) found" % problems)
    return 1 if problems else 0


def cmd_run(args):
    storage = os.path.abspath(args.storage)
    os.makedirs(storage, exist_ok=True)
    extra = {}
    if args.config:
        with open(args.config) as f:
            extra = json.load(f)
    config = make_config(storage, args.http_port, args.dicom_port, script=args.script, extra=extra)
    path = os.path.join(storage, "pythanc-orthanc.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    print("pythanc: starting Orthanc (%s) with %s: http://localhost:%d, DICOM port %d, storage %s"
          % (ORTHANC, args.script, args.http_port, args.dicom_port, storage), flush=True)
    argv = [ORTHANC, path] + (["--verbose"] if args.verbose else [])
    os.execv(ORTHANC, argv)  # Orthanc replaces this process: Ctrl-C stops it cleanly


def main(argv=None):
    p = argparse.ArgumentParser(prog="pythanc", description="Orthanc plugins written in Python")
    p.add_argument("--version", action="version", version="pythanc " + __version__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("run", help="start Orthanc with pythanc and a script")
    s.add_argument("script")
    s.add_argument("--http-port", type=int, default=8042)
    s.add_argument("--dicom-port", type=int, default=4242)
    s.add_argument("--storage", default="orthanc-storage")
    s.add_argument("--config", help="a JSON file of further Orthanc options")
    s.add_argument("--verbose", action="store_true")
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("plugin-path", help="print the path of the plugin library")
    s.set_defaults(func=cmd_plugin_path)
    s = sub.add_parser("doctor", help="say what is wrong with this installation (and a script)")
    s.add_argument("--script", help="a script whose imports to check")
    s.add_argument("--config", help="the Orthanc configuration (for Python.VirtualEnv)")
    s.set_defaults(func=cmd_doctor)
    s = sub.add_parser("coverage", help="print how each SDK function is reached from Python")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_coverage)
    args = p.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
