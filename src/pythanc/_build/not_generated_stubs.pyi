# Stubs of the hand-written entry points (appended to the generated orthanc.pyi), each with a short
# docstring; the full documentation is the docstring of the function itself.
# Keep in step with pythanc/_handwritten.py, pythanc/_callbacks.py and pythanc/_callbacks_more.py.
# An entry whose C function (not_generated.HANDWRITTEN) the header lacks is left out by the generator.

RestCallback = Callable[..., None]
"""``callback(output: RestOutput, uri: str, *, method: str, groups: Tuple[str, ...], headers: Dict[str, str],
get: Dict[str, str] (GET only), body: bytes (POST/PUT only))``"""

def RegisterRestCallback(pathRegularExpression: str, callback: RestCallback, *, worker: bool = ...) -> None:
    """Call ``callback(output, uri, **request)`` for the URIs that fully match the regular expression.

    ``worker=True`` runs it in a worker process."""
def RegisterOnChangeCallback(callback: Callable[[int, int, str], Any], *, worker: bool = ...) -> None:
    """Call ``callback(changeType, level, resourceId)`` for each change in Orthanc, in order."""
def RegisterOnStoredInstanceCallback(callback: Callable[[DicomInstance, str], Any], *, worker: bool = ...) -> None:
    """Call ``callback(instance, instanceId)`` after each instance is stored."""
def GetSharedValue(key: str, default: Any = ...) -> Any:
    """pythanc: the value stored under ``key`` by any process (Orthanc's or a worker), or ``default``."""
def SetSharedValue(key: str, value: Any) -> None:
    """pythanc: store ``value`` under ``key`` for every process; ``None`` removes the key."""
def IncrementSharedValue(key: str, delta: Union[int, float] = ...) -> Union[int, float]:
    """pythanc: add ``delta`` to the number stored under ``key`` (0 if none), atomically; returns the new value."""
def GetMetadataWithRevision(resource: str, name: Union[str, int]) -> Tuple[Optional[str], Optional[str]]:
    """pythanc: ``(value, revision)`` of a resource's metadata (``resource`` like ``'/studies/<id>'``), or ``(None, None)``."""
def CompareAndSetMetadata(resource: str, name: Union[str, int], value: str, revision: Optional[str]) -> Optional[str]:
    """pythanc: write the metadata only if it still has ``revision`` (``None``: only if absent); the new revision, or ``None`` if another writer came first."""
def IncrementMetadata(resource: str, name: Union[str, int], delta: int = ..., attempts: int = ...) -> int:
    """pythanc: add ``delta`` to the integer in a resource's metadata, atomically across every Orthanc process of the database."""
def IsWorkerProcess() -> bool:
    """pythanc: ``True`` in a worker process, ``False`` in Orthanc's process."""
def RegisterIncomingHttpRequestFilter(callback: Callable[..., bool]) -> None:
    """Call ``callback(uri, method=, ip=, headers=, get=)`` before each HTTP request: ``False`` answers 403."""
def RegisterHttpAuthentication(callback: Callable[..., Union[int, Tuple[int, Union[str, bytes]]]]) -> None:
    """pythanc (SDK 1.12.9+): call ``callback(uri, ip=, headers=, get=)`` for each HTTP request; it returns an
    ``orthanc.HttpAuthenticationStatus``, ``(GRANTED, payload)`` or ``(REDIRECT, path)``.  Errors refuse the request."""
def RegisterAuditLogHandler(callback: Callable[[str, str, int, str, str, bytes], Any], *, worker: bool = ...) -> None:
    """pythanc (SDK 1.12.9+): call ``callback(sourcePlugin, userId, resourceType, resourceId, action, logData)``
    for each audit log that a plugin emits."""
def RegisterReceivedInstanceCallback(callback: Callable[[bytes, int], Tuple[int, Optional[bytes]]]) -> None:
    """Call ``callback(dicom, origin)`` for each received instance, before it is stored.

    It returns ``(action, modified_dicom or None)``, ``action`` a value of ``orthanc.ReceivedInstanceAction``."""
def RegisterIncomingCStoreInstanceFilter(callback: Callable[[DicomInstance], int]) -> None:
    """Call ``callback(instance)`` for each C-STORE: 0 stores it, another DIMSE status rejects it."""
def RegisterIncomingDicomInstanceFilter(callback: Callable[[DicomInstance], Union[bool, int]]) -> None:
    """Call ``callback(instance)`` for each received instance: ``False`` discards it."""
def RegisterFindCallback(callback: Callable[[FindAnswers, FindQuery, str, str], Any]) -> None:
    """Answer C-FIND requests: ``callback(answers, query, issuerAet, calledAet)``."""
def RegisterWorklistCallback(callback: Callable[[WorklistAnswers, WorklistQuery, str, str], Any]) -> None:
    """Answer modality worklist requests: ``callback(answers, query, issuerAet, calledAet)``."""
def RegisterFindCallback2(callback: Callable[[FindAnswers, FindQuery, DicomConnection], Any]) -> None:
    """Answer C-FIND requests: ``callback(answers, query, connection)``, the connection valid during the call only."""
def RegisterWorklistCallback2(callback: Callable[[WorklistAnswers, WorklistQuery, DicomConnection], Any]) -> None:
    """Answer modality worklist requests: ``callback(answers, query, connection)``."""
def RegisterMoveCallback(callback: Callable[..., Any]) -> None:
    """Serve C-MOVE requests: ``callback(**request)`` sends the files itself."""
def RegisterMoveCallback2(create: Callable[..., Any], get_move_size: Callable[[Any], int],
                          apply_move: Callable[[Any], Any], free_move: Callable[[Any], Any]) -> None:
    """Serve C-MOVE requests one sub-operation at a time, through a driver that ``create(**request)`` returns."""
def RegisterMoveCallback3(create: Callable[..., Any], get_move_size: Callable[[Any], int],
                          apply_move: Callable[[Any], Any], free_move: Callable[[Any], Any]) -> None:
    """As ``RegisterMoveCallback2``, with ``create(connection, **request)`` given the DICOM connection."""
def RegisterStorageArea(create: Callable[[str, int, bytes], Any], read: Callable[[str, int], bytes],
                        remove: Callable[[str, int], Any]) -> None:
    """Replace Orthanc's storage area with ``create(uuid, type, data)``, ``read(uuid, type)`` and ``remove(uuid, type)``."""
def RegisterStorageArea2(create: Callable[[str, int, bytes], Any], read_whole: Callable[[str, int], bytes],
                         read_range: Callable[[str, int, int, int], bytes], remove: Callable[[str, int], Any]) -> None:
    """pythanc: ``RegisterStorageArea`` with range reads, ``read_range(uuid, type, start, size)``."""
def RegisterStorageArea3(create: Callable[[str, int, int, bytes, Optional[DicomInstance]], Tuple[int, Optional[bytes]]],
                         read: Callable[[str, int, int, int, bytes], Tuple[int, bytes]],
                         remove: Callable[[str, int, bytes], int]) -> None:
    """Replace Orthanc's storage area with one whose files carry custom data: ``create(uuid, type, compression,
    data, instance)`` returns ``(errorCode, customData)``, ``read(uuid, type, start, size, customData)``
    ``(errorCode, data)`` and ``remove(uuid, type, customData)`` an error code."""
def RegisterRefreshMetricsCallback(callback: Callable[[], Any]) -> None:
    """Call ``callback()`` whenever Orthanc's metrics are read."""
def RegisterStorageCommitmentScpCallback(scp: Callable[..., Any], lookup: Callable[[str, str, Any], int]) -> None:
    """Serve storage commitment requests: ``scp(...)`` returns a handler, ``lookup(sopClassUid, sopInstanceUid, handler)``
    a value of ``orthanc.StorageCommitmentFailureReason``."""
def RegisterStorageCommitmentScpCallback2(scp: Callable[..., Any], lookup: Callable[[str, str, Any], int]) -> None:
    """As ``RegisterStorageCommitmentScpCallback``, with ``scp(jobId, transactionUid, sopClassUids, sopInstanceUids,
    connection)`` given the DICOM connection."""
def RegisterDecodeImageCallback(callback: Callable[[bytes, int], Optional[Image]]) -> None:
    """Decode DICOM frames: ``callback(dicom, frameIndex)`` returns an ``orthanc.Image``, or ``None`` for Orthanc's decoder."""
def RegisterTranscoderCallback(callback: Callable[[bytes, List[str], bool], Optional[bytes]]) -> None:
    """Transcode DICOM files: ``callback(dicom, allowedSyntaxes, allowNewSopInstanceUid)`` returns bytes, or ``None``."""
def RegisterChunkedRestCallback(pathRegularExpression: str, get: Optional[RestCallback] = ...,
                                post: Optional[Callable[..., Any]] = ..., delete: Optional[RestCallback] = ...,
                                put: Optional[Callable[..., Any]] = ...) -> None:
    """Register a route whose POST and PUT bodies reach Python in chunks."""
def RegisterWebDavCollection(uri: str, *callbacks: Callable[..., Any]) -> None:
    """Serve a WebDAV collection at ``uri`` through six callbacks."""
def CreateJob(job_type: str, step: Callable[[], int], progress: Optional[Callable[[], float]] = ...,
              content: Optional[Callable[[], Any]] = ..., serialized: Optional[Callable[[], Any]] = ...,
              stop: Optional[Callable[[int], Any]] = ..., reset: Optional[Callable[[], Any]] = ...) -> Job:
    """pythanc: a job for Orthanc's jobs engine, made of Python callables; submit it with ``SubmitJob``."""
def RegisterJobsUnserializer(callback: Callable[[str, str], Optional[Job]]) -> None:
    """Rebuild saved jobs at start-up: ``callback(jobType, serialized)`` returns an ``orthanc.Job`` or ``None``."""
def LookupDictionary(name: str) -> Dict[str, int]:
    """Look a DICOM tag up in Orthanc's dictionary, by name or ``'gggg,eeee'``; raises ``OrthancException`` if unknown."""
def CreateImageFromBuffer(format: int, width: int, height: int, pitch: int, buffer: _Buffer) -> Image:
    """A new image of the given pixel format and size, from a copy of ``buffer`` (``pitch * height`` bytes)."""
def CreateImageAccessor(format: int, width: int, height: int, pitch: int, buffer: _Buffer) -> Image:
    """pythanc: an image over a copy of ``buffer`` (``pitch`` bytes per row) that the image holds and frees."""
def ChunkedHttpClient(method: int, url: str, headers: Optional[Dict[str, str]] = ...,
                      body: Optional[Iterable[Union[bytes, str]]] = ..., answer: Optional[Callable[[bytes], Any]] = ...,
                      username: Optional[str] = ..., password: Optional[str] = ..., timeout: int = ...,
                      certificateFile: Optional[str] = ..., certificateKeyFile: Optional[str] = ...,
                      certificateKeyPassword: Optional[str] = ..., pkcs11: bool = ...
                      ) -> Tuple[int, Dict[str, str], Optional[List[bytes]]]:
    """pythanc: an HTTP request whose body is sent chunk by chunk from ``body`` and whose answer chunks go to
    ``answer(chunk)`` (or are returned as a list)."""
def RestApiGet2(uri: str, headers: Dict[str, str], afterPlugins: int) -> bytes:
    """GET on Orthanc's REST API with HTTP headers; returns the body."""
def HttpClient(method: int, url: str, headers: Optional[Dict[str, str]] = ..., body: _Buffer = ...,
               username: Optional[str] = ..., password: Optional[str] = ..., timeout: int = ...,
               certificateFile: Optional[str] = ..., certificateKeyFile: Optional[str] = ...,
               certificateKeyPassword: Optional[str] = ..., pkcs11: bool = ...) -> Tuple[int, Dict[str, str], bytes]:
    """Make an HTTP request with Orthanc's HTTP client; returns ``(status, headers, body)``."""
def CallRestApi(method: int, uri: str, headers: Optional[Dict[str, str]] = ..., body: _Buffer = ...,
                afterPlugins: bool = ...) -> Tuple[int, Dict[str, str], bytes]:
    """Call Orthanc's own REST API with any method and headers; returns ``(status, headers, body)``."""
def EncodeDicomWebJson(dicom: _Buffer) -> str:
    """Convert a DICOM file to DICOMweb JSON."""
def EncodeDicomWebXml(dicom: _Buffer) -> str:
    """Convert a DICOM file to DICOMweb XML."""
def EncodeDicomWebJson2(dicom: _Buffer) -> str:
    """Convert a DICOM file to DICOMweb JSON."""
def EncodeDicomWebXml2(dicom: _Buffer) -> str:
    """Convert a DICOM file to DICOMweb XML."""
def GetCommandLineArgument(argument: int) -> str:
    """The command-line argument of Orthanc at index ``argument``; ``ValueError`` if there is none."""
def SetStableStatus(resourceId: str, stableStatus: int) -> Tuple[int, int]:
    """Force a resource stable or unstable; returns ``(0, 1)`` if its status changed, ``(0, 0)`` otherwise."""
