"""``pythanc`` command line: run, plugin-path, coverage."""

import argparse
import json
import os
import sys

from . import __version__, plugin_path


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


def cmd_run(args):
    from .testing import ORTHANC, make_config
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
    s = sub.add_parser("coverage", help="print how each SDK function is reached from Python")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_coverage)
    args = p.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
