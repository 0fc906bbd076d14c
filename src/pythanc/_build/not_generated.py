"""The hand-written exceptions to the generator, as data.

Every function of the SDK header is either generated from the code model, or
listed here: ``HANDWRITTEN`` maps a C function to the Python name(s) that
reach it (implemented by hand in ``pythanc/sdk/handwritten.py`` or
``pythanc/callbacks/``), ``INTERNAL`` lists the functions pythanc calls for
the user (so they are reachable, but not by name), and ``NOT_APPLICABLE`` gives
the reason why a function has no Python form, and ``TO_HANDWRITE`` the
functions that take SDK callbacks and wait for hand-written run-time code.
``pythanc coverage`` prints this table.

The generator also reads ``EXTERN_PYTHON``: the SDK callback types for which
the plugin library gets a C entry point implemented in Python (those the
header lacks are left out).
"""

# C function -> Python entry point(s) that call it.  "Class.Method" for methods.
HANDWRITTEN = {
    # callbacks (pythanc/callbacks/, one module per family)
    "OrthancPluginRegisterRestCallbackNoLock": ["RegisterRestCallback"],
    "OrthancPluginRegisterOnChangeCallback": ["RegisterOnChangeCallback"],
    "OrthancPluginRegisterOnStoredInstanceCallback": ["RegisterOnStoredInstanceCallback"],
    "OrthancPluginRegisterIncomingHttpRequestFilter2": ["RegisterIncomingHttpRequestFilter"],
    "OrthancPluginRegisterReceivedInstanceCallback": ["RegisterReceivedInstanceCallback"],
    "OrthancPluginRegisterIncomingCStoreInstanceFilter": ["RegisterIncomingCStoreInstanceFilter"],
    "OrthancPluginRegisterIncomingDicomInstanceFilter": ["RegisterIncomingDicomInstanceFilter"],
    "OrthancPluginRegisterFindCallback": ["RegisterFindCallback"],
    "OrthancPluginRegisterWorklistCallback": ["RegisterWorklistCallback"],
    "OrthancPluginRegisterMoveCallback": ["RegisterMoveCallback", "RegisterMoveCallback2"],
    "OrthancPluginRegisterStorageArea": ["RegisterStorageArea"],
    "OrthancPluginRegisterStorageArea2": ["RegisterStorageArea2"],
    "OrthancPluginRegisterStorageArea3": ["RegisterStorageArea3"],
    "OrthancPluginRegisterRefreshMetricsCallback": ["RegisterRefreshMetricsCallback"],
    "OrthancPluginRegisterStorageCommitmentScpCallback": ["RegisterStorageCommitmentScpCallback"],
    # SDK 1.12.10+ (Debian: 1.13.0): the same handlers, given the DICOM connection (orthanc.DicomConnection);
    # the official module's RegisterMoveCallback2 is the four-callback form of OrthancPluginRegisterMoveCallback,
    # so the C function's version 2 is its RegisterMoveCallback3
    "OrthancPluginRegisterFindCallback2": ["RegisterFindCallback2"],
    "OrthancPluginRegisterWorklistCallback2": ["RegisterWorklistCallback2"],
    "OrthancPluginRegisterMoveCallback2": ["RegisterMoveCallback3"],
    "OrthancPluginRegisterStorageCommitmentScpCallback2": ["RegisterStorageCommitmentScpCallback2"],
    "OrthancPluginRegisterDecodeImageCallback": ["RegisterDecodeImageCallback"],
    "OrthancPluginRegisterTranscoderCallback": ["RegisterTranscoderCallback"],
    "OrthancPluginRegisterChunkedRestCallback": ["RegisterChunkedRestCallback"],
    "OrthancPluginRegisterWebDavCollection": ["RegisterWebDavCollection"],
    # SDK 1.12.9+: not wrapped by the official plugin (7.1)
    "OrthancPluginRegisterHttpAuthentication": ["RegisterHttpAuthentication"],
    "OrthancPluginRegisterAuditLogHandler": ["RegisterAuditLogHandler"],
    "OrthancPluginCreateJob": ["CreateJob"],
    "OrthancPluginRegisterJobsUnserializer": ["RegisterJobsUnserializer"],
    "OrthancPluginSubmitJob": ["Job.SubmitJob"],  # Orthanc takes the job over: detach Python's destructor
    # functions with out-parameters, arrays or raw pointers (pythanc/sdk/handwritten.py; RestOutput.AnswerBuffer in pythanc/callbacks/rest.py)
    "OrthancPluginGetInstanceData": ["DicomInstance.GetInstanceData"],
    "OrthancPluginGetImageBuffer": ["Image.GetImageBuffer", "CreateImageFromBuffer"],
    "OrthancPluginGetFindQueryTag": ["FindQuery.GetFindQueryTagGroup", "FindQuery.GetFindQueryTagElement"],
    "OrthancPluginLookupDictionary": ["LookupDictionary"],
    # the SDK does not check the index (Orthanc reads past argv): checked against the count first
    "OrthancPluginGetCommandLineArgument": ["GetCommandLineArgument"],
    "OrthancPluginSendHttpStatus": ["RestOutput.SendHttpStatus"],
    # the first answer of a REST callback is sent by the C entry point after Python returns
    "OrthancPluginAnswerBuffer": ["RestOutput.AnswerBuffer"],
    "OrthancPluginRestApiGet2": ["RestApiGet2"],
    "OrthancPluginSendMultipartItem2": ["RestOutput.SendMultipartItem2"],
    "OrthancPluginHttpClient": ["HttpClient"],
    # pythanc: the request body from an iterable of chunks, the answer to a callable (six C entry points)
    "OrthancPluginChunkedHttpClient": ["ChunkedHttpClient"],
    # pythanc: an image over a copy of the buffer that the Python Image object holds, freed with it
    "OrthancPluginCreateImageAccessor": ["CreateImageAccessor"],
    "OrthancPluginCallPeerApi": ["Peers.CallPeerApi"],
    "OrthancPluginCallRestApi": ["CallRestApi"],
    "OrthancPluginEncodeDicomWebJson": ["EncodeDicomWebJson"],
    "OrthancPluginEncodeDicomWebXml": ["EncodeDicomWebXml"],
    "OrthancPluginEncodeDicomWebJson2": ["EncodeDicomWebJson2"],
    "OrthancPluginEncodeDicomWebXml2": ["EncodeDicomWebXml2"],
    "OrthancPluginGetInstanceDicomWebJson": ["DicomInstance.GetInstanceDicomWebJson"],
    "OrthancPluginGetInstanceDicomWebXml": ["DicomInstance.GetInstanceDicomWebXml"],
    # the official module returns the tuple (0, 1 if the status changed else 0), not a Boolean
    "OrthancPluginSetStableStatus": ["SetStableStatus"],
}

# Called by pythanc on the user's behalf: reachable, but not a name of their own.
INTERNAL = {
    "OrthancPluginFreeString": "every string that Orthanc allocates is copied into a Python str, then freed",
    "OrthancPluginFreeMemoryBuffer": "every memory buffer is copied into Python bytes, then freed",
    "OrthancPluginFreeMemoryBuffer64": "every 64-bit memory buffer is copied into Python bytes, then freed",
    "OrthancPluginCheckVersion": "called at initialisation; also generated as orthanc.CheckVersion",
    "OrthancPluginCreateJob2": "orthanc.CreateJob uses it where the SDK has it, for the jobs that are not saved "
                               "(Orthanc up to 1.13.0 at least reads the serialised form of such a job through "
                               "its content callback); OrthancPluginCreateJob otherwise",
}

# The SDK version that introduced each C function of these tables that the oldest supported header
# (Orthanc 1.10.1) lacks: a header older than that has no such function, and pythanc no name for it.
# (Newer headers mark their functions with ORTHANC_PLUGIN_SINCE_SDK; tests/test_generator.py checks
# this table against those marks and against every header under test.)
SINCE_SDK = {
    "OrthancPluginCreateJob2": (1, 11, 3),
    "OrthancPluginRegisterDatabaseBackendV4": (1, 12, 0),
    "OrthancPluginRegisterStorageArea3": (1, 12, 8),
    "OrthancPluginRegisterAuditLogHandler": (1, 12, 9),
    "OrthancPluginRegisterHttpAuthentication": (1, 12, 9),
    "OrthancPluginSetStableStatus": (1, 12, 9),
    "OrthancPluginRegisterFindCallback2": (1, 12, 10),
    "OrthancPluginRegisterWorklistCallback2": (1, 12, 10),
    "OrthancPluginRegisterMoveCallback2": (1, 12, 10),
    "OrthancPluginRegisterStorageCommitmentScpCallback2": (1, 12, 10),
}

# No Python form, with the reason.
NOT_APPLICABLE = {
    "OrthancPluginRegisterRestCallback": "superseded by the NoLock variant, which orthanc.RegisterRestCallback uses "
                                          "(Python serialises what must be serialised)",
    "OrthancPluginRegisterIncomingHttpRequestFilter": "superseded by version 2 (with GET arguments), which "
                                                      "orthanc.RegisterIncomingHttpRequestFilter uses",
    "OrthancPluginCreateMemoryBuffer64": "a memory buffer is bytes in Python; CreateMemoryBuffer is kept for "
                                         "compatibility with the official plugin",
    # SDK 1.12.0+
    "OrthancPluginRegisterDatabaseBackendV4": "replaces Orthanc's whole index database: Orthanc sends the back-end "
                                              "requests serialised with the protobuf messages of "
                                              "OrthancDatabasePlugin.proto, which the SDK header does not describe; "
                                              "database back-ends are native plugins (the official Python plugin "
                                              "has no form of it either)",
}

# Functions that take SDK callbacks and have no hand-written run-time code yet (the generator never
# generates a function that takes a callback): C function -> the Python name it will have (the
# official module's name where it has one).  ``pythanc coverage`` lists them as "to hand-write".
TO_HANDWRITE = {
    # none: every function of the three supported headers that takes a callback is hand-written
}

# Names of the official module kept as aliases of another method: "Class.alias" -> "Class.method".
# The short method names of the official plugin 6.0+ (FindMatcher.IsMatch for
# FindMatcher.FindMatcherIsMatch, StorageArea.Create, KeysValuesIterator.Next...) are made by rule
# (generate.method_aliases): list here only the names that no rule gives.
ALIASES = {}

# Raw image buffers passed without their size: the size the SDK will read, as a Python
# expression over the other arguments, checked before the call (an image of ``pitch`` bytes per
# row and ``height`` rows).
IMPLICIT_BUFFER_SIZES = {
    "OrthancPluginCompressPngImage": "pitch * height",
    "OrthancPluginCompressJpegImage": "pitch * height",
    "OrthancPluginCompressAndAnswerPngImage": "pitch * height",
    "OrthancPluginCompressAndAnswerJpegImage": "pitch * height",
}

# What an out-parameter means where the SDK's text says otherwise than Orthanc does: (C function,
# C parameter) -> the text of the docstring's "Returns" entry.  Checked against Orthanc by
# tests/test_sdk_113.py (`while it.Next()`, the same results as the official plugin's).
OUTPUT_MEANINGS = {
    ("OrthancPluginKeysValuesIteratorNext", "done"):
        "``True`` while the iterator is on an item (read it with ``GetKey`` and ``GetValue``), "
        "``False`` once it has passed the last one: Orthanc sets the SDK's ``done`` flag this way, "
        "whatever the SDK's text says.",
}

# Python-only entry points (no SDK function of their own).  For reference only: the generator emits
# them through HANDWRITTEN, which lists the C functions they call (a name exists only if the header
# has all of them).
PYTHON_ONLY = ["CreateImageFromBuffer", "RegisterMoveCallback2"]

# SDK callback types that get a C entry point implemented in Python (in pythanc/callbacks/, the module
# of each family defines its own as pythanc_<type> with @ffi.def_extern).  REST routes are the
# exception: their C entry points are in rest_dispatch.c (pythanc_rest_entry_for, see plugin_build.py).
# A type that the installed header does not define (a newer SDK's) gets no entry point
# (generate.extern_python); its family module then defines no Python side for it (registry.sdk_has).
EXTERN_PYTHON = [
    "OrthancPluginOnChangeCallback",
    "OrthancPluginOnStoredInstanceCallback",
    "OrthancPluginIncomingHttpRequestFilter2",
    "OrthancPluginReceivedInstanceCallback",
    "OrthancPluginIncomingCStoreInstanceFilter",
    "OrthancPluginIncomingDicomInstanceFilter",
    "OrthancPluginFindCallback",
    "OrthancPluginWorklistCallback",
    "OrthancPluginMoveCallback",
    "OrthancPluginGetMoveSize",
    "OrthancPluginApplyMove",
    "OrthancPluginFreeMove",
    "OrthancPluginStorageCreate",
    "OrthancPluginStorageRead",
    "OrthancPluginStorageReadWhole",
    "OrthancPluginStorageReadRange",
    "OrthancPluginStorageRemove",
    "OrthancPluginStorageCreate2",        # SDK 1.12.8+ (an entry point exists only if the header has its type)
    "OrthancPluginStorageReadRange2",
    "OrthancPluginStorageRemove2",
    "OrthancPluginRefreshMetricsCallback",
    "OrthancPluginStorageCommitmentFactory",
    "OrthancPluginStorageCommitmentDestructor",
    "OrthancPluginStorageCommitmentLookup",
    # SDK 1.12.10+ only: the build declares an entry point only if the header has its type
    "OrthancPluginFindCallback2",
    "OrthancPluginWorklistCallback2",
    "OrthancPluginMoveCallback2",
    "OrthancPluginStorageCommitmentFactory2",
    "OrthancPluginDecodeImageCallback",
    "OrthancPluginTranscoderCallback",
    "OrthancPluginServerChunkedRequestReaderFactory",
    "OrthancPluginServerChunkedRequestReaderAddChunk",
    "OrthancPluginServerChunkedRequestReaderExecute",
    "OrthancPluginServerChunkedRequestReaderFinalize",
    "OrthancPluginWebDavIsExistingFolderCallback",
    "OrthancPluginWebDavListFolderCallback",
    "OrthancPluginWebDavRetrieveFileCallback",
    "OrthancPluginWebDavStoreFileCallback",
    "OrthancPluginWebDavCreateFolderCallback",
    "OrthancPluginWebDavDeleteItemCallback",
    "OrthancPluginJobFinalize",
    "OrthancPluginJobGetProgress",
    "OrthancPluginJobGetContent",
    "OrthancPluginJobGetSerialized",
    "OrthancPluginJobGetContent2",        # SDK 1.11.3+
    "OrthancPluginJobGetSerialized2",
    "OrthancPluginJobStep",
    "OrthancPluginJobStop",
    "OrthancPluginJobReset",
    "OrthancPluginJobsUnserializer",
    "OrthancPluginDicomWebBinaryCallback",
    "OrthancPluginDicomWebBinaryCallback2",
    "OrthancPluginChunkedClientAnswerAddChunk",
    "OrthancPluginChunkedClientAnswerAddHeader",
    "OrthancPluginChunkedClientRequestIsDone",
    "OrthancPluginChunkedClientRequestGetChunkData",
    "OrthancPluginChunkedClientRequestGetChunkSize",
    "OrthancPluginChunkedClientRequestNext",
    # SDK 1.12.9+ (a type that the installed header lacks gets no C entry point)
    "OrthancPluginHttpAuthentication",
    "OrthancPluginAuditLogHandler",
]
