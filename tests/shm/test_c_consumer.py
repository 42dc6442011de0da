"""A consumer in C that includes only rtms_shm.h reads a live stream: the header is the contract."""

from __future__ import annotations

import os
import shutil
import subprocess

from gateway import _native
from gateway.protocol import AudioParams, DataOption
from tests.shm.conftest import pcm

T0 = 1_738_392_033_000
SPP = 320
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fnv1a64(data: bytes) -> int:
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def build(tmp_path, std: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "a C compiler is required to build gateway._native, so it must exist"
    exe = str(tmp_path / f"c_reader_{std}")
    subprocess.run([cc, "-O2", f"-std={std}", "-Wall", "-Werror", "-I", os.path.join(ROOT, "_native", "include"),
                    os.path.join(ROOT, "tests", "shm", "c_reader.c"), "-o", exe], check=True)
    return exe


def test_header_compiles_as_strict_c11_and_cxx(tmp_path) -> None:
    header = os.path.join(ROOT, "_native", "include", "rtms_shm.h")
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c", header], check=True)
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is not None:
        subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "-fsyntax-only", "-x", "c++", header], check=True)


def test_c_consumer_reads_every_byte_while_the_writer_writes(make_pub, tmp_path) -> None:
    exe = build(tmp_path, "gnu11")
    pub = make_pub(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS), audio_seconds=32)
    _native._test_write_audio(pub, 5, T0, pcm(0, SPP))
    expected = [pcm(0, SPP)]
    proc = subprocess.Popen([exe, "follow", pub.path, "5"], stdout=subprocess.PIPE, text=True)
    gaps = 0
    for i in range(1, 400):
        if i % 50 == 25:
            expected.append(bytes(2 * SPP))  # missing packet: zeros in the ring, one gap entry
            gaps += 1
            continue
        data = pcm(i * SPP, SPP)
        _native._test_write_audio(pub, 5, T0 + 20 * i, data)
        expected.append(data)
    pub.close()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    frames, lost, ngaps, digest = out.split()
    blob = b"".join(expected)
    assert (int(frames), int(lost), int(ngaps)) == (len(blob) // 2, 0, gaps)
    assert int(digest, 16) == fnv1a64(blob)
