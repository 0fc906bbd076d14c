"""Worker processes: the Orthanc side (pool), the worker side (worker) and the `orthanc` module of a script's multiprocessing children (child/)."""
