"""``import orthanc`` in a process that a pythanc script started with ``multiprocessing``.

pythanc appends this folder to ``sys.path`` in Orthanc's process (last, and only after the real
``orthanc`` module is in ``sys.modules``, so it is never used there).  A child started with the
"spawn" or "forkserver" method receives that ``sys.path`` and, to unpickle a function of the
script, imports the script, which imports ``orthanc``: it gets this module, with the enumerations
and ``OrthancException``; ``Register*`` calls do nothing; other calls raise ``OrthancException``
(use ``worker=True`` for callbacks that need Orthanc in another process).
"""

import sys

from pythanc.workers.worker import detached_module

sys.modules[__name__] = detached_module()
