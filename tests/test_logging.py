"""Python's ``logging`` in scripts (issue 16, part 4).

Without configuration a script sees Python's own defaults (root level WARNING, no handler,
``basicConfig`` works), and a library's INFO records go nowhere, as under the official plugin; what
Python would write to stderr for want of a handler goes to Orthanc's log instead, at its level.
``"Python": {"LoggingLevel": ...}`` opts in to a handler on the root logger.  The same holds in
worker processes, and /tools/reset stacks nothing.

The expected lines are derived from the Orthanc under test: a line written through
``orthanc.LogWarning`` (``LogError``, ``LogInfo``) in the same run gives the form of the line
(``W1201 12:00:00.000000 PluginsManager.cpp:157] ``) that a record of that level must have.
"""

import json
import re

import pytest


def as_written_by(server, reference, message):
    """A regex for the log line of ``message`` written as the line ending with ``reference`` was
    (same level letter, same prefix form, whatever the time and the thread)."""
    server.wait_for_log(re.escape(reference))
    line = next(x for x in server.log().splitlines() if x.endswith(reference))
    parts = []
    for i, token in enumerate(line[:-len(reference)].split()):
        if i == 0 or ".cpp:" in token or re.fullmatch(r"[\d:.]+", token):
            parts.append(re.sub(r"\d+", r"\\d+", re.escape(token)))
        else:   # the name of the thread that wrote it (Orthanc 1.12+), which may be another one
            parts.append(r"\S+")
    return "^" + r"\s+".join(parts) + r"\s+" + re.escape(message) + "$"


def assert_logged_as(server, reference, message):
    rx = as_written_by(server, reference, message)
    server.wait_for_log("(?m)" + rx)


def assert_not_in_log(server, text):
    assert text not in server.log(), "%r is in the log:\n%s" % (text, server.log()[-3000:])


REFERENCES = '''\
orthanc.LogWarning("REFERENCE WARNING")
orthanc.LogError("REFERENCE ERROR")
orthanc.LogInfo("REFERENCE INFO")
'''

DEFAULTS = '''\
import logging
import orthanc

root = logging.getLogger()
orthanc.LogWarning("ROOT %s %d" % (logging.getLevelName(root.level), len(root.handlers)))
''' + REFERENCES + '''
lib = logging.getLogger("somelib")
lib.info("library info that nobody asked for")
lib.debug("library debug that nobody asked for")
lib.warning("library warning with no handler")
lib.error("library error with no handler")
orthanc.LogWarning("ROOT AFTER THE LIBRARY %d" % len(root.handlers))
logging.info("module-level info with no configuration")
logging.warning("module-level warning with no configuration")
logging.error("module-level error with no configuration")
orthanc.LogWarning("ROOT AT THE END %s %d" % (logging.getLevelName(root.level), len(root.handlers)))
'''


def test_default_is_pythons_logging(orthanc_server, write_script):
    server = orthanc_server(script=write_script(DEFAULTS, "defaults.py"), verbose=True)
    server.wait_for_log(r"ROOT WARNING 0\n")   # Python's defaults: level WARNING, no handler
    # a library's records below WARNING go nowhere (Orthanc runs with --verbose: they would show)
    server.wait_for_log(r"ROOT AT THE END")
    assert_not_in_log(server, "library info that nobody asked for")
    assert_not_in_log(server, "library debug that nobody asked for")
    # what Python writes to stderr for want of a handler (logging.lastResort) is in Orthanc's log
    assert_logged_as(server, "REFERENCE WARNING", "[somelib] library warning with no handler")
    assert_logged_as(server, "REFERENCE ERROR", "[somelib] library error with no handler")
    server.wait_for_log(r"ROOT AFTER THE LIBRARY 0\n")
    # logging.warning() & co. configure the root logger when it has no handler (basicConfig):
    # its handler writes to Orthanc's log, the root level stays WARNING
    assert_logged_as(server, "REFERENCE WARNING", "[root] module-level warning with no configuration")
    assert_logged_as(server, "REFERENCE ERROR", "[root] module-level error with no configuration")
    assert_not_in_log(server, "module-level info with no configuration")
    assert_not_in_log(server, "WARNING:root:")   # nothing on stderr
    server.wait_for_log(r"ROOT AT THE END WARNING 1\n")


BASIC_CONFIG = '''\
import logging
import orthanc

logging.basicConfig(format="CUSTOM %%(levelname)s %%(name)s %%(message)s", stream=open(%r, "a"),
                    level=logging.INFO)
logging.getLogger("somelib").info("configured library info")
logging.warning("configured warning")
for h in logging.getLogger().handlers:
    h.flush()
orthanc.LogWarning("CONFIGURED")
'''


def test_basic_config_of_the_script_works(orthanc_server, write_script, tmp_path):
    out = tmp_path / "script-log.txt"
    server = orthanc_server(script=write_script(BASIC_CONFIG % str(out), "configured.py"), verbose=True)
    server.wait_for_log("CONFIGURED")
    assert out.read_text() == ("CUSTOM INFO somelib configured library info\n"
                               "CUSTOM WARNING root configured warning\n")
    assert_not_in_log(server, "configured library info")
    assert_not_in_log(server, "configured warning")


OPT_IN = '''\
import logging
import orthanc

root = logging.getLogger()
orthanc.LogWarning("ROOT %s %d" % (logging.getLevelName(root.level), len(root.handlers)))
''' + REFERENCES + '''
lib = logging.getLogger("somelib")
lib.debug("opted-in debug")
lib.info("opted-in info")
lib.warning("opted-in warning")
lib.error("opted-in error")
logging.basicConfig(format="IGNORED %(message)s")   # the root logger has a handler: nothing happens
orthanc.LogWarning("ROOT AFTER basicConfig %d" % len(root.handlers))
'''


@pytest.mark.parametrize("level", ["INFO", "debug"])
def test_logging_level_option(orthanc_server, write_script, level):
    server = orthanc_server(script=write_script(OPT_IN, "opt_in.py"), verbose=True,
                            config={"Python": {"LoggingLevel": level}})
    server.wait_for_log(r"ROOT %s 1\n" % level.upper())
    assert_logged_as(server, "REFERENCE INFO", "[somelib] opted-in info")
    assert_logged_as(server, "REFERENCE WARNING", "[somelib] opted-in warning")
    assert_logged_as(server, "REFERENCE ERROR", "[somelib] opted-in error")
    if level == "debug":
        assert_logged_as(server, "REFERENCE INFO", "[somelib] opted-in debug")
    else:
        assert_not_in_log(server, "opted-in debug")
    server.wait_for_log(r"ROOT AFTER basicConfig 1\n")
    assert_not_in_log(server, "IGNORED")


@pytest.mark.parametrize("value", ["LOUD", 20, True])
def test_wrong_logging_level_is_fatal(orthanc_server, write_script, value):
    server = orthanc_server(script=write_script("import orthanc\n", "plain.py"),
                            config={"Python": {"LoggingLevel": value}}, wait=False)
    assert server.wait_exit(60) != 0
    assert ('The configuration option "Python.LoggingLevel" is not one of "DEBUG", "INFO", "WARNING", '
            '"ERROR", "CRITICAL" as expected') in server.log()


RESET = '''\
import logging
import orthanc

logging.warning("imported %s" % orthanc.GenerateUuid())   # with no handler: the implicit basicConfig

def State(output, uri, **request):
    root = logging.getLogger()
    output.AnswerBuffer("%s %d" % (logging.getLevelName(root.level), len(root.handlers)), "text/plain")

def Once(output, uri, **request):
    logging.getLogger("somelib").warning("once " + request["groups"][0])
    output.AnswerBuffer("ok", "text/plain")

orthanc.RegisterRestCallback("/state", State)
orthanc.RegisterRestCallback("/once/(.*)", Once)
'''


def reset(server):
    """POST /tools/reset, and wait until Orthanc has started again."""
    started = server.log().count("Orthanc has started")
    assert server.post("/tools/reset").status_code == 200
    server.wait_for_log("Orthanc has started", count=started + 1, timeout=60)
    server.wait_ready()


def test_reset_stacks_no_handler(orthanc_server, write_script):
    server = orthanc_server(script=write_script(RESET, "reset_logging.py"),
                            config={"Python": {"LoggingLevel": "INFO"}})
    assert server.get("/state").text == "INFO 1"
    for _ in range(2):
        reset(server)
        assert server.get("/state").text == "INFO 1"
    assert server.get("/once/a").text == "ok"
    assert len(re.findall(r"\[somelib\] once a\n", server.log())) == 1
    # the option removed: Python's defaults again after a reset (the script's logging.warning()
    # at import configures the root logger, as in Python)
    server.config["Python"] = {}
    with open(server.config_path, "w") as f:
        json.dump(server.config, f)
    reset(server)
    assert server.get("/state").text == "WARNING 1"
    assert server.get("/once/b").text == "ok"
    assert len(re.findall(r"\[somelib\] once b\n", server.log())) == 1
    reset(server)
    assert server.get("/state").text == "WARNING 1"


WORKER = '''\
import logging
import orthanc

def State(output, uri, **request):
    root = logging.getLogger()
    logging.getLogger("somelib").info("info in a worker")
    logging.getLogger("somelib").warning("warning in a worker")
    output.AnswerBuffer("%s %d" % (logging.getLevelName(root.level), len(root.handlers)), "text/plain")

orthanc.RegisterRestCallback("/state", State, worker=True)
''' + REFERENCES


@pytest.mark.parametrize("level", [None, "INFO"])
def test_worker_processes_log_the_same_way(orthanc_server, write_script, level):
    section = {"Workers": 1}
    if level:
        section["LoggingLevel"] = level
    server = orthanc_server(script=write_script(WORKER, "worker_logging.py"), verbose=True,
                            config={"Python": section})
    r = server.get("/state")
    assert r.status_code == 200, server.log()[-3000:]
    assert r.text == ("INFO 1" if level else "WARNING 0")
    assert_logged_as(server, "REFERENCE WARNING", "[somelib] warning in a worker")
    if level:
        assert_logged_as(server, "REFERENCE INFO", "[somelib] info in a worker")
    else:
        assert_not_in_log(server, "info in a worker")
