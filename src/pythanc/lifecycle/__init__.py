"""The plugin's life cycle, the top of the run time: initialisation and finalisation (plugin), the orthanc module (module), the scripts (scripts) and Python.Reload (reload)."""
