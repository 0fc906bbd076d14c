"""What every callback family shares: the C-entry decorator and the registrations of this run.

Each family module (``rest``, ``changes``, ``filters``, ...) defines the ``orthanc.Register*``
functions of its SDK callbacks and their C entry points.  They all follow one pattern:

* a ``Register*`` function checks its arguments and stores the user's callables in :data:`STORE`,
  under the family's *kind* (``"find"``, ``"storage"``...): :func:`append` for the kinds that may be
  registered several times (called in registration order), :func:`set_once` for those Orthanc
  accepts once;
* the first registration of a kind in an Orthanc run registers the family's C entry point(s) with
  Orthanc, as the family declares, as data, with ``sdk_entry(kind, "OrthancPluginRegisterX",
  "pythanc_<entry>", ...)`` (or, where more must happen, with ``@sdk_registration(kind)``); every
  later one is pure Python (a list in :data:`STORE`), safe at any time and from any thread;
* each C entry point is a function named ``pythanc_<SDK callback type>`` made by ``@c_entry`` (or,
  where its error handling is its own, ``@ffi.def_extern``): it catches everything, logs the
  traceback and answers the SDK's error for that callback, so nothing escapes into Orthanc.

Registrations after start-up (issue 16; README, "Registering from inside a callback"): once the
scripts are loaded (:func:`mark_started`, called by ``lifecycle.plugin``), Orthanc is running
callbacks, and a C registration may meet the locks under which Orthanc calls them.  A kind whose
C registration Orthanc supports only while the plugin initialises (a list read without a lock, a
handler chosen when a server starts, a lock held while its callbacks run) declares the reason with
``@sdk_registration(kind, at_start_only=...)``: its first registration after start-up raises a
``RuntimeError`` that names the function and says why.  A C registration is never made with
:data:`STORE`'s lock held (callbacks take it, and a C registration can wait for them).

:func:`reset` forgets every registration (at each plugin initialisation, so after /tools/reset);
:func:`take_owned` and :func:`put_back` serve ``Python.Reload``.  A family with state of its own
(threads, handle tables) declares it with :func:`on_reset` / :func:`on_shutdown`.
"""

import collections
import functools
import itertools
import threading

from ..core.context import ffi, lib, ctx
from ..core.errors import (ERROR_SUCCESS as ERR_SUCCESS, ERROR_PLUGIN as ERR_PLUGIN,  # noqa: F401
                           ERROR_NOT_IMPLEMENTED as ERR_NOT_IMPLEMENTED,
                           ERROR_UNKNOWN_RESOURCE as ERR_UNKNOWN_RESOURCE,
                           ERROR_BAD_SEQUENCE_OF_CALLS as ERR_BAD_SEQUENCE_OF_CALLS)
from ..core.convert import _check
from ..core.log import log_exception


def c_entry(what, error):
    """Decorator that makes ``fn`` the C entry point of its name (``@ffi.def_extern``): whatever it
    raises is logged with its traceback as an error of ``what`` (in Orthanc's log), and ``error``
    (a number, or ``NULL`` for a pointer) is returned to Orthanc, so that nothing escapes into C.  A callback type of a newer SDK than the installed
    header's has no C entry point in the library: the function then stays plain Python, never
    called by Orthanc."""
    def decorate(fn):
        if not sdk_has(fn.__name__):
            return fn   # a callback type of a newer SDK than the installed one: no C entry point
        @functools.wraps(fn)
        def entry(*args):
            try:
                return fn(*args)
            except BaseException:
                log_exception(what)
                return error
        return ffi.def_extern(error=error)(entry)   # cffi's error value, should even the logging fail
    return decorate


def check_callable(fn, description):
    if not callable(fn):
        raise TypeError("Expected a callback function to register one %s, not %s"
                        % (description, type(fn).__name__))


_handles = itertools.count(1)   # process-wide, never reused (0 would be NULL)


def new_handle():
    """A new integer handle for an opaque pointer given to Orthanc (see ``convert.handle_pointer``)."""
    return next(_handles)


class _Store:
    """Everything the scripts of this Orthanc run registered."""

    def __init__(self):
        self.lock = threading.RLock()
        self.lists = collections.defaultdict(list)   # kind -> [callable or tuple], in registration order
        self.once = {}                               # kind -> the one registration of that kind
        self.registered = set()                      # kinds whose C entry point Orthanc has, this run
        self.registering = set()                     # kinds whose C registration a thread is making
        self.version = 0                             # changes at every change of `lists` or `once`
        self.started = False                         # the scripts are loaded: Orthanc runs callbacks
        self.run = 0                                 # changes at every reset (a new Orthanc run)

    def changed(self):
        self.version += 1


STORE = _Store()
_SDK = {}             # kind -> function registering that kind's C entry point with Orthanc
_AT_START_ONLY = {}   # kind -> why Orthanc accepts its C registration only while the plugin starts
_EXCLUDES = {}        # kind -> {other kind: (its Register* function, why)}: Orthanc accepts one of them per run
_RESET_HOOKS = []
_SHUTDOWN_HOOKS = []


def sdk_registration(kind, at_start_only=None):
    """Decorator: ``fn()`` registers the C entry point of ``kind`` with Orthanc (returns an SDK
    error code, or ``None`` for the SDK calls that return void).  Called once per Orthanc run, at
    the first registration of that kind.

    ``at_start_only``: ``None`` if Orthanc accepts this C registration at any time (it reads the
    registered callbacks under a lock at each use and takes no lock this registration needs while
    they run); otherwise the reason why it does not, completing "Orthanc accepts the first one only
    then, because ...": the first registration of the kind after start-up then raises."""
    def decorate(fn):
        _SDK[kind] = fn
        if at_start_only is not None:
            _AT_START_ONLY[kind] = at_start_only
        return fn
    return decorate


def sdk_entry(kind, register, *entries, at_start_only=None):
    """Declare, as data, how ``kind`` is registered with Orthanc: ``lib.<register>(context,
    lib.<entry>, ...)``, with the C entry points named in ``entries`` in the SDK's order;
    ``at_start_only`` as for :func:`sdk_registration`."""
    sdk_registration(kind, at_start_only)(
        lambda: getattr(lib, register)(ctx(), *[getattr(lib, e) for e in entries]))


def exclusive(reason, *kinds):
    """Declare, as data, that Orthanc accepts the C registration of only one of ``kinds`` (pairs
    ``(kind, "RegisterX")``, or ``(kind, ("RegisterX", "RegisterY"))`` for a kind two functions
    register) per run (versions 1 and 2 of the same SDK handler): once one is
    registered with Orthanc, the first registration of another raises ``RuntimeError`` naming both
    functions and ``reason``."""
    for kind, function in kinds:
        for other, other_function in kinds:
            if other != kind:
                _EXCLUDES.setdefault(kind, {})[other] = (other_function, reason)


def sdk_has(name):
    """True if the plugin library has ``name``: an SDK function, or the C entry point
    ``pythanc_<callback type>`` that the build declares only when the installed header defines that
    type (a newer SDK's, such as ``OrthancPluginFindCallback2``).  A family module defines the
    Python side of such an entry point only then."""
    return lib is not None and hasattr(lib, name)


def on_reset(fn):
    """Decorator: ``fn()`` runs at every :func:`reset` (a family's own state)."""
    _RESET_HOOKS.append(fn)
    return fn


def on_shutdown(fn):
    """Decorator: ``fn()`` runs at :func:`shutdown`, before the reset (threads to stop...)."""
    _SHUTDOWN_HOOKS.append(fn)
    return fn


def mark_started():
    """The scripts are loaded (end of the plugin's initialisation): from now on, Orthanc may run
    callbacks while a script registers one."""
    with STORE.lock:
        STORE.started = True


def started():
    """True once the scripts of this run are loaded (see :func:`mark_started`)."""
    return STORE.started


def refuse_after_start(function, reason):
    """For the ``Register*`` functions that need a C registration each time: ``RuntimeError`` if the
    scripts are already loaded.  ``reason`` completes "... not later: ..."."""
    if STORE.started:
        raise RuntimeError("orthanc.%s() can be called only while the scripts are loaded (at import), not "
                           "later from a callback or a thread: %s" % (function, reason))


def _late_error(kind, function, once):
    return RuntimeError(
        "orthanc.%s() was called after the scripts were loaded (from a callback or a thread), and "
        "nothing of its kind was registered while they were loaded: Orthanc accepts the first one only "
        "then, because %s. %s" % (function or kind, _AT_START_ONLY[kind],
                                  "Register it when the script is imported." if once else
                                  "Register one when the script is imported; further ones then work at "
                                  "any time, from anywhere."))


def _claim_sdk(kind, function, once=False):
    """Under ``STORE.lock``: True if the caller must make the C registration of ``kind`` (then
    :func:`_register_sdk`, without the lock); False if Orthanc has it or another thread is making
    it; ``RuntimeError`` if it is needed and Orthanc no longer accepts it, or if Orthanc has the C
    registration of a kind that excludes it (:func:`exclusive`)."""
    for other, (other_function, reason) in _EXCLUDES.get(kind, {}).items():
        if other in STORE.registered or other in STORE.registering:
            names = (other_function,) if isinstance(other_function, str) else other_function
            raise RuntimeError("orthanc.%s() cannot be used in an Orthanc run where %s was called: %s"
                               % (function or kind, " or ".join("orthanc.%s()" % n for n in names), reason))
    if kind in STORE.registered or kind in STORE.registering:
        return False
    if STORE.started and kind in _AT_START_ONLY:
        raise _late_error(kind, function, once)
    STORE.registering.add(kind)
    return True


def _register_sdk(kind, undo):
    """Register the C entry point of ``kind`` with Orthanc (claimed by :func:`_claim_sdk`), without
    ``STORE.lock``: a C registration may wait for Orthanc's locks, held while callbacks run that
    take ``STORE.lock``.  On failure, ``undo()`` runs under the lock and the error is raised."""
    run = STORE.run
    try:
        code = _SDK[kind]()
        if code:
            _check(code)
    except BaseException:
        with STORE.lock:
            if STORE.run == run:
                STORE.registering.discard(kind)
                undo()
                STORE.changed()
        raise
    with STORE.lock:
        if STORE.run == run:
            STORE.registering.discard(kind)
            STORE.registered.add(kind)


def append(kind, callback, description=None, function=None):
    """A registration of a kind that may be registered several times (called in order).  With a
    ``description``, ``callback`` must be callable.  ``function``: the ``Register*`` function's
    name, for the error raised when the kind cannot be registered any more."""
    if description is not None:
        check_callable(callback, description)
    with STORE.lock:
        claimed = _claim_sdk(kind, function)
        items = STORE.lists[kind]
        items.append(callback)
        STORE.changed()
    if claimed:
        def undo():
            if callback in items:
                items.remove(callback)
        _register_sdk(kind, undo)


def set_once(kind, value, message, function=None):
    """A registration of a kind that Orthanc accepts once per run (C-MOVE, storage commitment...):
    a second one raises ``RuntimeError(message)``."""
    with STORE.lock:
        if STORE.once.get(kind) is not None:
            raise RuntimeError(message)
        claimed = _claim_sdk(kind, function, once=True)
        STORE.once[kind] = value
        STORE.changed()
    if claimed:
        def undo():
            if STORE.once.get(kind) is value:
                STORE.once[kind] = None
        _register_sdk(kind, undo)


def reset():
    """Forget every registration (at initialisation, and so after /tools/reset)."""
    with STORE.lock:
        STORE.lists.clear()
        STORE.once.clear()
        STORE.registered.clear()
        STORE.registering.clear()
        STORE.started = False
        STORE.run += 1
        STORE.changed()
    for fn in _RESET_HOOKS:
        fn()


def shutdown():
    """At finalisation: stop what the families run (the change thread, after ORTHANC_STOPPED was
    delivered), then forget every registration."""
    for fn in _SHUTDOWN_HOOKS:
        fn()
    reset()


# ---- Python.Reload (pythanc/lifecycle/reload.py): the registrations owned by one script ---------

def _owner(item):
    """The module that defined a registration: its first callable's ``__module__``."""
    if isinstance(item, tuple):
        items = item
    elif isinstance(item, dict):
        items = tuple(item.values())
    else:
        items = (item,)
    for x in items:
        if callable(x) and getattr(x, "__module__", None):
            return x.__module__
    return None


def take_owned(name):
    """Take out every registration made by module ``name``; returns them for :func:`put_back`."""
    taken = []
    with STORE.lock:
        for kind, items in STORE.lists.items():
            keep = []
            for i, item in enumerate(items):
                if _owner(item) == name:
                    taken.append((kind, i, item))
                else:
                    keep.append(item)
            items[:] = keep
        for kind, value in list(STORE.once.items()):
            if value is not None and _owner(value) == name:
                taken.append((kind, None, value))
                STORE.once[kind] = None
        STORE.changed()
    return taken


def put_back(taken):
    with STORE.lock:
        for kind, index, item in taken:
            if index is None:
                STORE.once[kind] = item
            else:
                items = STORE.lists[kind]
                items.insert(min(index, len(items)), item)
        STORE.changed()
