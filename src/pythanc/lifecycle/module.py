"""The ``orthanc`` module that scripts import: the generated API, completed with the hand-written
functions and methods, the callback registrations and pythanc's own additions.

The generated module (``pythanc/_generated/api.py``) lists in ``_HANDWRITTEN`` the names that its
SDK reaches through hand-written code; each is implemented by one of :data:`IMPLEMENTATIONS`
(``Class_Method`` for a method) and bound here, once per process.
"""

import functools
import types

from .._generated import api
from ..callbacks import (rest, changes, stored, filters, dicom_scp, storage_area, storage_commitment, imaging,
                         chunked_rest, webdav, jobs, metrics, audit)
from ..core import convert
from ..core.log import log_info
from ..sdk import database_values, handwritten
from ..workers import pool

# The modules whose ``__all__`` implement the hand-written names of the generated module.
IMPLEMENTATIONS = (handwritten, rest, changes, stored, filters, dicom_scp, storage_area, storage_commitment,
                   imaging, chunked_rest, webdav, jobs, metrics, audit)

# pythanc's own functions in the module, with no SDK function of their own: the worker pool's
# shared values, and the values shared across replicas through Orthanc's metadata revisions.
ADDITIONS = pool.ADDITIONS + tuple(getattr(database_values, name) for name in database_values.__all__)

_module = []   # the orthanc module, once built


def orthanc_module():
    """The public ``orthanc`` module (built at the first call)."""
    if not _module:
        _module.append(_build())
    return _module[0]


def _build():
    mod = types.ModuleType("orthanc", api.__doc__)
    for name, value in vars(api).items():
        if name.startswith("_") or name == "OrthancObject":
            continue
        if isinstance(value, type):
            value.__module__ = "orthanc"
        mod.__dict__[name] = value
    implementations = {}
    for m in IMPLEMENTATIONS:
        for name in m.__all__:
            implementations[name] = getattr(m, name)
    for name in api._HANDWRITTEN:
        fn = implementations.get(name.replace(".", "_"))
        if fn is None:
            raise RuntimeError("pythanc has no implementation of orthanc.%s, which the SDK has" % name)
        if "." in name:
            cls, method = name.split(".")
            setattr(getattr(api, cls), method, fn)
        else:
            mod.__dict__[name] = fn
    convert.set_error_codes(api.ErrorCode)
    for f in ADDITIONS:
        f.__module__ = "orthanc"
        mod.__dict__[f.__name__] = f
    return mod


_verbose_originals = []   # (class or module dict, name, original function) replaced by set_verbose()


def set_verbose(mod, on):
    """``PythonVerbose``: log each call of an ``orthanc`` function or SDK-object method at INFO
    level (``pythanc: calling orthanc.RestApiGet()``, ``pythanc: calling RestOutput.AnswerBuffer()``),
    as the official plugin logs each SDK call.  The wrappers are installed only when it is on, so
    calls cost nothing more otherwise; an initialisation without it (after /tools/reset with another
    configuration) puts the originals back."""
    for target, name, original in reversed(_verbose_originals):
        if isinstance(target, dict):
            target[name] = original
        else:
            setattr(target, name, original)
    del _verbose_originals[:]
    if not on:
        return

    def wrap(fn, label):
        @functools.wraps(fn)
        def verbose_call(*args, **kwargs):
            log_info("pythanc: calling %s()" % label)
            return fn(*args, **kwargs)
        return verbose_call

    for name, value in list(vars(mod).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, type) and not issubclass(value, BaseException):
            for attr, fn in list(vars(value).items()):
                if not attr.startswith("_") and isinstance(fn, types.FunctionType):
                    _verbose_originals.append((value, attr, fn))
                    setattr(value, attr, wrap(fn, "%s.%s" % (name, attr)))
        elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            _verbose_originals.append((mod.__dict__, name, value))
            mod.__dict__[name] = wrap(value, "orthanc." + name)
