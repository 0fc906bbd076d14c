"""Build hook: generate the ``orthanc`` module and compile the plugin library at build time,
from the SDK header installed on the build machine (see src/pythanc/_build/)."""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))


class BuildPluginPy(build_py):
    def run(self):
        super().run()
        from pythanc._build import plugin_build
        out = os.path.join(self.build_lib, "pythanc")
        try:
            lib = plugin_build.build(out, self.distribution.get_version(),
                                     tmpdir=os.path.join(self.build_temp if hasattr(self, "build_temp")
                                                         else "build", "cffi"))
        except (plugin_build.BuildError, plugin_build.sdkmodel.HeaderNotFound) as e:
            sys.stderr.write("\nerror: %s\n\n" % e)
            raise SystemExit(1)
        print("pythanc: built %s" % lib)
        # PEP 561 stub-only package, so that editors and mypy know the orthanc module
        stubs = os.path.join(self.build_lib, "orthanc-stubs")
        os.makedirs(stubs, exist_ok=True)
        with open(os.path.join(out, "_generated", "orthanc.pyi")) as src, \
                open(os.path.join(stubs, "__init__.pyi"), "w") as dst:
            dst.write(src.read())


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPluginPy}, distclass=BinaryDistribution)
