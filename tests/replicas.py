# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the replicas tests: a PostgreSQL server of the test module's own and several
Orthanc processes (replicas) with pythanc and Debian's PostgreSQL index plugin on one database,
sharing one storage folder.  Imported by tests/test_replicas.py (``from replicas import ...``)."""

import os
import threading
import uuid

import pytest

from pythanc.testing import OrthancServer, PostgresCluster, postgresql_bin, postgresql_index_plugin
from pythanc import plugin_path


def _skip_unless_installed():
    if postgresql_index_plugin() is None:
        pytest.skip("Debian's orthanc-postgresql is not installed (scripts/setup.sh installs it)")
    if postgresql_bin("initdb") is None or postgresql_bin("pg_ctl") is None:
        pytest.skip("PostgreSQL's server (Debian's postgresql package) is not installed")


@pytest.fixture(scope="module")
def postgres():
    """One PostgreSQL server for the test module (each test makes a database of its own)."""
    _skip_unless_installed()
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


class Replicas(list):
    """The Orthanc processes of one test: a list of :class:`OrthancServer`, plus the database's
    name, the shared storage folder and ``add()`` to start one more."""

    def __init__(self, postgres, tmp_path, script, config, python, index=None):
        super().__init__()
        self.postgres = postgres
        self.database = postgres.createdb("orthanc_" + uuid.uuid4().hex[:12])
        self.storage = str(tmp_path / "shared-storage")
        os.makedirs(self.storage, exist_ok=True)
        self.tmp_path = tmp_path
        self.script = script
        self.config = dict(config or {})
        self.python = python
        self.index = dict(index or {})

    def add(self, name=None, script=None, config=None, start=True):
        name = name or "replica-%s" % "ABCDEFGH"[len(self)]
        workdir = str(self.tmp_path / name)
        os.makedirs(workdir, exist_ok=True)
        cfg = {
            "Name": name,
            "StorageDirectory": self.storage,
            "Plugins": [plugin_path(), postgresql_index_plugin()],
            "PostgreSQL": self.postgres.index_config(self.database, **self.index),
            "StableAge": 1,
        }
        if self.python:
            cfg["Python"] = dict(self.python)
        cfg.update(self.config)
        cfg.update(config or {})
        s = OrthancServer(script=script or self.script, config=cfg, workdir=workdir, start=False,
                          startup_timeout=120.0)
        s.name = name
        self.append(s)
        if start:
            s.start()
        return s

    def stop_all(self):
        """Stop every replica by its PID, all at the same time (each ``stop()`` in a thread)."""
        errors = []

        def stop(s):
            try:
                s.stop()
            except Exception as e:  # stop() has killed it
                errors.append(e)

        threads = [threading.Thread(target=stop, args=(s,)) for s in self]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors


@pytest.fixture
def replicas(postgres, tmp_path):
    """A factory: ``replicas(n, script=..., config={...}, python={...})`` starts ``n`` Orthanc
    processes one after the other (the first creates the database's schema) on a new database of
    the module's PostgreSQL server and one storage folder; each has pythanc, the script and the
    PostgreSQL index (``index``: more options of its ``"PostgreSQL"`` section).  All are stopped by their PID at the end of the test."""
    made = []

    def start(n=2, script=None, config=None, python=None, index=None):
        r = Replicas(postgres, tmp_path, script, config, python, index)
        made.append(r)
        for _ in range(n):
            r.add()
        return r

    yield start
    errors = []
    for r in made:
        errors.extend(r.stop_all())
    if errors:
        raise errors[0]
