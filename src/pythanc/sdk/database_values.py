# SPDX-License-Identifier: GPL-3.0-or-later
"""pythanc: values shared by every Orthanc process of one database (replicas on one PostgreSQL
index), kept in the metadata of a resource, with Orthanc's revisions for an atomic
compare-and-set.

``orthanc.SetSharedValue`` and its siblings live in the memory of one Orthanc process; Orthanc's
global properties set through the SDK are not shared between processes either (each keeps its
own, tested in tests/test_replicas.py).  What every process of one database sees, and can update
atomically, is the metadata of a resource: Orthanc keeps a revision per metadata, checks it
against the ``If-Match`` header of a ``PUT`` in the same database transaction as the write, and
answers 409 when another writer came first.  With ``"CheckRevisions": true`` (needed here) a
``PUT`` without ``If-Match`` succeeds only where the metadata does not exist yet, so creation is
atomic too.  These functions call Orthanc's own REST API (``CallRestApi``), as a script could.

``resource`` is the REST path of a patient, study, series or instance (``"/studies/<id>"``);
``name`` a user metadata: its name in ``"UserMetadata"`` or its index from 1024 (``int`` or
``str``).
"""

import json

from .._generated import api
from ..core.errors import OrthancException
from . import handwritten

__all__ = ["GetMetadataWithRevision", "CompareAndSetMetadata", "IncrementMetadata"]

_GET, _PUT = 1, 3          # OrthancPluginHttpMethod
_CONFLICT = (409, 412)     # Orthanc's ErrorCode_Revision, as an HTTP status


def _path(resource, name):
    parts = resource.split("/") if type(resource) is str else ()
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        raise ValueError("argument 'resource' must be the REST path of a resource, such as "
                         "'/studies/<id>', not %r" % (resource,))
    if isinstance(name, bool) or not isinstance(name, (int, str)) or name == "":
        raise TypeError("argument 'name' must be a metadata name (str) or index (int), not %r" % (name,))
    return "%s/metadata/%s" % (resource, name)


def _check_revisions_on():
    if not json.loads(api.GetConfiguration()).get("CheckRevisions", False):
        raise RuntimeError("pythanc: this needs \"CheckRevisions\": true in Orthanc's configuration "
                           "(of every Orthanc process of the database): without it Orthanc does not "
                           "refuse a concurrent first write")


def _fail(status, body, what):
    code = api.ErrorCode.UNKNOWN_RESOURCE if status == 404 else api.ErrorCode.INTERNAL_ERROR
    raise OrthancException(code, "pythanc: %s answered HTTP %d: %s"
                           % (what, status, body.decode("utf-8", "replace")[:300]))


def _etag(headers):
    for k, v in headers.items():
        if k.lower() == "etag":
            return v
    return None


def _call(method, path, headers=None, body=b""):
    """``CallRestApi``, with Orthanc's errors as a status: Orthanc raises, or answers the status,
    depending on its version."""
    try:
        return handwritten.CallRestApi(method, path, headers, body)
    except OrthancException as e:
        if e.code == api.ErrorCode.REVISION:
            return 409, {}, str(e.description).encode()
        if e.code in (api.ErrorCode.UNKNOWN_RESOURCE, api.ErrorCode.INEXISTENT_ITEM):
            return 404, {}, str(e.description).encode()
        raise


def GetMetadataWithRevision(resource, name):
    """The metadata ``name`` of ``resource`` and its revision: ``(value: str, revision: str)``, or
    ``(None, None)`` if the resource has no such metadata.  ``revision`` is what
    :func:`CompareAndSetMetadata` takes (Orthanc's ETag).  Raises ``OrthancException`` if the
    resource does not exist."""
    path = _path(resource, name)
    status, headers, body = _call(_GET, path)
    if status == 200:
        return body.decode("utf-8"), _etag(headers)
    if status == 404 and _exists(resource):
        return None, None
    _fail(status, body, "GET " + path)


def _exists(resource):
    return _call(_GET, resource)[0] == 200


def CompareAndSetMetadata(resource, name, value, revision):
    """Write ``value`` (a ``str``) into the metadata ``name`` of ``resource`` only if it still has
    ``revision`` (from :func:`GetMetadataWithRevision`), or, with ``revision=None``, only if it
    does not exist yet; atomic across every Orthanc process of the database.  Returns the new
    revision (``str``) if written, ``None`` if another writer came first (read again and retry).
    Needs ``"CheckRevisions": true``."""
    if type(value) is not str:
        raise TypeError("argument 'value' must be str, not %s" % type(value).__name__)
    if revision is not None and type(revision) is not str:
        raise TypeError("argument 'revision' must be str or None, not %s" % type(revision).__name__)
    path = _path(resource, name)
    _check_revisions_on()
    headers = {"If-Match": revision} if revision is not None else {}
    status, answer_headers, body = _call(_PUT, path, headers, value.encode("utf-8"))
    if 200 <= status < 300:
        return _etag(answer_headers) or ""
    if status in _CONFLICT:
        return None
    _fail(status, body, "PUT " + path)


def IncrementMetadata(resource, name, delta=1, attempts=1000):
    """Add ``delta`` (an ``int``) to the integer kept in the metadata ``name`` of ``resource`` (0
    if none) and return the new value: a compare-and-set retried until it wins (at most
    ``attempts`` times, then ``RuntimeError``), so concurrent increments from every Orthanc
    process of the database are all counted.  Needs ``"CheckRevisions": true``."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError("argument 'delta' must be int, not %s" % type(delta).__name__)
    for _ in range(attempts):
        value, revision = GetMetadataWithRevision(resource, name)
        new = (int(value) if value else 0) + delta
        if CompareAndSetMetadata(resource, name, str(new), revision) is not None:
            return new
    raise RuntimeError("pythanc: IncrementMetadata(%r, %r) lost %d compare-and-set races in a row"
                       % (resource, name, attempts))
