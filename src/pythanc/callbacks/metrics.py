"""Metrics: ``orthanc.RegisterRefreshMetricsCallback`` (all registered callbacks are called)."""

from ..core.context import ffi
from ..core.log import log_exception
from .registry import STORE, append, sdk_entry

__all__ = ['RegisterRefreshMetricsCallback']


def RegisterRefreshMetricsCallback(callback):
    """(pythanc) Register ``callback()``, called whenever Orthanc's metrics are read (e.g.
    ``/tools/metrics-prometheus``); it typically calls ``orthanc.SetMetricsValue(name, value,
    orthanc.MetricsType.DEFAULT)``.  Several callbacks are all called, in registration order; an
    exception is logged."""
    append("metrics", callback, "Python refresh-metrics callback", "RegisterRefreshMetricsCallback")


@ffi.def_extern()
def pythanc_OrthancPluginRefreshMetricsCallback():
    for f in list(STORE.lists["metrics"]):
        try:
            f()
        except BaseException:
            log_exception("Python refresh-metrics callback")


sdk_entry("metrics", "OrthancPluginRegisterRefreshMetricsCallback",
          "pythanc_OrthancPluginRefreshMetricsCallback")
