"""The one place where C values of the Orthanc SDK become Python values, and back.

Generated code (``pythanc/_generated/api.py``) and hand-written code call these helpers;
nothing else converts strings, memory buffers, error codes or objects.

Decisions, documented in the README:

* Strings from Orthanc are decoded as UTF-8; invalid bytes become U+FFFD (never an error).
* String arguments must be ``str`` without NUL characters (``ValueError`` names the argument).
* Buffer arguments accept ``bytes``, ``bytearray``, ``memoryview`` (any contiguous buffer) or
  ``str`` (sent as UTF-8), like the official plugin.
* Objects handed to a callback are *borrowed*: they are invalidated when the callback returns, and
  using them afterwards raises ``orthanc.OrthancException`` (BadSequenceOfCalls) instead of touching
  freed memory.
"""

import sys

from .context import ffi, lib as _lib, STATE, NULL, ctx as _ctx
from .errors import (OrthancException, ERROR_INTERNAL, ERROR_BAD_SEQUENCE_OF_CALLS,  # noqa: F401
                     ERROR_PARAMETER_OUT_OF_RANGE)


def error_description(code):
    try:
        if STATE.ctx is not None:
            p = _lib.OrthancPluginGetErrorDescription(STATE.ctx, code)
            if p != NULL:
                return ffi.string(p).decode("utf-8", "replace")
    except Exception:
        pass
    return "Error %d" % code


def _check(code, target=None):
    """Raise ``OrthancException`` for a non-zero ``OrthancPluginErrorCode``."""
    if code:
        if target is not None and target.data != NULL:
            _lib.OrthancPluginFreeMemoryBuffer(STATE.ctx, target)
        raise OrthancException(code, error_description(code))


# ---- arguments ---------------------------------------------------------------------------------

def _type_name(v):
    return type(v).__name__


def _str(value, name):
    """A ``const char*`` argument."""
    if type(value) is not str:
        if isinstance(value, str):
            value = str(value)
        else:
            raise TypeError("argument '%s' must be str, not %s" % (name, _type_name(value)))
    if "\0" in value:
        raise ValueError("argument '%s' must not contain NUL characters" % name)
    return value.encode("utf-8", "surrogateescape")


def _optional_str(value, name):
    return NULL if value is None else _str(value, name)


def _as_buffer(value, name):
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if value is None:
        raise TypeError("argument '%s' must be bytes-like or str, not None" % name)
    try:
        return ffi.from_buffer(value)
    except (TypeError, BufferError):
        raise TypeError("argument '%s' must be a contiguous bytes-like object or str, not %s"
                        % (name, _type_name(value))) from None


def _buf(value, name, limit=2**32 - 1):
    """A ``(pointer, size)`` pair of arguments, from one Python buffer."""
    b = _as_buffer(value, name)
    n = len(b)
    if n > limit:
        raise ValueError("argument '%s' is too large (%d bytes, at most %d)" % (name, n, limit))
    return b, n  # bytes go to C as they are; other buffers as cffi buffers


def _buf64(value, name):
    return _buf(value, name, 2**63 - 1)


def _rawbuf(value, name, minimum):
    """A buffer passed without its size: it must hold at least ``minimum`` bytes."""
    b = _as_buffer(value, name)
    if len(b) < minimum:
        raise ValueError("argument '%s' holds %d bytes, but %d are needed" % (name, len(b), minimum))
    return ffi.from_buffer(b)


def _int(value, name, lo, hi):
    if type(value) is not int:
        if isinstance(value, int):  # bool, IntEnum...
            value = int(value)
        else:
            raise TypeError("argument '%s' must be int, not %s" % (name, _type_name(value)))
    if value < lo or value > hi:
        raise ValueError("argument '%s' is out of range: %d not in [%d, %d]" % (name, value, lo, hi))
    return value


def _float(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("argument '%s' must be float, not %s" % (name, _type_name(value)))
    return float(value)


def _obj(value, cls, name):
    """An object argument (``None`` means NULL where the SDK allows it)."""
    if value is None:
        return NULL
    if not isinstance(value, cls):
        raise TypeError("argument '%s' must be orthanc.%s, not %s" % (name, cls.__name__, _type_name(value)))
    return value._p()


def str_array(values, name):
    """A list of ``str`` as a ``const char* const*`` array; returns ``(array, keepalive)``."""
    items = [ffi.new("char[]", _str(v, name)) for v in values]
    return ffi.new("const char*[]", items), items


# ---- results -----------------------------------------------------------------------------------

if ffi is not None:
    # ctypes looked up once: these helpers run on every SDK call that returns a buffer.
    _T_BUFFER = ffi.typeof("OrthancPluginMemoryBuffer *")
    _T_BUFFER64 = ffi.typeof("OrthancPluginMemoryBuffer64 *")
    _T_CHARP = ffi.typeof("char *")
    _ffi_new, _ffi_cast, _ffi_unpack, _ffi_typeof = ffi.new, ffi.cast, ffi.unpack, ffi.typeof


def _new_buffer():
    return _ffi_new(_T_BUFFER)


def _new_buffer64():
    return _ffi_new(_T_BUFFER64)


def _new_out(c_type):
    """A one-item C array for a scalar out-argument of an SDK function (``uint8_t``, ``uint64_t``, an
    enum...): the generated code passes it to C, then reads item 0."""
    return _ffi_new(c_type + "[1]")


def _take_buffer(t):
    """Copy an Orthanc memory buffer into ``bytes`` and free it."""
    p = t.data
    if p == NULL:
        return b""
    try:
        return _ffi_unpack(_ffi_cast(_T_CHARP, p), t.size)
    finally:
        if _ffi_typeof(t) is _T_BUFFER:
            _lib.OrthancPluginFreeMemoryBuffer(STATE.ctx, t)
        else:
            _lib.OrthancPluginFreeMemoryBuffer64(STATE.ctx, t)


def _take_string(p):
    """A ``char*`` that Orthanc allocated: a ``str``, then freed; NULL raises."""
    if p == NULL:
        raise OrthancException(ERROR_INTERNAL, "Internal error")
    try:
        return ffi.string(p).decode("utf-8", "replace")
    finally:
        _lib.OrthancPluginFreeString(STATE.ctx, p)


def _static_string(p):
    """A ``const char*`` that Orthanc keeps: a ``str``, or ``None`` for NULL."""
    if p == NULL:
        return None
    return ffi.string(p).decode("utf-8", "replace")


def text(p):
    """A C string from a callback argument: ``str`` (UTF-8, invalid bytes replaced); NULL -> ``''``."""
    if p == NULL:
        return ""
    return ffi.string(p).decode("utf-8", "replace")


def is_bytes(value):
    """True for the values that pythanc takes as bytes from a callback's result."""
    return isinstance(value, (bytes, bytearray, memoryview))


HTTP_METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE"}   # OrthancPluginHttpMethod -> its name


def string_dict(count, keys, values):
    """A dict of ``count`` C strings keys -> values (HTTP headers, GET arguments), decoded as UTF-8
    with U+FFFD for invalid bytes."""
    d = {}
    for i in range(count):
        d[ffi.string(keys[i]).decode("utf-8", "replace")] = ffi.string(values[i]).decode("utf-8", "replace")
    return d


def request_kw(method, request, with_get):
    """The keyword arguments that a REST-like callback receives for an ``OrthancPluginHttpRequest``:
    ``method``, ``groups``, ``headers`` and, if ``with_get`` and the method is GET, ``get``."""
    kw = {"method": HTTP_METHODS.get(method, str(method)),
          "groups": tuple(text(request.groups[i]) for i in range(request.groupsCount)),
          "headers": string_dict(request.headersCount, request.headersKeys, request.headersValues)}
    if with_get and method == 1:
        kw["get"] = string_dict(request.getCount, request.getKeys, request.getValues)
    return kw


def text_array(arr, count):
    return [ffi.string(arr[i]).decode("utf-8", "replace") for i in range(count)]


def data(p, size):
    """A ``(const void*, size)`` callback argument as ``bytes``."""
    if p == NULL or not size:
        return b""
    return _ffi_unpack(_ffi_cast(_T_CHARP, p), size)


def buffer_into(target, value, name, is64=False):
    """Fill an Orthanc memory buffer (an out-argument of a callback) with ``value``."""
    b = _as_buffer(value, name)
    n = len(b)
    make = _lib.OrthancPluginCreateMemoryBuffer64 if is64 else _lib.OrthancPluginCreateMemoryBuffer
    code = make(_ctx(), target, n)
    if code:
        raise OrthancException(code, error_description(code))
    if n:
        ffi.memmove(target.data, b, n)


# ---- objects -----------------------------------------------------------------------------------

class _SdkType(type):
    """Metaclass of the SDK's object types.  Methods are plain functions (the fastest call path for
    ``obj.Method()``); read from the *class* (as ``inspect.getmembers`` does), a public method is
    wrapped in a ``_method`` descriptor, so that ``inspect.ismethoddescriptor`` is true, as for the
    official plugin's C methods."""

    def __getattribute__(cls, name):
        v = type.__getattribute__(cls, name)
        if type(v) is _FunctionType and name[:1] != "_":
            return _method(v, cls)
        return v


class OrthancObject(metaclass=_SdkType):
    """Base of the SDK's object types (``orthanc.RestOutput``, ``orthanc.Image``, ...).

    Objects are never created by calling the class: Orthanc hands them to callbacks (borrowed,
    valid during the callback only), or SDK functions return them (owned by Python, freed when
    garbage-collected).
    """
    __slots__ = ("_ptr", "_owned", "_extra", "__weakref__")
    _c_type = "void *"

    def __init__(self, *args, **kwargs):
        raise TypeError("orthanc.%s objects are created by Orthanc, not by calling the class"
                        % type(self).__name__)

    @classmethod
    def _borrow(cls, ptr):
        o = object.__new__(cls)
        o._ptr = ptr
        o._owned = None
        o._extra = None
        return o

    def _p(self):
        """The C pointer; raises once the object is no longer valid."""
        p = self._ptr
        if p is None:
            if type(self._extra) is tuple:  # a REST answer left for C to send: send it now
                return send_pending_answer(self)
            raise OrthancException(
                ERROR_BAD_SEQUENCE_OF_CALLS,
                "This orthanc.%s is no longer valid: it was handed to a callback that has returned, "
                "or it was released" % type(self).__name__)
        return p

    def _invalidate(self):
        self._ptr = None

    def __repr__(self):
        state = "invalid" if self._ptr is None else ("owned" if self._owned else "borrowed")
        return "<orthanc.%s (%s)>" % (type(self).__name__, state)


OrthancObject.__module__ = "orthanc"


def send_pending_answer(output):
    """Send the answer that ``RestOutput.AnswerBuffer`` left for C to send after the callback
    (``output._extra`` is ``(pointer, mime type, body)``), because the script goes on using
    ``output``: the calls then reach Orthanc in the order the script made them.  Returns the
    pointer, valid again."""
    ptr, mime, body = output._extra
    output._extra = None
    output._ptr = ptr
    _lib.OrthancPluginAnswerBuffer(_ctx(), ptr, body, len(body), mime)
    return ptr


def _own(cls, ptr, free):
    """Wrap an object that an SDK function returned; NULL raises ``OrthancException``."""
    if ptr == NULL:
        raise OrthancException(ERROR_INTERNAL, "Internal error")
    if free is not None:
        def release(p, free=free):
            c = STATE.ctx
            if c is not None:  # after Orthanc stopped, leak rather than call into a freed context
                free(c, p)
        ptr = ffi.gc(ptr, release)
    o = object.__new__(cls)
    o._ptr = ptr
    o._owned = True
    o._extra = None
    return o


def release_ownership(obj, cls, name):
    """Hand an owned object over to Orthanc (a job to submit, an image a decoder returns...).

    ``obj`` must be an owned, still valid ``cls`` (not one borrowed from a callback).  Its destructor
    is detached, so Python never frees it, and ``obj`` is invalidated (using it afterwards raises
    ``OrthancException``).  Returns the raw C pointer, now Orthanc's to free."""
    if not isinstance(obj, cls):
        raise TypeError("%s must be orthanc.%s, not %s" % (name, cls.__name__, _type_name(obj)))
    p = obj._p()
    if obj._extra is not None:
        raise ValueError("%s is an orthanc.%s over memory that Python owns (orthanc.CreateImageAccessor): "
                         "Orthanc cannot take it over; make it with orthanc.CreateImageFromBuffer instead"
                         % (name, cls.__name__))
    if not obj._owned:
        raise ValueError("%s must be an orthanc.%s owned by Python (created by an SDK function), "
                         "not one borrowed from a callback" % (name, cls.__name__))
    ffi.gc(p, None)  # detach the destructor that _own attached
    obj._ptr = None
    obj._owned = False
    return p


def handle_pointer(handle, c_type="void *"):
    """An integer handle as an opaque pointer for Orthanc (never a Python object address)."""
    return ffi.cast(c_type, handle)


def pointer_handle(p):
    """The integer handle back from an opaque pointer that :func:`handle_pointer` made."""
    return int(ffi.cast("uintptr_t", p))


def out_bool(target, value):
    """Write a Boolean into a ``uint8_t*`` out-argument."""
    target[0] = 1 if value else 0


class Borrowed:
    """``with Borrowed(cls, ptr) as obj:`` gives a borrowed object, invalidated at the end."""
    __slots__ = ("obj",)

    def __init__(self, cls, ptr):
        self.obj = cls._borrow(ptr)

    def __enter__(self):
        return self.obj

    def __exit__(self, *exc):
        self.obj._ptr = None
        self.obj._extra = None
        return False


def set_error_codes(module_error_code_class):
    """Use the SDK's values for the error codes that pythanc raises itself."""
    global ERROR_BAD_SEQUENCE_OF_CALLS, ERROR_PARAMETER_OUT_OF_RANGE, ERROR_INTERNAL
    ERROR_BAD_SEQUENCE_OF_CALLS = module_error_code_class.BAD_SEQUENCE_OF_CALLS
    ERROR_PARAMETER_OUT_OF_RANGE = module_error_code_class.PARAMETER_OUT_OF_RANGE
    ERROR_INTERNAL = module_error_code_class.INTERNAL_ERROR


class _method:
    """A method of an SDK class.  A descriptor of its own (not a plain function), so that
    ``inspect.ismethoddescriptor`` is true for it, as for the official plugin's C methods, and
    ``inspect.getdoc``/``inspect.signature`` give the SDK's documentation and the parameters."""

    def __init__(self, fn, owner=None):
        self.__owner__ = owner
        self.__func__ = fn
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__

    def __set_name__(self, owner, name):
        self.__name__ = name
        self.__qualname__ = "%s.%s" % (owner.__name__, name)

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        return _MethodType(self.__func__, obj)

    def __call__(self, *args, **kwargs):
        # called on the class (``orthanc.Image.GetImageWidth(x)``): check ``x`` is one
        owner = self.__owner__
        if owner is not None and (not args or not isinstance(args[0], owner)):
            raise TypeError("%s() needs an orthanc.%s as its first argument, not %s"
                            % (self.__qualname__, owner.__name__, _type_name(args[0]) if args else "nothing"))
        return self.__func__(*args, **kwargs)


import types as _types  # noqa: E402
_MethodType = _types.MethodType
_FunctionType = _types.FunctionType
