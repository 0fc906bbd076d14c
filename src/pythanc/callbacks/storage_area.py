"""The storage area in Python: ``orthanc.RegisterStorageArea`` and ``RegisterStorageArea2``.

Orthanc accepts one storage area per run: a second registration raises ``RuntimeError``.
"""

from ..core.context import ffi, lib, NULL
from ..core.convert import text, data, buffer_into, _ctx, is_bytes
from ..core.log import log_error
from .registry import STORE, ERR_SUCCESS, ERR_PLUGIN, c_entry, refuse_after_start

__all__ = ['RegisterStorageArea', 'RegisterStorageArea2']

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


def _set_storage(storage, function):
    with STORE.lock:
        if STORE.once.get("storage") is not None or "storage" in STORE.registered:
            raise RuntimeError(_STORAGE_TWICE)
        refuse_after_start(function, "Orthanc chooses its storage area when it starts")
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
    if not is_bytes(r) or len(r) != size:
        log_error("The Python storage area read_range callback has not returned %d bytes as expected "
                  "(it returned %s)" % (size, ("%d bytes" % len(r)) if is_bytes(r) else type(r).__name__))
        return ERR_PLUGIN
    if size:
        ffi.memmove(target.data, r, size)
    return ERR_SUCCESS


@c_entry("Python StorageRemove callback", ERR_PLUGIN)
def pythanc_OrthancPluginStorageRemove(uuid, content_type):
    _storage("remove")(text(uuid), int(content_type))
    return ERR_SUCCESS
