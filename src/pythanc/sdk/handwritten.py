"""Hand-written SDK functions and methods: out-parameters, arrays, raw pointers, or checks that
the SDK does not make.

Each is listed, with the C function it reaches, in ``pythanc/_build/not_generated.py``.  A method
is named ``Class_Method``; ``pythanc.lifecycle.module`` binds every name of ``__all__`` into the
``orthanc`` module (or onto its class).  The hand-written callbacks and the methods that belong to
one callback family (``RestOutput.AnswerBuffer``, ``Job.SubmitJob``) are in ``pythanc/callbacks/``.
"""

import itertools
import json
import sys
import threading

from .._generated import api
from ..core import convert as _convert
from ..core.convert import (_optional_str, ffi, _lib, _ctx, _check, _str, _buf, _int, _new_buffer, _take_buffer,
                            _take_string, _own, _as_buffer, str_array, text, data, handle_pointer, pointer_handle,
                            OrthancException)

__all__ = ["DicomInstance_GetInstanceData", "DicomInstance_GetInstanceDicomWebJson",
           "DicomInstance_GetInstanceDicomWebXml", "EncodeDicomWebJson", "EncodeDicomWebXml",
           "EncodeDicomWebJson2", "EncodeDicomWebXml2", "Image_GetImageBuffer", "CreateImageFromBuffer", "CreateImageAccessor",
           "FindQuery_GetFindQueryTagGroup", "FindQuery_GetFindQueryTagElement", "LookupDictionary",
           "RestOutput_SendHttpStatus", "RestOutput_SendMultipartItem2", "RestApiGet2", "HttpClient",
           "CallRestApi", "Peers_CallPeerApi", "GetCommandLineArgument", "ChunkedHttpClient", "SetStableStatus"]


# ---- DicomInstance ------------------------------------------------------------------------------

def DicomInstance_GetInstanceData(self):
    """Get the content of the DICOM instance, as ``bytes`` (the whole DICOM file)."""
    p = self._p()
    c = _ctx()
    size = _lib.OrthancPluginGetInstanceSize(c, p)
    ptr = _lib.OrthancPluginGetInstanceData(c, p)
    if ptr == ffi.NULL or size < 0:
        raise OrthancException(_convert.ERROR_INTERNAL, "Internal error")
    return ffi.unpack(ffi.cast("char *", ptr), size)


def DicomInstance_GetInstanceDicomWebJson(self):
    """Convert the instance to DICOMweb JSON (bulk data as BulkDataURI left to Orthanc's defaults)."""
    return _take_string(_lib.OrthancPluginGetInstanceDicomWebJson(_ctx(), self._p(), ffi.NULL, ffi.NULL))


def DicomInstance_GetInstanceDicomWebXml(self):
    """Convert the instance to DICOMweb XML."""
    return _take_string(_lib.OrthancPluginGetInstanceDicomWebXml(_ctx(), self._p(), ffi.NULL, ffi.NULL))


def EncodeDicomWebJson(dicom):
    """Convert a DICOM file (``bytes``) to DICOMweb JSON (``str``)."""
    p, n = _buf(dicom, "dicom")
    return _take_string(_lib.OrthancPluginEncodeDicomWebJson(_ctx(), p, n, ffi.NULL))


def EncodeDicomWebXml(dicom):
    """Convert a DICOM file (``bytes``) to DICOMweb XML (``str``)."""
    p, n = _buf(dicom, "dicom")
    return _take_string(_lib.OrthancPluginEncodeDicomWebXml(_ctx(), p, n, ffi.NULL))


def EncodeDicomWebJson2(dicom):
    """Same as :func:`EncodeDicomWebJson` (version 2 of the SDK call)."""
    p, n = _buf(dicom, "dicom")
    return _take_string(_lib.OrthancPluginEncodeDicomWebJson2(_ctx(), p, n, ffi.NULL, ffi.NULL))


def EncodeDicomWebXml2(dicom):
    """Same as :func:`EncodeDicomWebXml` (version 2 of the SDK call)."""
    p, n = _buf(dicom, "dicom")
    return _take_string(_lib.OrthancPluginEncodeDicomWebXml2(_ctx(), p, n, ffi.NULL, ffi.NULL))


# ---- Image ----------------------------------------------------------------------------------------

def Image_GetImageBuffer(self):
    """Return a copy of the pixels of the image, as ``bytes`` of ``pitch * height`` bytes."""
    p = self._p()
    c = _ctx()
    pitch = _lib.OrthancPluginGetImagePitch(c, p)
    height = _lib.OrthancPluginGetImageHeight(c, p)
    ptr = _lib.OrthancPluginGetImageBuffer(c, p)
    if ptr == ffi.NULL:
        return b""
    return ffi.unpack(ffi.cast("char *", ptr), pitch * height)


def CreateImageFromBuffer(format, width, height, pitch, buffer):
    """Create an image of the given pixel format and size from a copy of ``buffer``
    (``pitch * height`` bytes, ``pitch`` bytes per row)."""
    image = api.CreateImage(format, width, height)
    width = _int(width, "width", 0, 2**32 - 1)
    height = _int(height, "height", 0, 2**32 - 1)
    pitch = _int(pitch, "pitch", 0, 2**32 - 1)
    src, n = _buf(buffer, "buffer")
    if n != pitch * height:
        raise ValueError("argument 'buffer' holds %d bytes, but pitch * height = %d" % (n, pitch * height))
    c = _ctx()
    p = image._p()
    target_pitch = _lib.OrthancPluginGetImagePitch(c, p)
    dst = ffi.cast("char *", _lib.OrthancPluginGetImageBuffer(c, p))
    row = min(pitch, target_pitch)
    src = ffi.cast("char *", src) if not isinstance(src, bytes) else ffi.from_buffer(src)
    for y in range(height):
        ffi.memmove(dst + y * target_pitch, src + y * pitch, row)
    return image


def CreateImageAccessor(format, width, height, pitch, buffer):
    """(pythanc) Create an image of the given pixel format and size whose pixels are ``buffer``
    (at least ``pitch * height`` bytes, ``pitch`` bytes per row), as Orthanc's image accessors are.

    The image reads a copy of ``buffer`` made once, held by the returned ``orthanc.Image`` and freed
    with it: it cannot outlive its pixels, and changing ``buffer`` afterwards does not change the
    image.  Unlike :func:`CreateImageFromBuffer`, the rows keep the given ``pitch`` (no copy row by
    row into a new image).  Orthanc cannot take such an image over: an image decoder
    (``RegisterDecodeImageCallback``) must return one made by ``CreateImageFromBuffer``."""
    format = _int(format, "format", -2**31, 2**31 - 1)
    width = _int(width, "width", 0, 2**32 - 1)
    height = _int(height, "height", 0, 2**32 - 1)
    pitch = _int(pitch, "pitch", 0, 2**32 - 1)
    b = _as_buffer(buffer, "buffer")
    if len(b) < pitch * height:
        raise ValueError("argument 'buffer' holds %d bytes, but pitch * height = %d" % (len(b), pitch * height))
    pixels = ffi.new("char[]", max(1, pitch * height))
    ffi.memmove(pixels, b, pitch * height)
    image = _own(api.Image, _lib.OrthancPluginCreateImageAccessor(_ctx(), format, width, height, pitch, pixels),
                 _lib.OrthancPluginFreeImage)
    image._extra = pixels   # freed with the image, never before it
    return image


# ---- FindQuery ------------------------------------------------------------------------------------

def _find_tag(self, index):
    index = _int(index, "index", 0, 2**32 - 1)
    c = _ctx()
    p = self._p()
    if index >= _lib.OrthancPluginGetFindQuerySize(c, p):
        raise ValueError("Index is out of range")
    group = ffi.new("uint16_t *")
    element = ffi.new("uint16_t *")
    _check(_lib.OrthancPluginGetFindQueryTag(c, group, element, p, index))
    return group[0], element[0]


def FindQuery_GetFindQueryTagGroup(self, index):
    """The group of the ``index``-th tag of the C-FIND query (an int)."""
    return _find_tag(self, index)[0]


def FindQuery_GetFindQueryTagElement(self, index):
    """The element of the ``index``-th tag of the C-FIND query (an int)."""
    return _find_tag(self, index)[1]


# ---- Dictionary -----------------------------------------------------------------------------------

def LookupDictionary(name):
    """Look a DICOM tag up in Orthanc's dictionary by name (``'PatientID'``) or by ``'0010,0020'``.

    Returns a dict with ``Group``, ``Element``, ``ValueRepresentation``, ``MinMultiplicity`` and
    ``MaxMultiplicity``; an unknown name raises ``OrthancException``."""
    entry = ffi.new("OrthancPluginDictionaryEntry *")
    _check(_lib.OrthancPluginLookupDictionary(_ctx(), entry, _str(name, "name")))
    return {"Group": entry.group, "Element": entry.element, "ValueRepresentation": entry.vr,
            "MinMultiplicity": entry.minMultiplicity, "MaxMultiplicity": entry.maxMultiplicity}


# ---- RestOutput -----------------------------------------------------------------------------------

def RestOutput_SendHttpStatus(self, status, body=b"", bodySize=None):
    """Send an HTTP status with a body.  ``bodySize`` (the third argument of the official plugin
    4.0) is accepted and truncates the body; it can never read past it."""
    status = _int(status, "status", 0, 2**16 - 1)
    p, n = _buf(body, "body")
    if bodySize is not None:
        bodySize = _int(bodySize, "bodySize", 0, 2**32 - 1)
        n = min(n, bodySize)
    _lib.OrthancPluginSendHttpStatus(_ctx(), self._p(), status, p, n)


def _headers(headers, name):
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        raise TypeError("argument '%s' must be a dict of str, not %s" % (name, type(headers).__name__))
    keys, k_alive = str_array(list(headers.keys()), name)
    values, v_alive = str_array(list(headers.values()), name)
    return len(headers), keys, values, (k_alive, v_alive)


def RestOutput_SendMultipartItem2(self, answer, headers):
    """Send an item of a multipart answer with its own HTTP headers (a dict of str)."""
    p, n = _buf(answer, "answer")
    count, keys, values, alive = _headers(headers, "headers")
    _check(_lib.OrthancPluginSendMultipartItem2(_ctx(), self._p(), p, n, count, keys, values))


def RestApiGet2(uri, headers, afterPlugins):
    """GET on Orthanc's REST API with HTTP headers (a dict of str); returns the body (bytes)."""
    count, keys, values, alive = _headers(headers, "headers")
    t = _new_buffer()
    _check(_lib.OrthancPluginRestApiGet2(_ctx(), t, _str(uri, "uri"), count, keys, values,
                                         _int(afterPlugins, "afterPlugins", -2**31, 2**31 - 1)), t)
    return _take_buffer(t)


def _http_answer(call, *args):
    body = _new_buffer()
    headers = _new_buffer()
    status = ffi.new("uint16_t *")
    _check(call(_ctx(), body, headers, status, *args))
    h = _take_buffer(headers)
    return status[0], json.loads(h) if h else {}, _take_buffer(body)


def HttpClient(method, url, headers=None, body=b"", username=None, password=None, timeout=0,
               certificateFile=None, certificateKeyFile=None, certificateKeyPassword=None, pkcs11=False):
    """Make an HTTP request with Orthanc's HTTP client.

    Returns ``(status: int, headers: dict, body: bytes)``.  ``method`` is an ``orthanc.HttpMethod``."""
    count, keys, values, alive = _headers(headers, "headers")
    p, n = _buf(body, "body")
    return _http_answer(_lib.OrthancPluginHttpClient, _int(method, "method", 1, 4), _str(url, "url"),
                        count, keys, values, p, n, _optional_str(username, "username"),
                        _optional_str(password, "password"), _int(timeout, "timeout", 0, 2**32 - 1),
                        _optional_str(certificateFile, "certificateFile"),
                        _optional_str(certificateKeyFile, "certificateKeyFile"),
                        _optional_str(certificateKeyPassword, "certificateKeyPassword"), 1 if pkcs11 else 0)


def CallRestApi(method, uri, headers=None, body=b"", afterPlugins=False):
    """Call Orthanc's own REST API with any method and headers.

    Returns ``(status: int, headers: dict, body: bytes)``."""
    count, keys, values, alive = _headers(headers, "headers")
    p, n = _buf(body, "body")
    return _http_answer(_lib.OrthancPluginCallRestApi, _int(method, "method", 1, 4), _str(uri, "uri"),
                        count, keys, values, p, n, 1 if afterPlugins else 0)


def Peers_CallPeerApi(self, peerIndex, method, uri, headers=None, body=b"", timeout=0):
    """Call the REST API of an Orthanc peer. Returns ``(status, headers, body)``."""
    count, keys, values, alive = _headers(headers, "headers")
    p, n = _buf(body, "body")
    return _http_answer(_lib.OrthancPluginCallPeerApi, self._p(), _int(peerIndex, "peerIndex", 0, 2**32 - 1),
                        _int(method, "method", 1, 4), _str(uri, "uri"), count, keys, values, p, n,
                        _int(timeout, "timeout", 0, 2**32 - 1))


# ---- command line ---------------------------------------------------------------------------------

def GetCommandLineArgument(argument):
    """Get the value of one of the command-line arguments of Orthanc (``str``).

    argument: its index, from 0 to ``GetCommandLineArgumentsCount() - 1``; any other index raises
    ``ValueError`` (the SDK itself does not check it, and Orthanc would read past its arguments).
    """
    argument = _int(argument, "argument", 0, 2**32 - 1)
    count = _lib.OrthancPluginGetCommandLineArgumentsCount(_ctx())
    if argument >= count:
        raise ValueError("argument 'argument' is out of range: %d not in [0, %d]" % (argument, count - 1))
    return _take_string(_lib.OrthancPluginGetCommandLineArgument(_ctx(), argument))


# ---- chunked HTTP client --------------------------------------------------------------------------
# The request body and the answer are given to Orthanc as opaque pointers (integer handles) to a
# _Transfer; Orthanc's HTTP client calls the six C entry points below on the calling thread, while
# ChunkedHttpClient waits in C.  An exception of the body iterator or of the answer callable stops
# the transfer (the entry point returns an error) and ChunkedHttpClient raises it again.

_transfers = {}
_transfers_lock = threading.Lock()
_transfer_handles = itertools.count(1)


class _Transfer:
    __slots__ = ("body", "current", "answer", "chunks", "headers", "error")

    def __init__(self, body, answer):
        self.body = body          # iterator over the request's chunks, or None
        self.current = None       # the current request chunk, a cffi buffer kept alive here
        self.answer = answer      # callable(chunk), or None to collect the chunks
        self.chunks = []
        self.headers = {}
        self.error = None

    def advance(self):
        """The next non-empty chunk of the request body, or None at its end."""
        if self.body is not None:
            for chunk in self.body:
                b = _as_buffer(chunk, "body chunk") if not isinstance(chunk, str) else chunk.encode("utf-8")
                if len(b) > 2**32 - 1:
                    raise ValueError("a chunk of the body is too large (%d bytes, at most 2**32 - 1)" % len(b))
                if len(b):
                    self.current = ffi.from_buffer(b)
                    return
        self.body = None
        self.current = None


def _transfer(p):
    with _transfers_lock:
        return _transfers.get(pointer_handle(p))


def _failed(t, error_code=-1):
    t.error = sys.exc_info()[1]
    return error_code


@ffi.def_extern(error=-1)
def pythanc_OrthancPluginChunkedClientAnswerAddChunk(answer, chunk, size):
    t = _transfer(answer)
    if t is None:
        return -1
    try:
        b = data(chunk, size)
        if t.answer is None:
            t.chunks.append(b)
        else:
            t.answer(b)
        return 0
    except BaseException:
        return _failed(t)


@ffi.def_extern(error=-1)
def pythanc_OrthancPluginChunkedClientAnswerAddHeader(answer, key, value):
    t = _transfer(answer)
    if t is None:
        return -1
    try:
        t.headers[text(key)] = text(value)
        return 0
    except BaseException:
        return _failed(t)


@ffi.def_extern(error=1)
def pythanc_OrthancPluginChunkedClientRequestIsDone(request):
    t = _transfer(request)
    return 1 if t is None or t.current is None else 0


@ffi.def_extern(error=ffi.NULL)
def pythanc_OrthancPluginChunkedClientRequestGetChunkData(request):
    t = _transfer(request)
    return ffi.NULL if t is None or t.current is None else t.current


@ffi.def_extern(error=0)
def pythanc_OrthancPluginChunkedClientRequestGetChunkSize(request):
    t = _transfer(request)
    return 0 if t is None or t.current is None else len(t.current)


@ffi.def_extern(error=-1)
def pythanc_OrthancPluginChunkedClientRequestNext(request):
    t = _transfer(request)
    if t is None:
        return -1
    try:
        t.advance()
        return 0
    except BaseException:
        t.body = None
        t.current = None
        return _failed(t)


def ChunkedHttpClient(method, url, headers=None, body=None, answer=None, username=None, password=None, timeout=0,
                      certificateFile=None, certificateKeyFile=None, certificateKeyPassword=None, pkcs11=False):
    """(pythanc) Make an HTTP request with Orthanc's HTTP client, in chunked transfers: neither the
    request body nor the answer need to be in memory at once.

    ``method`` is an ``orthanc.HttpMethod``; ``headers`` a dict of str.  ``body`` (POST and PUT) is
    an iterable of ``bytes`` (or ``str``, sent as UTF-8) chunks, read one at a time while the
    request is sent (a generator reading a file, for instance); empty chunks are skipped.
    ``answer``, if given, is called as ``answer(chunk: bytes)`` for each chunk of the answer body as
    it arrives; otherwise the chunks are collected.

    Returns ``(status: int, headers: dict, chunks)``: ``chunks`` is the list of the answer's chunks
    (``b"".join(chunks)`` is the body), or ``None`` if ``answer`` was given.  An exception raised by
    the body iterator or by ``answer`` stops the transfer and is raised again here; a failure of
    the transfer itself raises ``OrthancException``, and so does an HTTP error status (Orthanc's
    HTTP client raises ``UNKNOWN_RESOURCE`` for 404, for instance).  The options of Orthanc's configuration
    (``HttpProxy``, ``HttpTimeout``, ``HttpsVerifyPeers``...) apply, as for ``HttpClient``."""
    method = _int(method, "method", 1, 4)
    url = _str(url, "url")
    if answer is not None and not callable(answer):
        raise TypeError("argument 'answer' must be callable (called with each chunk of the answer), not %s"
                        % type(answer).__name__)
    if body is not None:
        if isinstance(body, (bytes, bytearray, memoryview, str)):
            body = [body]
        try:
            body = iter(body)
        except TypeError:
            raise TypeError("argument 'body' must be an iterable of bytes chunks, not %s"
                            % type(body).__name__) from None
    count, keys, values, alive = _headers(headers, "headers")
    t = _Transfer(body, answer)
    t.advance()   # the first chunk: an error of the iterator is raised here, before any request
    handle = next(_transfer_handles)
    with _transfers_lock:
        _transfers[handle] = t
    status = ffi.new("uint16_t *")
    p = handle_pointer(handle)
    try:
        code = _lib.OrthancPluginChunkedHttpClient(
            _ctx(), p, _lib.pythanc_OrthancPluginChunkedClientAnswerAddChunk,
            _lib.pythanc_OrthancPluginChunkedClientAnswerAddHeader, status, method, url, count, keys, values, p,
            _lib.pythanc_OrthancPluginChunkedClientRequestIsDone,
            _lib.pythanc_OrthancPluginChunkedClientRequestGetChunkData,
            _lib.pythanc_OrthancPluginChunkedClientRequestGetChunkSize,
            _lib.pythanc_OrthancPluginChunkedClientRequestNext,
            _optional_str(username, "username"), _optional_str(password, "password"),
            _int(timeout, "timeout", 0, 2**32 - 1), _optional_str(certificateFile, "certificateFile"),
            _optional_str(certificateKeyFile, "certificateKeyFile"),
            _optional_str(certificateKeyPassword, "certificateKeyPassword"), 1 if pkcs11 else 0)
    finally:
        with _transfers_lock:
            _transfers.pop(handle, None)
    if t.error is not None:
        raise t.error
    _check(code)
    return status[0], t.headers, (None if answer is not None else t.chunks)


# ---- resources (SDK 1.12.9+) --------------------------------------------------------------------

def SetStableStatus(resourceId, stableStatus):
    """Change the "Stable" status of a patient, study or series (``resourceId``, Orthanc's ID) to
    ``orthanc.StableStatus.STABLE`` (0) or ``UNSTABLE`` (1).  Forcing an unstable resource to stable
    triggers its "Stable..." change now (and the callbacks of ``RegisterOnChangeCallback``); forcing
    an unstable one keeps it so until it is stable again.

    Returns the tuple ``(0, changed)``, as the official plugin 7.1 does: ``changed`` is ``1`` if the
    status has changed, ``0`` if the resource already had it.  Raises ``OrthancException`` if
    Orthanc reports an error (an unknown resource...)."""
    changed = ffi.new("uint8_t[1]")
    _check(_lib.OrthancPluginSetStableStatus(_ctx(), changed, _str(resourceId, "resourceId"),
                                             _int(stableStatus, "stableStatus", 0, 2**31 - 1)))
    return (0, 1 if changed[0] else 0)
