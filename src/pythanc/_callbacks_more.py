"""The SDK's other callbacks (filters, DICOM SCP handlers, storage area, jobs, ...)."""

__all__ = ['RegisterIncomingHttpRequestFilter', 'RegisterReceivedInstanceCallback', 'RegisterIncomingCStoreInstanceFilter', 'RegisterIncomingDicomInstanceFilter', 'RegisterFindCallback', 'RegisterWorklistCallback', 'RegisterMoveCallback', 'RegisterMoveCallback2', 'RegisterStorageArea', 'RegisterStorageArea2', 'RegisterRefreshMetricsCallback', 'RegisterStorageCommitmentScpCallback', 'RegisterDecodeImageCallback', 'RegisterTranscoderCallback', 'RegisterChunkedRestCallback', 'RegisterWebDavCollection', 'CreateJob', 'RegisterJobsUnserializer']


def RegisterIncomingHttpRequestFilter(*args):
    raise NotImplementedError('RegisterIncomingHttpRequestFilter is not implemented yet')


def RegisterReceivedInstanceCallback(*args):
    raise NotImplementedError('RegisterReceivedInstanceCallback is not implemented yet')


def RegisterIncomingCStoreInstanceFilter(*args):
    raise NotImplementedError('RegisterIncomingCStoreInstanceFilter is not implemented yet')


def RegisterIncomingDicomInstanceFilter(*args):
    raise NotImplementedError('RegisterIncomingDicomInstanceFilter is not implemented yet')


def RegisterFindCallback(*args):
    raise NotImplementedError('RegisterFindCallback is not implemented yet')


def RegisterWorklistCallback(*args):
    raise NotImplementedError('RegisterWorklistCallback is not implemented yet')


def RegisterMoveCallback(*args):
    raise NotImplementedError('RegisterMoveCallback is not implemented yet')


def RegisterMoveCallback2(*args):
    raise NotImplementedError('RegisterMoveCallback2 is not implemented yet')


def RegisterStorageArea(*args):
    raise NotImplementedError('RegisterStorageArea is not implemented yet')


def RegisterStorageArea2(*args):
    raise NotImplementedError('RegisterStorageArea2 is not implemented yet')


def RegisterRefreshMetricsCallback(*args):
    raise NotImplementedError('RegisterRefreshMetricsCallback is not implemented yet')


def RegisterStorageCommitmentScpCallback(*args):
    raise NotImplementedError('RegisterStorageCommitmentScpCallback is not implemented yet')


def RegisterDecodeImageCallback(*args):
    raise NotImplementedError('RegisterDecodeImageCallback is not implemented yet')


def RegisterTranscoderCallback(*args):
    raise NotImplementedError('RegisterTranscoderCallback is not implemented yet')


def RegisterChunkedRestCallback(*args):
    raise NotImplementedError('RegisterChunkedRestCallback is not implemented yet')


def RegisterWebDavCollection(*args):
    raise NotImplementedError('RegisterWebDavCollection is not implemented yet')


def CreateJob(*args):
    raise NotImplementedError('CreateJob is not implemented yet')


def RegisterJobsUnserializer(*args):
    raise NotImplementedError('RegisterJobsUnserializer is not implemented yet')


def _extra_reset():
    pass


def _extra_shutdown():
    pass
