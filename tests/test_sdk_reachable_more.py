# SPDX-License-Identifier: GPL-3.0-or-later
"""SDK functions that had no Python form before (issue 14, coverage): ``orthanc.ChunkedHttpClient``
(a streaming HTTP client: Orthanc's own REST API on 127.0.0.1, a DICOM file POSTed in chunks from
a generator, a big answer received chunk by chunk) and ``orthanc.CreateImageAccessor`` (an image
over a copy of a Python buffer that the image holds), against a real Orthanc."""

import hashlib
import json

import pytest

from conftest import needs_sdk


def big_dicom(path, rows=1024, columns=1024):
    """A DICOM file of about 2 MB (16-bit pixels), written with pydicom."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "CHUNKED"
    ds.PatientName = "Chunked^Client"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = bytes(range(256)) * (rows * columns * 2 // 256)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    with open(path, "rb") as f:
        return f.read()


CHUNKED = r'''
import hashlib, json, orthanc, urllib.parse
BASE = "http://127.0.0.1:%d" % json.loads(orthanc.GetConfiguration())["HttpPort"]

def Upload(output, uri, **request):
    path = urllib.parse.unquote(request["get"]["path"])   # (Orthanc 1.13 decodes it already)
    sent = []
    def chunks():                       # the file is read while it is sent
        with open(path, "rb") as f:
            while True:
                b = f.read(64 * 1024)
                if not b:
                    return
                sent.append(len(b))
                yield b
    status, headers, answer = orthanc.ChunkedHttpClient(
        orthanc.HttpMethod.POST, BASE + "/instances", {"Content-Type": "application/dicom"}, chunks())
    output.AnswerBuffer(json.dumps({"status": status, "sent": sent, "answer": json.loads(b"".join(answer)),
                                    "contentType": headers.get("Content-Type")}), "application/json")

def Download(output, uri, **request):
    received = []
    status, headers, chunks = orthanc.ChunkedHttpClient(orthanc.HttpMethod.GET, BASE + urllib.parse.unquote(request["get"]["uri"]),
                                                        answer=received.append)
    body = b"".join(received)
    output.AnswerBuffer(json.dumps({"status": status, "returned": chunks, "chunks": len(received),
                                    "size": len(body), "sha1": hashlib.sha1(body).hexdigest()}),
                        "application/json")

def Failures(output, uri, **request):
    seen = []
    def failing_body():
        yield b"abc"
        raise ValueError("deliberate failure in the body")
    try:
        orthanc.ChunkedHttpClient(orthanc.HttpMethod.POST, BASE + "/instances", body=failing_body())
    except ValueError as e:
        seen.append("body: %s" % e)
    def failing_answer(chunk):
        raise KeyError("deliberate failure in the answer")
    try:
        orthanc.ChunkedHttpClient(orthanc.HttpMethod.GET, BASE + "/system", answer=failing_answer)
    except KeyError as e:
        seen.append("answer: %s" % e)
    for kwargs in ({"body": 42}, {"answer": "not callable"}, {"headers": [1]}):
        try:
            orthanc.ChunkedHttpClient(orthanc.HttpMethod.POST, BASE + "/instances", **kwargs)
        except TypeError as e:
            seen.append("TypeError: %s" % e)
    try:
        orthanc.ChunkedHttpClient(orthanc.HttpMethod.GET, "http://127.0.0.1:1/nothing-listens-here")
    except orthanc.OrthancException as e:
        seen.append("OrthancException")
    try:
        orthanc.ChunkedHttpClient(orthanc.HttpMethod.GET, BASE + "/nowhere")
    except orthanc.OrthancException as e:
        seen.append("404: %s" % (e.args[0] == orthanc.ErrorCode.UNKNOWN_RESOURCE))
    output.AnswerBuffer(json.dumps(seen), "application/json")

orthanc.RegisterRestCallback("/chunked/upload", Upload)
orthanc.RegisterRestCallback("/chunked/download", Download)
orthanc.RegisterRestCallback("/chunked/failures", Failures)
'''


@needs_sdk("OrthancPluginChunkedHttpClient")
def test_chunked_http_client(orthanc_server, write_script, tmp_path):
    path = str(tmp_path / "big.dcm")
    content = big_dicom(path)
    server = orthanc_server(script=write_script(CHUNKED))
    r = server.get("/chunked/upload", params={"path": path})
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["status"] == 200
    assert len(up["sent"]) > 10 and sum(up["sent"]) == len(content)       # really sent in chunks
    iid = up["answer"]["ID"]
    assert up["answer"]["Status"] == "Success"
    # what Orthanc stored is the file, byte for byte
    assert server.get("/instances/%s/file" % iid).content == content
    # a big answer, received chunk by chunk
    down = server.get("/chunked/download", params={"uri": "/instances/%s/file" % iid}).json()
    assert down["status"] == 200 and down["returned"] is None
    assert down["size"] == len(content) and down["sha1"] == hashlib.sha1(content).hexdigest()
    assert down["chunks"] > 1
    # errors: the script's own exceptions come back to it; wrong arguments name the argument;
    # a failed connection or an HTTP error status (as Orthanc's HTTP client sees it) is an OrthancException
    seen = server.get("/chunked/failures").json()
    assert seen[0] == "body: deliberate failure in the body"
    assert seen[1] == "answer: 'deliberate failure in the answer'"
    assert "argument 'body'" in seen[2] and "argument 'answer'" in seen[3] and "headers" in seen[4]
    assert seen[5] == "OrthancException"
    assert seen[6] == "404: True"
    assert server.get("/system").status_code == 200


ACCESSOR = r'''
import json, orthanc

def Accessor(output, uri, **request):
    pixels = bytearray(b"\x01\x02\x03\x04\xee\xee" b"\x05\x06\x07\x08\xee\xee" b"\x09\x0a\x0b\x0c\xee\xee")
    image = orthanc.CreateImageAccessor(orthanc.PixelFormat.GRAYSCALE8, 4, 3, 6, pixels)
    pixels[0] = 0xff          # the image holds its own copy
    result = {"width": image.GetImageWidth(), "height": image.GetImageHeight(), "pitch": image.GetImagePitch(),
              "format": int(image.GetImagePixelFormat()), "buffer": list(image.GetImageBuffer())}
    rgb = image.ConvertPixelFormat(orthanc.PixelFormat.RGB24)
    result["rgb"] = list(rgb.GetImageBuffer()[:12])
    del image
    errors = []
    for args in ((orthanc.PixelFormat.GRAYSCALE8, 4, 3, 6, b"short"), (orthanc.PixelFormat.GRAYSCALE8, 4, 3, 6, None),
                 (orthanc.PixelFormat.GRAYSCALE8, -1, 3, 6, bytes(18))):
        try:
            orthanc.CreateImageAccessor(*args)
        except (TypeError, ValueError) as e:
            errors.append(str(e))
    result["errors"] = errors
    output.AnswerBuffer(json.dumps(result), "application/json")

def Decode(dicom, frame):
    return orthanc.CreateImageAccessor(orthanc.PixelFormat.GRAYSCALE8, 2, 2, 2, b"\x00\x10\x20\x30")

orthanc.RegisterRestCallback("/accessor", Accessor)
orthanc.RegisterDecodeImageCallback(Decode)
'''


@needs_sdk("OrthancPluginCreateImageAccessor")
def test_create_image_accessor(orthanc_server, write_script, testdata):
    server = orthanc_server(script=write_script(ACCESSOR))
    r = server.get("/accessor")
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["width"], got["height"], got["pitch"]) == (4, 3, 6)
    assert got["buffer"] == [1, 2, 3, 4, 0xee, 0xee, 5, 6, 7, 8, 0xee, 0xee, 9, 10, 11, 12, 0xee, 0xee]
    assert got["rgb"] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert "argument 'buffer' holds 5 bytes" in got["errors"][0]
    assert "argument 'buffer'" in got["errors"][1]
    assert "argument 'width'" in got["errors"][2]
    # an image over Python's memory cannot be handed over to Orthanc (a decoder's result): refused,
    # logged, and Orthanc serves the request with its own decoder
    iid = server.upload(testdata("ct-a1-1.dcm"))["ID"]
    r = server.get("/instances/%s/preview" % iid)
    server.wait_for_log(r"CreateImageAccessor\): Orthanc cannot take it over")
    assert r.status_code in (200, 500)
    assert server.get("/system").status_code == 200


@pytest.mark.parametrize("name", ["ChunkedHttpClient", "CreateImageAccessor"])
def test_documented(orthanc_server, write_script, name):
    script = "import orthanc\northanc.LogWarning('doc of %%s: %%r' %% (%r, (getattr(orthanc, %r).__doc__ or '')[:60]))\n" \
             % (name, name)
    server = orthanc_server(script=write_script(script))
    server.wait_for_log(r"doc of %s: ['\"]\(pythanc\) \w" % name)
