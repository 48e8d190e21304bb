#!/usr/bin/env python3
"""Text decoder speed: edgevlm vs llama.cpp (node-llama-cpp 3.21.1) on the same GGUF files.

A ~114M-parameter random llama model (GPT-2-small shape with llama blocks: embd 768, 12 layers,
12 heads / 4 KV heads, SwiGLU 2048, GPT-2 vocabulary, tied output) is written by `edgevlm gen-model`
in F16, Q8_0 and Q4_0 (to --workdir, never into git). Each round runs, for every file, edgevlm
(`generate --prompt-tokens ...`, its timing line) and then llama.cpp (bench/peer/bench.mjs) with
the same thread count, prompt length and number of decoded tokens; the table gives medians over the
rounds, so both engines see the same machine conditions. Results go to a Markdown table in
docs/BENCHMARKS.md (between the text-bench markers) and to stdout.

Usage: bench/run_text_bench.py --edgevlm build/edgevlm [--threads 2] [--rounds 5] [--prompt 128] [-n 64]
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

from benchlib import cpu_name

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MODEL_FLAGS = ["--arch", "llama", "--embd", "768", "--layers", "12", "--heads", "12", "--kv-heads", "4",
               "--ff", "2048", "--ctx", "2048", "--seed", "1", "--tied"]
TIMING = re.compile(r"\[timing\].*?prefill\s+(\d+)\s+tok,\s*([0-9.]+)\s*tok/s.*?decode\s+(\d+)\s+tok,\s*([0-9.]+)\s*tok/s")
BEGIN, END = "<!-- text-bench:begin -->", "<!-- text-bench:end -->"


def run(cmd, what, timeout=900):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"run_text_bench: {what} failed (exit {p.returncode}):\n  $ {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return p.stdout


def prompt_ids(n, n_vocab, seed):
    """The same xorshift ids as bench.mjs, so both engines prefill the same tokens."""
    x = (seed * 2654435761) & 0xFFFFFFFF or 1
    out = []
    for _ in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(x % max(1, n_vocab - 256))
    return out


def edgevlm_once(exe, model, ids, n, threads):
    out = run([exe, "generate", "-m", model, "--prompt-tokens", ",".join(map(str, ids)), "-n", str(n),
               "--temp", "0", "--ignore-eos", "-t", str(threads)], f"edgevlm generate {model}")
    m = TIMING.search(out)
    if not m:
        sys.exit(f"run_text_bench: no timing line in edgevlm's output:\n{out[-1500:]}")
    return float(m.group(2)), float(m.group(4))


def peer_once(model, prompt, n, threads, seed):
    out = run(["node", os.path.join(ROOT, "bench", "peer", "bench.mjs"), "--model", model, "--threads", str(threads),
               "--prompt", str(prompt), "-n", str(n), "--reps", "1", "--seed", str(seed)], f"llama.cpp bench {model}")
    r = json.loads(out.strip().splitlines()[-1])
    return r["prefill_tok_s"], r["decode_tok_s"]



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgevlm", default=os.path.join(ROOT, "build", "edgevlm"))
    ap.add_argument("--workdir", default="/tmp/edgevlm-text-bench")
    ap.add_argument("--vocab", default=os.path.join(os.environ.get("EDGEVLM_SHARED_DIR", os.path.join(ROOT, "..", "shared")),
                                                    "testdata", "tokenizer", "ggml-vocab-gpt-2.gguf"))
    ap.add_argument("--types", default="f16,q8_0,q4_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"), help="'-' for stdout only")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    types = args.types.split(",")
    models = {}
    for t in types:
        path = os.path.join(args.workdir, f"random-llama-114m-{t}.gguf")
        if not os.path.exists(path):
            run([args.edgevlm, "gen-model", "--out", path, "--type", t, "--vocab-from", args.vocab] + MODEL_FLAGS,
                f"gen-model {t}")
        models[t] = path
    ids = prompt_ids(args.prompt, 50257, args.seed)
    res = {t: {"ev_p": [], "ev_d": [], "lc_p": [], "lc_d": []} for t in types}
    t0 = time.time()
    load0 = os.getloadavg()[0]
    if load0 > (os.cpu_count() or 1):
        print(f"run_text_bench: warning: load average {load0:.1f} exceeds the {os.cpu_count()} CPUs; "
              "the figures will measure contention more than speed", file=sys.stderr)
    for r in range(args.rounds):
        for t in types:
            p, d = edgevlm_once(args.edgevlm, models[t], ids, args.n, args.threads)
            res[t]["ev_p"].append(p)
            res[t]["ev_d"].append(d)
            p, d = peer_once(models[t], args.prompt, args.n, args.threads, args.seed)
            res[t]["lc_p"].append(p)
            res[t]["lc_d"].append(d)
            print(f"round {r + 1}/{args.rounds} {t:5s}: edgevlm prefill {res[t]['ev_p'][-1]:7.1f} decode "
                  f"{res[t]['ev_d'][-1]:6.1f} | llama.cpp prefill {res[t]['lc_p'][-1]:7.1f} decode "
                  f"{res[t]['lc_d'][-1]:6.1f} tok/s", flush=True)

    med = statistics.median
    rows = []
    for t in types:
        x = res[t]
        size_gb = os.path.getsize(models[t]) / 1e9
        rows.append((t, size_gb, med(x["ev_p"]), med(x["lc_p"]), med(x["ev_d"]), med(x["lc_d"])))
    load = os.getloadavg()[0]
    lines = [
        BEGIN,
        "## Text decoder: edgevlm vs node-llama-cpp's prebuilt llama.cpp",
        "",
        f"Same GGUF files, same run, {args.threads} threads, medians of {args.rounds} interleaved rounds "
        f"(edgevlm, then llama.cpp, per file per round). Prefill: {args.prompt} prompt tokens from an empty "
        f"cache (edgevlm in chunks of 128); decode: {args.n} tokens after it, greedy. Model: random "
        "llama, GPT-2-small shape (embd 768, 12 layers, 12 heads / 4 KV heads, SwiGLU 2048, GPT-2 vocabulary "
        "50257, tied output; 114M parameters), written by `edgevlm gen-model`; all matrices in the named "
        "type, norms F32. llama.cpp: node-llama-cpp 3.21.1's prebuilt CPU build, F16 KV cache, "
        "flash attention off, one warm-up pass per process before the timed one; edgevlm: one `edgevlm generate` "
        "process per measurement (its prefill includes the first touch of the mapped weights).",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average {load0:.1f} at the start and "
        f"{load:.1f} at the end (shared machine: compare the ratios, not the absolute figures). Date: "
        f"{datetime.date.today().isoformat()}. Command: `bench/run_text_bench.sh build` "
        f"({time.time() - t0:.0f} s).",
        "",
    ]
    if max(load0, load) > (os.cpu_count() or 1):
        lines += [f"**Caution: measured on an oversubscribed machine (load average above the {os.cpu_count()} CPUs).** "
                  "Other processes held most of the cores. ggml's worker threads busy-wait between operations, "
                  "which likely makes llama.cpp lose more to contention than edgevlm, so these ratios probably "
                  "overstate edgevlm's lead. Rerun on a quiet machine before quoting them.", ""]
    lines += [
        "| weights | file | prefill tok/s edgevlm | prefill tok/s llama.cpp | ratio | decode tok/s edgevlm "
        "| decode tok/s llama.cpp | ratio | decode weight GB/s edgevlm |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t, size, evp, lcp, evd, lcd in rows:
        lines.append(f"| {t.upper()} | {size * 1000:.0f} MB | {evp:.1f} | {lcp:.1f} | {evp / lcp:.2f}× | {evd:.1f} | "
                     f"{lcd:.1f} | {evd / lcd:.2f}× | {evd * size:.1f} |")
    lines += ["", "Ratio = edgevlm ÷ llama.cpp (above 1: edgevlm faster). Decode weight GB/s = file size × "
              "decode tokens/s, the bandwidth the weights alone need.", "",
              "<details><summary>All runs (tok/s)</summary>", ""]
    for t in types:
        x = res[t]
        fmt = lambda v: ", ".join(f"{a:.1f}" for a in v)
        lines.append(f"- {t}: edgevlm prefill [{fmt(x['ev_p'])}], decode [{fmt(x['ev_d'])}]; "
                     f"llama.cpp prefill [{fmt(x['lc_p'])}], decode [{fmt(x['lc_d'])}]")
    lines += ["", "</details>", END]
    block = "\n".join(lines) + "\n"
    print(block)
    if args.out != "-":
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        doc = open(args.out).read() if os.path.exists(args.out) else "# Benchmarks\n\n"
        if BEGIN in doc and END in doc:
            doc = doc[:doc.index(BEGIN)] + block.rstrip("\n") + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip("\n") + "\n\n" + block
        open(args.out, "w").write(doc)
        print(f"run_text_bench: wrote {args.out}")


if __name__ == "__main__":
    main()
