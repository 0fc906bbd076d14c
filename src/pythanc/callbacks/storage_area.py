"""The storage area in Python: ``orthanc.RegisterStorageArea``, ``RegisterStorageArea2`` and
(SDK 1.12.8+) ``RegisterStorageArea3``, whose files carry custom data.

Orthanc accepts one storage area per run: a second registration (of any version) raises
``RuntimeError``.
"""

from .._generated import api
from ..core.context import ffi, lib, NULL
from ..core.convert import text, data, buffer_into, _ctx, is_bytes, Borrowed
from ..core.log import log_error
from .registry import STORE, ERR_SUCCESS, ERR_PLUGIN, c_entry, refuse_after_start

__all__ = ['RegisterStorageArea', 'RegisterStorageArea2', 'RegisterStorageArea3']

_STORAGE_TWICE = "Cannot register twice a custom storage area"


def RegisterStorageArea(create, read, remove):
    """Replace Orthanc's storage area: ``create(uuid: str, content_type: int, data: bytes)``,
    ``read(uuid, content_type) -> bytes`` and ``remove(uuid, content_type)``.

    Call it while the script is imported (Orthanc chooses its storage area at start-up; later, it
    raises ``RuntimeError``).  An
    exception in ``create`` or ``read`` (or ``read`` not returning bytes) makes the request fail;
    one in ``remove`` is logged.  Orthanc accepts one storage area: a second registration (this or
    :func:`RegisterStorageArea2`) raises ``RuntimeError``.  Orthanc's storage cache may serve reads
    without calling ``read`` (``MaximumStorageCacheSize: 0`` disables it)."""
    for fn in (create, read, remove):
        if not callable(fn):
            raise TypeError("Expected three callback functions to register a custom storage area")
    _set_storage({"create": create, "read": read, "range": None, "remove": remove}, "RegisterStorageArea")


def RegisterStorageArea2(create, read_whole, read_range, remove):
    """(pythanc) :func:`RegisterStorageArea` with range reads: ``read_range(uuid, content_type,
    start: int, size: int) -> bytes`` must return exactly ``size`` bytes from offset ``start``
    (``read_range`` may be ``None``: Orthanc then reads whole files)."""
    for fn in (create, read_whole, remove):
        if not callable(fn):
            raise TypeError("Expected callback functions (create, read_whole, remove) to register a custom "
                            "storage area")
    if read_range is not None and not callable(read_range):
        raise TypeError("read_range must be a callback function or None")
    _set_storage({"create": create, "read": read_whole, "range": read_range, "remove": remove},
                 "RegisterStorageArea2")


def RegisterStorageArea3(create, read, remove):
    """Replace Orthanc's storage area with one whose files carry *custom data* (bytes that Orthanc
    keeps in its database with the attachment, given back to ``read`` and ``remove``; SDK 1.12.8+).
    The official plugin 7.1's conventions:

    * ``create(uuid: str, content_type: int, compression_type: int, content: bytes,
      dicom_instance: orthanc.DicomInstance or None) -> (error_code: int, custom_data: bytes or None)``:
      store ``content``; ``dicom_instance`` is the DICOM instance being stored when the file is one
      (valid during the call only), ``None`` for other attachments.  Return ``(0, None)`` (or
      ``(0, b"")``) for no custom data; a non-zero ``orthanc.ErrorCode`` makes the store fail.
    * ``read(uuid, content_type, range_start: int, size: int, custom_data: bytes) -> (error_code,
      data: bytes)``: ``data`` must be exactly ``size`` bytes from offset ``range_start`` (Orthanc
      reads whole files and ranges through this one callback).
    * ``remove(uuid, content_type, custom_data: bytes) -> error_code: int``.

    ``orthanc.GetAttachmentCustomData(uuid)`` reads the custom data of a file, and
    ``orthanc.SetAttachmentCustomData(uuid, data)`` changes it.  An exception, or a result of
    another form, fails the operation (logged).  Call it while the script is imported; a second
    storage area (any version) raises ``RuntimeError``."""
    for fn in (create, read, remove):
        if not callable(fn):
            raise TypeError("Expected three callback functions to register a custom storage area")
    _set_storage({"create": create, "read": read, "range": None, "remove": remove, "v3": True},
                 "RegisterStorageArea3")


def _set_storage(storage, function):
    with STORE.lock:
        if STORE.once.get("storage") is not None or "storage" in STORE.registered:
            raise RuntimeError(_STORAGE_TWICE)
        refuse_after_start(function, "Orthanc chooses its storage area when it starts")
        if storage.get("v3"):
            lib.OrthancPluginRegisterStorageArea3(
                _ctx(), lib.pythanc_OrthancPluginStorageCreate2, lib.pythanc_OrthancPluginStorageReadRange2,
                lib.pythanc_OrthancPluginStorageRemove2)
        else:
            lib.OrthancPluginRegisterStorageArea2(
                _ctx(), lib.pythanc_OrthancPluginStorageCreate, lib.pythanc_OrthancPluginStorageReadWhole,
                lib.pythanc_OrthancPluginStorageReadRange if storage["range"] is not None else NULL,
                lib.pythanc_OrthancPluginStorageRemove)
        STORE.once["storage"] = storage
        STORE.registered.add("storage")


def _storage(what):
    s = STORE.once.get("storage")
    if s is None:
        raise RuntimeError("No Python storage area is registered (any more)")
    return s[what]


def _into_range(target, content, size, callback):
    """Copy ``content``, which a read callback returned, into ``target`` (a memory buffer of ``size``
    bytes that Orthanc allocated); ``ERR_PLUGIN`` (logged) unless it is exactly ``size`` bytes."""
    if not is_bytes(content) or len(content) != size:
        log_error("The Python storage area %s callback has not returned %d bytes as expected (it returned %s)"
                  % (callback, size, ("%d bytes" % len(content)) if is_bytes(content) else type(content).__name__))
        return ERR_PLUGIN
    if size:
        ffi.memmove(target.data, content, size)
    return ERR_SUCCESS


@c_entry("Python StorageCreate callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCreate(uuid, content, size, content_type):
    _storage("create")(text(uuid), int(content_type), data(content, size))
    return ERR_SUCCESS


@c_entry("Python StorageRead callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageReadWhole(target, uuid, content_type):
    r = _storage("read")(text(uuid), int(content_type))
    if not is_bytes(r):
        log_error("The Python storage area read callback has not returned bytes as expected (it returned %s)"
                  % type(r).__name__)
        return ERR_PLUGIN
    buffer_into(target, r, "content", is64=True)
    return ERR_SUCCESS


@c_entry("Python StorageReadRange callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageReadRange(target, uuid, content_type, range_start):
    size = int(target.size)
    r = _storage("range")(text(uuid), int(content_type), int(range_start), size)
    return _into_range(target, r, size, "read_range")


@c_entry("Python StorageRemove callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageRemove(uuid, content_type):
    _storage("remove")(text(uuid), int(content_type))
    return ERR_SUCCESS


# ---- version 3 (SDK 1.12.8+): custom data, and the official plugin 7.1's result conventions -----

def _error_code(value, callback, position=""):
    """The ``orthanc.ErrorCode`` a v3 callback returned (``int``), or ``None`` after logging why not."""
    if isinstance(value, bool) or not isinstance(value, int):
        log_error("The Python storage area %s callback has not returned an int (orthanc.ErrorCode)%s as "
                  "expected (it returned %s)" % (callback, position, type(value).__name__))
        return None
    if not 0 <= value < 2**31:
        log_error("The Python storage area %s callback returned %d, which is not an orthanc.ErrorCode"
                  % (callback, value))
        return None
    return int(value)


def _pair(result, callback):
    """``(code for Orthanc, second item)`` of a v3 callback's 2-tuple ``(error code, value)``: the
    callback's code, logged if it is an error; ``ERR_PLUGIN`` (logged) for a result of another form.
    The second item is meaningful only when the code is ``ERR_SUCCESS``."""
    if not isinstance(result, tuple) or len(result) != 2:
        log_error("The Python storage area %s callback has not returned a tuple (error code, bytes) as "
                  "expected (it returned %s)" % (callback, type(result).__name__))
        return ERR_PLUGIN, None
    code = _error_code(result[0], callback, " as the first item of its tuple")
    if code is None:
        return ERR_PLUGIN, None
    if code != ERR_SUCCESS:
        log_error("The Python storage area %s callback returned the error %d" % (callback, code))
    return code, result[1]


@c_entry("Python StorageCreate2 callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageCreate2(custom_data, uuid, content, size, content_type, compression_type,
                                        dicom_instance):
    create = _storage("create")
    args = (text(uuid), int(content_type), int(compression_type), data(content, size))
    if dicom_instance == NULL:
        r = create(*args, None)
    else:
        with Borrowed(api.DicomInstance, dicom_instance) as instance:
            r = create(*args, instance)
    code, extra = _pair(r, "create")
    if code != ERR_SUCCESS:
        return code
    if extra is None:
        return ERR_SUCCESS
    if not is_bytes(extra):
        log_error("The Python storage area create callback has not returned bytes or None as the custom data "
                  "(the second item of its tuple; it returned %s)" % type(extra).__name__)
        return ERR_PLUGIN
    if len(extra) > 2**32 - 1:
        log_error("The Python storage area create callback returned %d bytes of custom data (at most %d)"
                  % (len(extra), 2**32 - 1))
        return ERR_PLUGIN
    if len(extra):
        buffer_into(custom_data, extra, "custom data")
    return ERR_SUCCESS


@c_entry("Python StorageReadRange2 callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageReadRange2(target, uuid, content_type, range_start, custom_data,
                                           custom_data_size):
    size = int(target.size)
    r = _storage("read")(text(uuid), int(content_type), int(range_start), size,
                         data(custom_data, custom_data_size))
    code, content = _pair(r, "read")
    if code != ERR_SUCCESS:
        return code
    return _into_range(target, content, size, "read")


@c_entry("Python StorageRemove2 callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageRemove2(uuid, content_type, custom_data, custom_data_size):
    r = _storage("remove")(text(uuid), int(content_type), data(custom_data, custom_data_size))
    code = _error_code(r, "remove")
    return ERR_PLUGIN if code is None else code
