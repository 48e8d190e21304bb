"""Helpers shared by the benchmark scripts of bench/: running a command, its JSON line, the CPU's
name and features, and writing a marked section of docs/BENCHMARKS.md."""

import json
import os
import platform
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHARED = os.environ.get("EDGEVLM_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
GPT2_VOCAB = os.path.join(SHARED, "testdata", "tokenizer", "ggml-vocab-gpt-2.gguf")


def run(cmd, what, timeout=3600):
    """Runs cmd; exits naming `what` with the end of its stderr when it fails. Returns stdout."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {what} failed (exit {p.returncode}):\n  $ {' '.join(cmd)}\n"
                 f"{p.stderr[-3000:]}")
    return p.stdout


def last_json(out):
    """The last line of out that is a JSON object."""
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"{os.path.basename(sys.argv[0])}: no JSON line in:\n{out[-2000:]}")


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_features():
    """The instruction sets that decide which kernels run, as /proc/cpuinfo names them."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                f = set(line.split(":", 1)[1].split())
                return ", ".join(x for x in ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8"]
                                 if x in f)
    except OSError:
        pass
    return ""


def write_section(path, begin, end, text):
    """Replaces the section between the markers begin/end of path (text includes them), or appends it."""
    doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + text.rstrip("\n") + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    open(path, "w").write(doc)
