"""Run-time core, the bottom layer: the SDK context, errors, Orthanc's log, conversions of C values,
SDK objects and the plugin's configuration.  Nothing here imports another pythanc package."""
