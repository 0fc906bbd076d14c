"""``orthanc.OrthancException``, the error of every SDK call, and the codes pythanc raises itself.

Pure Python (no cffi): the worker processes raise the same class.
"""

# Values of OrthancPluginErrorCode that pythanc raises itself.  They are the SDK's since 1.0; the
# generated ``orthanc.ErrorCode`` is checked against them at start (``convert.set_error_codes``).
ERROR_INTERNAL = -1
ERROR_SUCCESS = 0
ERROR_PLUGIN = 1                  # "Error encountered within the plugin engine"
ERROR_NOT_IMPLEMENTED = 2
ERROR_PARAMETER_OUT_OF_RANGE = 3
ERROR_BAD_SEQUENCE_OF_CALLS = 6
ERROR_UNKNOWN_RESOURCE = 17


class OrthancException(Exception):
    """An error reported by Orthanc: ``args == (code, description)``.

    ``code`` is a value of ``orthanc.ErrorCode``.  Scripts may raise it themselves; a REST callback
    that raises it answers HTTP 500, as with the official plugin.
    """

    @property
    def code(self):
        return self.args[0] if self.args else None

    @property
    def description(self):
        return self.args[1] if len(self.args) > 1 else ""


OrthancException.__module__ = "orthanc"
