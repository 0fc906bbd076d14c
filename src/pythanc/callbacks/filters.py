"""Filters and received instances: ``orthanc.RegisterIncomingHttpRequestFilter``,
``RegisterHttpAuthentication`` (SDK 1.12.9+), ``RegisterReceivedInstanceCallback``,
``RegisterIncomingCStoreInstanceFilter`` and ``RegisterIncomingDicomInstanceFilter``.

Several registrations of one kind combine: HTTP and DICOM instance filters are all called in
registration order and must all accept; C-STORE filters are called in order and the first non-zero
status rejects; received-instance callbacks are chained in order, each seeing the bytes the previous
one produced, and ``DISCARD`` stops the chain.  HTTP authentication callbacks are called in order
and must all grant: the first one that does not decides the answer (401, 403 or a redirection).
"""

from .._generated import api
from ..core.convert import Borrowed, text, data, buffer_into, is_bytes, string_dict
from ..core.log import log_error, log_exception
from .registry import STORE, c_entry, append, sdk_entry

__all__ = ['RegisterIncomingHttpRequestFilter', 'RegisterHttpAuthentication', 'RegisterReceivedInstanceCallback',
           'RegisterIncomingCStoreInstanceFilter', 'RegisterIncomingDicomInstanceFilter']

KEEP_AS_IS, MODIFY, DISCARD = 1, 2, 3                       # OrthancPluginReceivedInstanceAction
GRANTED, UNAUTHORIZED, FORBIDDEN, REDIRECT = 0, 1, 2, 3     # OrthancPluginHttpAuthenticationStatus


def RegisterIncomingHttpRequestFilter(callback):
    """Register ``callback(uri, method=int, ip=str, headers=dict, get=dict)`` (``get`` for GET only),
    called before each external HTTP request is routed.  It returns ``True`` to allow the request,
    ``False`` to answer 403.  An exception or a non-bool result answers 500 (logged).

    Several filters may be registered: they are called in registration order, and a request is
    allowed only if every filter allows it (the first ``False`` stops)."""
    append("http_filters", callback, "Python incoming-http-request filter", "RegisterIncomingHttpRequestFilter")


@c_entry("Python incoming-http-request filter", -1)
def pythanc_OrthancPluginIncomingHttpRequestFilter2(method, uri, ip, headers_count, headers_keys, headers_values,
                                                    get_count, get_keys, get_values):
    filters = list(STORE.lists["http_filters"])
    if not filters:
        return 1
    u = text(uri)
    method = int(method)
    address = text(ip)
    headers = string_dict(headers_count, headers_keys, headers_values)
    get = string_dict(get_count, get_keys, get_values) if method == 1 else None
    for f in filters:
        kw = {"method": method, "ip": address, "headers": dict(headers)}
        if get is not None:
            kw["get"] = dict(get)
        allowed = f(u, **kw)
        if type(allowed) is not bool:
            log_error("The Python incoming-http-request filter has not returned a Boolean (it returned %s)"
                      % type(allowed).__name__)
            return -1
        if not allowed:
            return 0
    return 1


def RegisterHttpAuthentication(callback):
    """(pythanc; SDK 1.12.9+, Orthanc 1.13) Register ``callback(uri, ip=str, headers=dict, get=dict)``,
    called for every HTTP request before it is routed (``uri`` without its GET arguments; header
    names in lower case; ``get`` holds the GET arguments, empty if none).  Once one is registered,
    Orthanc's own HTTP authentication (``"AuthenticationEnabled"``, ``"RegisteredUsers"``) is off:
    the callbacks decide alone.  The callback returns an ``orthanc.HttpAuthenticationStatus``:

    * ``GRANTED``, or ``(GRANTED, payload)``: the request goes on.  ``payload`` (``str`` or
      ``bytes``, e.g. the user that a token names) is the custom payload that Orthanc hands to the
      REST handler of the request: a route registered with ``orthanc.RegisterRestCallback`` then
      gets it as the keyword argument ``authenticationPayload`` (``bytes``; absent when there is
      none);
    * ``UNAUTHORIZED``: the client gets 401; ``FORBIDDEN``: 403;
    * ``(REDIRECT, path)``: the client gets a 307 redirection to ``path`` (relative to the root of
      Orthanc's web server, e.g. a login page).

    Anything else, or an exception, is logged (with its traceback) and the request is refused:
    a failing authentication callback never lets a request through.

    Orthanc accepts one authentication callback per process; pythanc accepts several and calls
    them in registration order: every one must grant, and the first that does not decides the
    answer (the later ones are not called).  The payload is that of the first callback that gives
    one."""
    append("http_authentication", callback, "Python HTTP authentication callback", "RegisterHttpAuthentication")


def _authentication_result(r):
    """``(status, payload or redirection bytes)`` from an authentication callback's result, or
    ``None`` (logged) if it is not one of the documented forms."""
    if type(r) is tuple and len(r) == 2:
        status, extra = r
    else:
        status, extra = r, None
    if not isinstance(status, int) or isinstance(status, bool) or int(status) not in (
            GRANTED, UNAUTHORIZED, FORBIDDEN, REDIRECT):
        log_error("The Python HTTP authentication callback has not returned an "
                  "orthanc.HttpAuthenticationStatus (or a tuple (status, payload or path)); it returned %r; "
                  "the request is refused" % (r if not isinstance(r, tuple) else tuple(type(x).__name__ for x in r),))
        return None
    status = int(status)
    if status == REDIRECT:
        if not isinstance(extra, str) or not extra:
            log_error("The Python HTTP authentication callback returned REDIRECT without a path "
                      "((orthanc.HttpAuthenticationStatus.REDIRECT, '/path') expected); the request is refused")
            return None
        return status, extra.encode("utf-8")
    if status == GRANTED and extra is not None:
        if isinstance(extra, str):
            return status, extra.encode("utf-8")
        if is_bytes(extra):
            return status, bytes(extra)
        log_error("The Python HTTP authentication callback returned a payload that is neither str nor bytes "
                  "(%s); the request is refused" % type(extra).__name__)
        return None
    return status, None


@c_entry("Python HTTP authentication callback", -1)
def pythanc_OrthancPluginHttpAuthentication(status, payload, redirection, uri, ip, headers_count, headers_keys,
                                            headers_values, get_count, get_keys, get_values):
    status[0] = FORBIDDEN   # whatever fails from here on refuses the request
    callbacks = list(STORE.lists["http_authentication"])
    u = text(uri)
    kw = {"ip": text(ip), "headers": string_dict(headers_count, headers_keys, headers_values),
          "get": string_dict(get_count, get_keys, get_values)}
    granted_payload = None
    for f in callbacks:
        result = _authentication_result(f(u, **dict(kw, headers=dict(kw["headers"]), get=dict(kw["get"]))))
        if result is None:
            return -1
        code, extra = result
        if code == REDIRECT:
            buffer_into(redirection, extra, "redirection")
            status[0] = REDIRECT
            return 0
        if code != GRANTED:
            status[0] = code
            return 0
        if granted_payload is None and extra is not None:
            granted_payload = extra
    if granted_payload is not None:
        buffer_into(payload, granted_payload, "payload")
    status[0] = GRANTED
    return 0


def RegisterReceivedInstanceCallback(callback):
    """Register ``callback(received_dicom: bytes, origin: int) -> (action, bytes or None)``, called on
    each received instance (C-STORE or REST) before it is filtered and stored.  ``action`` is an
    ``orthanc.ReceivedInstanceAction``: ``KEEP_AS_IS``, ``MODIFY`` (store the returned bytes instead)
    or ``DISCARD`` (store nothing; the sender still sees a success).

    An exception, or a result that is not such a tuple, is logged and counts as ``KEEP_AS_IS``.
    Several callbacks are chained in registration order: each receives the bytes the previous one
    returned, and ``DISCARD`` stops the chain."""
    append("received", callback, "Python received-instance callback", "RegisterReceivedInstanceCallback")


def _received_result(r):
    """``(action, payload)`` from a received-instance callback's result, or ``None`` (logged)."""
    if type(r) is not tuple or len(r) != 2 or not isinstance(r[0], int) or isinstance(r[0], bool) \
            or int(r[0]) not in (KEEP_AS_IS, MODIFY, DISCARD):
        log_error("The Python received-instance callback has not returned a tuple as expected: "
                  "(orthanc.ReceivedInstanceAction, bytes or None), got %r; the instance is kept as is"
                  % (r if type(r) is not tuple else tuple(type(x).__name__ for x in r),))
        return None
    action, payload = int(r[0]), r[1]
    if action == MODIFY and not is_bytes(payload):
        log_error("The Python received-instance callback returned MODIFY without bytes (got %s); "
                  "the instance is kept as is" % type(payload).__name__)
        return None
    return action, payload


@c_entry("Python received instance callback", KEEP_AS_IS)
def pythanc_OrthancPluginReceivedInstanceCallback(target, buffer, size, origin):
    callbacks = list(STORE.lists["received"])
    if not callbacks:
        return KEEP_AS_IS
    current = data(buffer, size)
    origin = int(origin)
    modified = False
    for f in callbacks:
        try:
            r = f(current, origin)
        except BaseException:
            log_exception("Python received instance callback")
            continue
        result = _received_result(r)
        if result is None:
            continue
        action, payload = result
        if action == DISCARD:
            return DISCARD
        if action == MODIFY:
            current = bytes(payload)
            modified = True
    if modified:
        buffer_into(target, current, "modified DICOM", is64=True)
        return MODIFY
    return KEEP_AS_IS


def RegisterIncomingCStoreInstanceFilter(callback):
    """Register ``callback(instance: orthanc.DicomInstance) -> int`` for the instances received by
    C-STORE: ``0`` stores the instance; ``1..0xFFFF`` rejects it, and the C-STORE SCU receives that
    DIMSE status (e.g. ``0xA700``, out of resources).  Anything else (or an exception) is an error:
    logged, and the SCU gets a failure.

    Several filters are called in registration order; the first non-zero status rejects."""
    append("cstore_filters", callback, "Python incoming C-STORE filter", "RegisterIncomingCStoreInstanceFilter")


@c_entry("Python incoming-cstore-instance callback", -1)
def pythanc_OrthancPluginIncomingCStoreInstanceFilter(dimse_status, instance):
    filters = list(STORE.lists["cstore_filters"])
    with Borrowed(api.DicomInstance, instance) as dicom:
        for f in filters:
            r = f(dicom)
            if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= 0xFFFF:
                log_error("The Python incoming C-STORE filter has not returned an integer between 0 and "
                          "0xFFFF (0 to store, else the DIMSE status of the rejection); it returned %r"
                          % (r if isinstance(r, int) else type(r).__name__,))
                return -1
            if r != 0:
                dimse_status[0] = int(r)
                return 0
    return 1


def RegisterIncomingDicomInstanceFilter(callback):
    """(pythanc) Register ``callback(instance: orthanc.DicomInstance) -> bool`` for every received
    instance (REST, C-STORE, ...): ``True`` (or ``1``) stores it, ``False`` (or ``0``) discards it.
    Anything else, or an exception, is an error: logged, and the instance is not stored.

    Several filters are called in registration order; an instance is stored only if every filter
    accepts it (the first ``False`` stops)."""
    append("dicom_filters", callback, "Python incoming DICOM instance filter", "RegisterIncomingDicomInstanceFilter")


@c_entry("Python incoming DICOM instance filter", -1)
def pythanc_OrthancPluginIncomingDicomInstanceFilter(instance):
    filters = list(STORE.lists["dicom_filters"])
    with Borrowed(api.DicomInstance, instance) as dicom:
        for f in filters:
            r = f(dicom)
            if not isinstance(r, int) or r not in (0, 1):
                log_error("The Python incoming DICOM instance filter has not returned a Boolean "
                          "(True/1 to accept, False/0 to discard); it returned %r"
                          % (r if isinstance(r, int) else type(r).__name__,))
                return -1
            if not r:
                return 0
    return 1


sdk_entry("http_filters", "OrthancPluginRegisterIncomingHttpRequestFilter2",
          "pythanc_OrthancPluginIncomingHttpRequestFilter2")


sdk_entry("received", "OrthancPluginRegisterReceivedInstanceCallback",
          "pythanc_OrthancPluginReceivedInstanceCallback")


sdk_entry("cstore_filters", "OrthancPluginRegisterIncomingCStoreInstanceFilter",
          "pythanc_OrthancPluginIncomingCStoreInstanceFilter")


sdk_entry("dicom_filters", "OrthancPluginRegisterIncomingDicomInstanceFilter",
          "pythanc_OrthancPluginIncomingDicomInstanceFilter")


sdk_entry("http_authentication", "OrthancPluginRegisterHttpAuthentication",
          "pythanc_OrthancPluginHttpAuthentication",
          at_start_only="Orthanc takes one authentication callback per process, which its HTTP server "
          "reads at each request")
