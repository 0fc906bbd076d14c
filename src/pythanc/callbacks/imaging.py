"""Image decoding and transcoding: ``orthanc.RegisterDecodeImageCallback`` and
``RegisterTranscoderCallback``.  Called in registration order; the first that returns something
other than ``None`` wins.
"""

from .._generated import api
from ..core.context import NULL
from ..core.convert import text_array, data, buffer_into, release_ownership, is_bytes
from ..core.log import log_error, log_exception
from .registry import STORE, ERR_SUCCESS, ERR_PLUGIN, ERR_NOT_IMPLEMENTED, c_entry, append, sdk_entry

__all__ = ['RegisterDecodeImageCallback', 'RegisterTranscoderCallback']

# Why the first decoder or transcoder cannot be registered once Orthanc runs (see registry.sdk_registration).
_DECODER_LOCK = ("Orthanc 1.10 registers decoders and transcoders under the lock that it holds while it "
                 "decodes or transcodes with them, and a decoder or transcoder (or a nested decoding) that "
                 "registered one would wait for that lock for ever")


def RegisterDecodeImageCallback(callback):
    """(pythanc) Register ``callback(dicom: bytes, frame: int) -> orthanc.Image or None`` to decode
    DICOM frames (previews, ``/frames/N/...``).  Return an image that Python owns (from
    ``orthanc.CreateImage``, ``CreateImageFromBuffer``, ``UncompressImage``...): it is handed over
    to Orthanc and becomes invalid in Python.  ``None`` lets Orthanc's own decoder work.

    Several decoders are tried in registration order: the first one returning an image wins.  An
    exception or a wrong result is logged and the next decoder (eventually Orthanc's) is tried."""
    append("decoders", callback, "Python image decoder callback", "RegisterDecodeImageCallback")


@c_entry("Python image decoder callback", ERR_PLUGIN)
def pythanc_OrthancPluginDecodeImageCallback(target, dicom, size, frame):
    target[0] = NULL
    decoders = list(STORE.lists["decoders"])
    if not decoders:
        return ERR_NOT_IMPLEMENTED
    buf = data(dicom, size)
    failed = False
    for f in decoders:
        try:
            image = f(buf, int(frame))
            if image is None:
                continue
            target[0] = release_ownership(image, api.Image, "the result of the image decoder")
            return ERR_SUCCESS
        except BaseException:
            log_exception("Python image decoder callback")
            failed = True
    return ERR_PLUGIN if failed else ERR_NOT_IMPLEMENTED


def RegisterTranscoderCallback(callback):
    """(pythanc) Register ``callback(buffer: bytes, allowed_syntaxes: list[str],
    allow_new_sop_instance_uid: bool) -> bytes or None`` to transcode DICOM files: return the file
    in one of the allowed transfer syntaxes, or ``None`` to let the next transcoder (eventually
    Orthanc's own) do it.  An exception is logged and counts as ``None``.

    Several transcoders are tried in registration order; the first that returns bytes wins."""
    append("transcoders", callback, "Python transcoder callback", "RegisterTranscoderCallback")


@c_entry("Python transcoder callback", ERR_PLUGIN)
def pythanc_OrthancPluginTranscoderCallback(target, buffer, size, allowed, count, allow_new_uid):
    transcoders = list(STORE.lists["transcoders"])
    if not transcoders:
        return ERR_NOT_IMPLEMENTED
    buf = data(buffer, size)
    syntaxes = text_array(allowed, count)
    failed = False
    for f in transcoders:
        try:
            r = f(buf, list(syntaxes), bool(allow_new_uid))
            if r is None:
                continue
            if not is_bytes(r):
                log_error("The Python transcoder callback has not returned bytes or None (it returned %s)"
                          % type(r).__name__)
                failed = True
                continue
            buffer_into(target, r, "transcoded DICOM")
            return ERR_SUCCESS
        except BaseException:
            log_exception("Python transcoder callback")
            failed = True
    return ERR_PLUGIN if failed else ERR_NOT_IMPLEMENTED


sdk_entry("decoders", "OrthancPluginRegisterDecodeImageCallback", "pythanc_OrthancPluginDecodeImageCallback",
          at_start_only=_DECODER_LOCK)
sdk_entry("transcoders", "OrthancPluginRegisterTranscoderCallback", "pythanc_OrthancPluginTranscoderCallback",
          at_start_only=_DECODER_LOCK)
