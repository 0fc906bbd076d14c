"""Jobs written in Python: ``orthanc.CreateJob``, ``Job.SubmitJob`` and
``orthanc.RegisterJobsUnserializer`` (the first unserializer that returns a job wins).

Jobs live in Orthanc's jobs engine, so their Python state (kept here under integer handles, given
to Orthanc as opaque pointers) outlives a registry reset; it is dropped at finalisation.
"""

import collections
import json
import threading

from .._generated import api
from ..core.context import ffi, lib, NULL
from ..core.convert import (text, _ctx, _str, _int, _own, _take_string, release_ownership, handle_pointer,
                            pointer_handle, buffer_into)
from ..core.log import log_error, log_exception
from .registry import (STORE, ERR_SUCCESS, ERR_PLUGIN, c_entry, new_handle, append, sdk_entry,
                       on_shutdown, sdk_has)

__all__ = ['CreateJob', 'Job_SubmitJob', 'RegisterJobsUnserializer']

JOB_SUCCESS, JOB_FAILURE, JOB_CONTINUE = 1, 2, 3            # OrthancPluginJobStepStatus
# OrthancPluginCreateJob2 (SDK 1.11.3+) where the SDK has it, for the jobs that are not saved (see
# CreateJob); the script sees no difference
_CREATE_JOB2 = sdk_has("OrthancPluginCreateJob2")
_JOBS = {}   # handle -> _JobState; jobs live in Orthanc's engine, so they outlive a registry reset


@on_shutdown
def _drop_jobs():
    """At finalisation: drop the Python objects that Orthanc no longer reaches."""
    _JOBS.clear()


class _JobState:
    __slots__ = ("job_type", "step", "progress", "content", "serialized", "stop", "reset", "strings", "lock")

    def keep(self, value):
        """A ``const char*`` for Orthanc, kept alive for a while (Orthanc copies it at once; a few
        recent ones are kept in case two threads ask at the same time)."""
        s = ffi.new("char[]", value.encode("utf-8", "surrogateescape").replace(b"\0", b""))
        with self.lock:
            self.strings.append(s)
        return s


def CreateJob(job_type, step, progress=None, content=None, serialized=None, stop=None, reset=None):
    """(pythanc) Create a job for Orthanc's jobs engine; submit it with ``job.SubmitJob(priority)``.

    * ``step() -> orthanc.JobStepStatus``: ``SUCCESS`` (1), ``FAILURE`` (2) or ``CONTINUE`` (3, call
      again).  It runs on a thread of the jobs engine.  An exception or another value fails the job.
    * ``progress() -> float`` between 0 and 1 (default: 0 until done).
    * ``content() -> dict`` (or a JSON ``str``): shown in ``/jobs/<id>`` as ``Content``.
    * ``serialized() -> dict`` (or JSON ``str``) or ``None``: what is saved to restart the job after
      Orthanc restarts (see :func:`RegisterJobsUnserializer`); without it the job is not saved.
    * ``stop(reason: orthanc.JobStopReason)``: the job leaves the running state (paused, canceled,
      finished...); ``reset()``: a stopped job is started again.

    The returned ``orthanc.Job`` is owned by Python until ``SubmitJob`` hands it over to Orthanc
    (the object is then invalid); a job that is never submitted is freed with the object.

    Where the SDK has it (1.11.3+), a job without ``serialized`` is made by
    ``OrthancPluginCreateJob2``; a job with one by the deprecated ``OrthancPluginCreateJob`` (for
    which Orthanc logs a warning), because Orthanc (up to 1.13.0 at least) never saves a job made
    by the former."""
    if not callable(step):
        raise TypeError("Expected a callback function for the step of the job")
    for name, fn in (("progress", progress), ("content", content), ("serialized", serialized),
                     ("stop", stop), ("reset", reset)):
        if fn is not None and not callable(fn):
            raise TypeError("%s must be a callback function or None" % name)
    state = _JobState()
    state.job_type = job_type
    state.step, state.progress, state.content = step, progress, content
    state.serialized, state.stop, state.reset = serialized, stop, reset
    state.strings = collections.deque(maxlen=8)
    state.lock = threading.Lock()
    c_type = _str(job_type, "job_type")
    h = new_handle()
    _JOBS[h] = state
    if _CREATE_JOB2 and serialized is None:
        # SDK 1.11.3+: the content is written into a memory buffer.  Not for a job that is saved:
        # Orthanc (up to 1.13.0 at least) asks a job made by OrthancPluginCreateJob2 for its
        # serialised form through its *content* callback, and the job is then never saved.
        p = lib.OrthancPluginCreateJob2(
            _ctx(), handle_pointer(h), lib.pythanc_OrthancPluginJobFinalize, c_type,
            lib.pythanc_OrthancPluginJobGetProgress, lib.pythanc_OrthancPluginJobGetContent2,
            lib.pythanc_OrthancPluginJobGetSerialized2, lib.pythanc_OrthancPluginJobStep,
            lib.pythanc_OrthancPluginJobStop, lib.pythanc_OrthancPluginJobReset)
    else:              # the deprecated form: Orthanc copies the strings that the callbacks return
        p = lib.OrthancPluginCreateJob(
            _ctx(), handle_pointer(h), lib.pythanc_OrthancPluginJobFinalize, c_type,
            lib.pythanc_OrthancPluginJobGetProgress, lib.pythanc_OrthancPluginJobGetContent,
            lib.pythanc_OrthancPluginJobGetSerialized, lib.pythanc_OrthancPluginJobStep,
            lib.pythanc_OrthancPluginJobStop, lib.pythanc_OrthancPluginJobReset)
    if p == NULL:
        _JOBS.pop(h, None)
    return _own(api.Job, p, lib.OrthancPluginFreeJob)


def Job_SubmitJob(job, priority):
    """Submit the job to Orthanc's jobs engine; returns its ID.  Orthanc takes the job over (it
    calls the job's finalize callback when done): this ``orthanc.Job`` becomes invalid."""
    priority = _int(priority, "priority", -2**31, 2**31 - 1)
    p = release_ownership(job, api.Job, "job")
    return _take_string(lib.OrthancPluginSubmitJob(_ctx(), p, priority))


def _job(p):
    state = _JOBS.get(pointer_handle(p))
    if state is None:
        raise RuntimeError("unknown job (already finalized?)")
    return state


def _json_text(value, what):
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError("The Python job %s callback must return a dict (JSON object) or a JSON str: %s"
                        % (what, e)) from None


@ffi.def_extern()
def pythanc_OrthancPluginJobFinalize(job):
    try:
        _JOBS.pop(pointer_handle(job), None)
    except BaseException:
        log_exception("Python job finalize")


@c_entry("Python job progress callback", 0.0)
def pythanc_OrthancPluginJobGetProgress(job):
    state = _job(job)
    if state.progress is None:
        return 0.0
    r = state.progress()
    if isinstance(r, bool) or not isinstance(r, (int, float)):
        log_error("The Python job progress callback has not returned a float (it returned %s)"
                  % type(r).__name__)
        return 0.0
    return min(1.0, max(0.0, float(r)))


@ffi.def_extern()
def pythanc_OrthancPluginJobGetContent(job):
    try:
        return _job(job).keep(_content(job))
    except BaseException:
        log_exception("Python job content callback")
        try:
            return _job(job).keep("{}")
        except BaseException:
            return NULL


@c_entry("Python job serialized callback", NULL)
def pythanc_OrthancPluginJobGetSerialized(job):
    text_ = _serialized(job)
    return NULL if text_ is None else _job(job).keep(text_)


def _content(job):
    state = _job(job)
    value = {} if state.content is None else state.content()
    return _json_text({} if value is None else value, "content")


def _serialized(job):
    """The job's serialised form (a JSON ``str``), or ``None`` if it is not saved."""
    state = _job(job)
    if state.serialized is None:
        return None
    value = state.serialized()
    return None if value is None else _json_text(value, "serialized")


def _utf8(value):
    return value.encode("utf-8", "surrogateescape").replace(b"\0", b"")


@c_entry("Python job content callback", ERR_PLUGIN)
def pythanc_OrthancPluginJobGetContent2(target, job):
    try:
        value = _content(job)
    except BaseException:   # as with OrthancPluginCreateJob: logged, and the content is {}
        log_exception("Python job content callback")
        value = "{}"
    buffer_into(target, _utf8(value), "content")
    return ERR_SUCCESS


@c_entry("Python job serialized callback", -1)
def pythanc_OrthancPluginJobGetSerialized2(target, job):
    value = _serialized(job)
    if value is None:
        return 0            # not saved
    buffer_into(target, _utf8(value), "serialized")
    return 1


@c_entry("Python job step callback", JOB_FAILURE)
def pythanc_OrthancPluginJobStep(job):
    state = _job(job)
    r = state.step()
    if isinstance(r, bool) or not isinstance(r, int) or r not in (JOB_SUCCESS, JOB_FAILURE, JOB_CONTINUE):
        log_error("The Python job step callback (job type %s) has not returned an orthanc.JobStepStatus "
                  "(SUCCESS, FAILURE or CONTINUE); it returned %r: the job fails"
                  % (state.job_type, r if isinstance(r, int) else type(r).__name__))
        return JOB_FAILURE
    return int(r)


@c_entry("Python job stop callback", ERR_PLUGIN)
def pythanc_OrthancPluginJobStop(job, reason):
    state = _job(job)
    if state.stop is not None:
        state.stop(int(reason))
    return ERR_SUCCESS


@c_entry("Python job reset callback", ERR_PLUGIN)
def pythanc_OrthancPluginJobReset(job):
    state = _job(job)
    if state.reset is not None:
        state.reset()
    return ERR_SUCCESS


def RegisterJobsUnserializer(callback):
    """(pythanc) Register ``callback(job_type: str, serialized: str) -> orthanc.Job or None``, called
    when Orthanc starts, for each saved job (``serialized`` is the JSON that the job's
    ``serialized()`` returned).  Return a job made with :func:`CreateJob` (not submitted: Orthanc
    takes it over), or ``None`` if this callback does not know the job type.  Register it while the
    script is imported.  Several unserializers are tried in registration order; the first job
    returned wins.  An exception is logged and counts as ``None``."""
    append("unserializers", callback, "Python jobs unserializer", "RegisterJobsUnserializer")


@c_entry("Python jobs unserializer", NULL)
def pythanc_OrthancPluginJobsUnserializer(job_type, serialized):
    t, s = text(job_type), text(serialized)
    for f in list(STORE.lists["unserializers"]):
        try:
            job = f(t, s)
            if job is None:
                continue
            return release_ownership(job, api.Job, "the result of the jobs unserializer")
        except BaseException:
            log_exception("Python jobs unserializer")
    return NULL


sdk_entry("unserializers", "OrthancPluginRegisterJobsUnserializer", "pythanc_OrthancPluginJobsUnserializer",
          at_start_only="Orthanc calls jobs unserializers only when it starts, to restore the jobs it saved")
