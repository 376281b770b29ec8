"""Builds the native child side, ``sandbox-spawn``; everything else is in pyproject.toml.

Why a hook here: setuptools has no notion of a helper executable shipped inside a
package. It is compiled next to the Python modules that start it: into the source tree
for an editable install (``pip install -e .``, what dev/setup and CI do), into the build
directory (and so the wheel) otherwise. A build that cannot produce it fails: a launcher
without its child side cannot run anything.
"""

from __future__ import annotations

import glob
import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

NATIVE = os.path.join("sandbox", "launch", "native")
# Static: no dynamic loader work at each launch (~0.3 ms), and no library search path
# the caller's environment could influence (the environment is cleared anyway).
FLAGS = ["-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE", "-std=gnu11"]


def build_helper(out_dir: str) -> None:
    sources = sorted(glob.glob(os.path.join(NATIVE, "*.c")))
    if not sources:
        raise SystemExit(f"no C sources in {NATIVE}")
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, "sandbox-spawn")
    compiler = os.environ.get("CC", "cc")
    static = [compiler, *FLAGS, "-static", "-o", target, *sources]
    if subprocess.run(static, check=False).returncode != 0:
        print("sandbox: static link failed (no libc.a?); linking dynamically")
        subprocess.run([compiler, *FLAGS, "-o", target, *sources], check=True)


class BuildWithHelper(build_py):
    def run(self) -> None:
        super().run()
        editable = getattr(self, "editable_mode", False)
        build_helper(NATIVE if editable else os.path.join(self.build_lib, NATIVE))


setup(cmdclass={"build_py": BuildWithHelper})
