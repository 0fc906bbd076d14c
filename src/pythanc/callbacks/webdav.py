"""WebDAV collections: ``orthanc.RegisterWebDavCollection``.  Collections given to Orthanc are
integer handles; several collections may be registered at different URIs.
"""

import datetime

from ..core.context import ffi, lib
from ..core.convert import (text_array, data, _ctx, _str, _check, _int, _buf64, handle_pointer,
                            pointer_handle, out_bool, is_bytes)
from ..core.log import log_exception
from .registry import (STORE, ERR_SUCCESS, ERR_PLUGIN, ERR_UNKNOWN_RESOURCE, c_entry, new_handle, on_reset,
                       refuse_after_start)

__all__ = ['RegisterWebDavCollection']

_collections = {}   # handle -> _WebDav: the collections registered with Orthanc in this run


@on_reset
def _forget_collections():
    _collections.clear()


class _WebDav:
    __slots__ = ("uri", "is_existing_folder", "list_folder", "retrieve_file", "store_file", "create_folder",
                 "delete_item")


def RegisterWebDavCollection(uri, is_existing_folder, list_folder, retrieve_file, store_file, create_folder,
                             delete_item):
    """(pythanc) Serve a WebDAV collection at ``uri`` (e.g. ``'/webdav-py'``).  Each callback gets
    ``path``, the list of the path's items below ``uri`` (``[]`` for the root):

    * ``is_existing_folder(path) -> bool``;
    * ``list_folder(path) -> (folders, files)`` or ``None`` if there is no such folder; ``folders``
      holds names (or ``(name, date)``), ``files`` holds ``(name, size, mime=None, date=None)``;
    * ``retrieve_file(path) -> (data: bytes, mime=None, date=None)`` or ``None`` (404);
    * ``store_file(path, data: bytes) -> bool``, ``create_folder(path) -> bool`` and
      ``delete_item(path) -> bool``: ``True`` when done, ``False`` when the collection is read-only.

    Dates are ``datetime.datetime`` (UTC) or strings ``'YYYYMMDDTHHMMSS'``; ``None`` means now.  An
    exception or a wrong result is logged and answers an error.  Call it while the script is
    imported (later, it raises ``RuntimeError``: Orthanc mounts WebDAV collections when its HTTP
    server starts); several collections may be registered at different URIs."""
    c = _WebDav()
    c.uri = uri
    names = ("is_existing_folder", "list_folder", "retrieve_file", "store_file", "create_folder", "delete_item")
    fns = (is_existing_folder, list_folder, retrieve_file, store_file, create_folder, delete_item)
    for name, fn in zip(names, fns):
        if not callable(fn):
            raise TypeError("Expected six callback functions to register a WebDAV collection (%s is %s)"
                            % (name, type(fn).__name__))
        setattr(c, name, fn)
    c_uri = _str(uri, "uri")
    h = new_handle()
    with STORE.lock:
        refuse_after_start("RegisterWebDavCollection", "Orthanc mounts the WebDAV collections of plugins only "
                           "when its HTTP server starts")
        _collections[h] = c
        try:
            _check(lib.OrthancPluginRegisterWebDavCollection(
                _ctx(), c_uri, lib.pythanc_OrthancPluginWebDavIsExistingFolderCallback,
                lib.pythanc_OrthancPluginWebDavListFolderCallback, lib.pythanc_OrthancPluginWebDavRetrieveFileCallback,
                lib.pythanc_OrthancPluginWebDavStoreFileCallback, lib.pythanc_OrthancPluginWebDavCreateFolderCallback,
                lib.pythanc_OrthancPluginWebDavDeleteItemCallback, handle_pointer(h)))
        except BaseException:
            _collections.pop(h, None)
            raise


def _dav(payload):
    c = _collections.get(pointer_handle(payload))
    if c is None:
        raise RuntimeError("unknown WebDAV collection")
    return c


def _dav_date(value):
    if value is None:
        value = datetime.datetime.now(datetime.timezone.utc)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.strftime("%Y%m%dT%H%M%S").encode()
    return _str(value, "date")


# The out-argument that the SDK header calls ``isReadOnly`` (store, create folder, delete) is read
# by the Orthanc 1.10 core as "the operation was done" (``return (isReadOnly != 0)``, and a false
# result answers 403): pythanc writes 1 when the Python callback returns True.
def _dav_bool(r, what):
    if type(r) is not bool:
        raise TypeError("The Python WebDAV %s callback must return a bool, not %s" % (what, type(r).__name__))
    return r


def _dav_answer_bool(out, path_size, path_items, payload, what):
    """A WebDAV callback answered by a bool that the Python method ``what`` returns for the path."""
    try:
        c = _dav(payload)
        out_bool(out, _dav_bool(getattr(c, what)(text_array(path_items, path_size)), what))
        return ERR_SUCCESS
    except BaseException:
        log_exception("Python WebDAV %s callback" % what)
        return ERR_PLUGIN


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWebDavIsExistingFolderCallback(is_existing, path_size, path_items, payload):
    return _dav_answer_bool(is_existing, path_size, path_items, payload, "is_existing_folder")


@c_entry("Python WebDAV list_folder callback", ERR_PLUGIN)
def pythanc_OrthancPluginWebDavListFolderCallback(is_existing, collection, add_file, add_folder, path_size,
                                                  path_items, payload):
    c = _dav(payload)
    r = c.list_folder(text_array(path_items, path_size))
    if r is None:
        out_bool(is_existing, False)
        return ERR_SUCCESS
    if not isinstance(r, (tuple, list)) or len(r) != 2:
        raise TypeError("The Python WebDAV list_folder callback must return (folders, files) or None, not %r"
                        % type(r).__name__)
    folders, files = r
    for item in folders:
        name, date = (item, None) if isinstance(item, str) else tuple(item)
        _check(add_folder(collection, _str(name, "folder name"), _dav_date(date)))
    for item in files:
        item = tuple(item) + (None,) * (4 - len(item))
        name, size, mime, date = item[:4]
        _check(add_file(collection, _str(name, "file name"), _int(size, "file size", 0, 2**64 - 1),
                        _str(mime or "", "mime"), _dav_date(date)))
    out_bool(is_existing, True)
    return ERR_SUCCESS


@c_entry("Python WebDAV retrieve_file callback", ERR_PLUGIN)
def pythanc_OrthancPluginWebDavRetrieveFileCallback(collection, retrieve, path_size, path_items, payload):
    c = _dav(payload)
    r = c.retrieve_file(text_array(path_items, path_size))
    if r is None:
        return ERR_UNKNOWN_RESOURCE
    if is_bytes(r):
        r = (r,)
    if not isinstance(r, (tuple, list)) or not 1 <= len(r) <= 3 or not is_bytes(r[0]):
        raise TypeError("The Python WebDAV retrieve_file callback must return (bytes, mime, date) or None")
    r = tuple(r) + (None,) * (3 - len(r))
    content, mime, date = r
    p, n = _buf64(content, "data")
    _check(retrieve(collection, p, n, _str(mime or "", "mime"), _dav_date(date)))
    return ERR_SUCCESS


@c_entry("Python WebDAV store_file callback", ERR_PLUGIN)
def pythanc_OrthancPluginWebDavStoreFileCallback(is_read_only, path_size, path_items, content, size, payload):
    c = _dav(payload)
    done = _dav_bool(c.store_file(text_array(path_items, path_size), data(content, size)), "store_file")
    out_bool(is_read_only, done)
    return ERR_SUCCESS


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWebDavCreateFolderCallback(is_read_only, path_size, path_items, payload):
    return _dav_answer_bool(is_read_only, path_size, path_items, payload, "create_folder")


@ffi.def_extern(error=ERR_PLUGIN)
def pythanc_OrthancPluginWebDavDeleteItemCallback(is_read_only, path_size, path_items, payload):
    return _dav_answer_bool(is_read_only, path_size, path_items, payload, "delete_item")
