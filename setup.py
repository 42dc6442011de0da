"""Builds the one native extension, ``gateway._native``, from ``_native/native.pyx``.

Switches (environment): ``GATEWAY_DEBUG=1`` (checks on, -O0 -g, line tracing),
``GATEWAY_ANNOTATE=1`` (HTML annotation next to the sources), ``GATEWAY_SANITIZE=1``
(ASan + UBSan), ``GATEWAY_CFLAGS`` (extra flags). Release flags (-O2) by default.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def _fail(msg: str) -> None:
    sys.stderr.write(f"\nrtms-gateway build error: {msg}\n\n")
    raise SystemExit(1)


try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - exercised on broken machines only
    _fail(
        "Cython is required to build the native core (gateway._native).\n"
        "Install it with:  python -m pip install 'Cython==3.3.1'  (or use 'make build', which does this)."
    )

cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
if shutil.which(cc) is None and shutil.which("cc") is None:
    _fail(f"no C compiler found (looked for {cc!r} and 'cc'). On Debian/Ubuntu: apt-get install build-essential")

try:
    import picows
except ImportError:
    _fail("picows must be installed at build time (its .pxd is cimported): pip install 'picows==2.3.1'")

DEBUG = _flag("GATEWAY_DEBUG")
SANITIZE = _flag("GATEWAY_SANITIZE")
ANNOTATE = _flag("GATEWAY_ANNOTATE")

cflags = ["-O0", "-g3"] if DEBUG or SANITIZE else ["-O2"]
cflags += ["-Wall", "-Wno-unused-function", "-Wno-unreachable-code"]
ldflags: list[str] = []
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if SANITIZE:
    cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    ldflags += ["-fsanitize=address,undefined"]
if DEBUG:
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
cflags += os.environ.get("GATEWAY_CFLAGS", "").split()

directives = {
    "language_level": "3",
    "embedsignature": True,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": True,
    "linetrace": DEBUG,
}

extensions = [
    Extension(
        "gateway._native",
        ["_native/native.pyx"],
        include_dirs=[os.path.join(HERE, "_native"), os.path.dirname(picows.__file__)],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        define_macros=macros,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        include_path=[os.path.join(HERE, "_native"), os.path.dirname(os.path.dirname(picows.__file__))],
        force=_flag("GATEWAY_FORCE_CYTHONIZE"),
    )
)
