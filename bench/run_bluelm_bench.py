#!/usr/bin/env python3
"""bluelm-v-3b shape: edgevlm vs llama.cpp on the same GGUF, 1 and 2 threads.

The peer is llama.cpp compiled natively here (bench/peer-native/build.sh: llama.rn's sources, -march=native,
OpenMP, repack), run with flash attention on and off in every round, the faster counting per figure;
`--peer node` uses node-llama-cpp 3.21.1's prebuilt binaries instead (bench/peer/bench.mjs).

The decoder and mmproj are written by `edgevlm gen-bluelm` (random weights at the paper's precisions:
LLM Q4_0 with Q8_0 embeddings/output, ViT Q8_0) into --workdir (never git). Each round runs, for every
thread count, `edgevlm bench --json` (which also measures this machine's limits in the same process:
read bandwidth, peak FMA rate, and the multiply-add rate of the instruction the prefill kernels
run: AMX's BF16 tile product where the CPU has AMX, else vpdpbusd on 512-bit registers with AVX512-VNNI, on 256-bit ones with AVX-VNNI, maddubs otherwise or with --no-vnni) and then llama.cpp (bench/peer/bench.mjs) with the
same prompt length and decoded tokens. The table gives medians over the rounds plus the load average
(the machines are shared; quote ratios, not absolute figures). Output: a Markdown section of
docs/BENCHMARKS.md between the bluelm-bench markers, and stdout.

Usage: bench/run_bluelm_bench.py [--edgevlm build/edgevlm] [--rounds 3] [--threads 1,2] [--prompt 512] [-n 64]
                                [--no-vnni]
"""

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time

from benchlib import cpu_name, last_json, write_section

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BEGIN, END = "<!-- bluelm-bench:begin -->", "<!-- bluelm-bench:end -->"


def run(cmd, what, timeout=3600):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"run_bluelm_bench: {what} failed (exit {p.returncode}):\n  $ {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return p.stdout, time.time() - t0



def peak_kind(runs):
    """The instruction of the runs' int8 peak (older binaries without the keys: maddubs, or AVX-VNNI's vpdpbusd)."""
    names = {0: "avx2", 1: "avx-vnni", 2: "avx512-vnni zmm"}
    if any(x.get("amx", 0) for x in runs):  # products of several rows on AMX: the peak of its BF16 tile product
        return "amx-bf16 tiles"
    kinds = {names.get(int(x.get("int_kernels", 1)), "?") if x.get("peak_int8_vnni", 0) else "avx2" for x in runs}
    return "/".join(sorted(kinds))



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgevlm", default=os.path.join(ROOT, "build", "edgevlm"))
    ap.add_argument("--workdir", default="/tmp/edgevlm-bluelm")
    ap.add_argument("--model", help="decoder GGUF (default: WORKDIR/bluelm-v-3b-q4_0.gguf, generated if missing)")
    ap.add_argument("--mmproj", help="vision GGUF (default: WORKDIR/bluelm-v-3b-mmproj-q8_0.gguf); 'none' to skip")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("-n", type=int, default=64, help="decoded tokens (64: about 4 s of decode per run, steadier than 32)")
    ap.add_argument("--kv-type", default="q8", help="edgevlm's KV cache (llama.cpp's is F16)")
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--no-peer", action="store_true", help="edgevlm only")
    ap.add_argument("--peer", default=os.path.join(ROOT, "build", "peer-native", "peer_bench"),
                    help="the native peer's peer_bench (bench/peer-native/build.sh), or 'node' for node-llama-cpp")
    ap.add_argument("--peer-no-amx", default=os.path.join(ROOT, "build", "peer-native-noamx", "peer_bench"),
                    help="the native peer built without its AMX path (PEER_AMX=OFF bench/peer-native/build.sh "
                         "build/peer-native-noamx); run too where it exists, the faster build counting per figure")
    ap.add_argument("--no-amx", action="store_true", help="edgevlm without its AMX kernels (as EDGEVLM_NO_AMX=1)")
    ap.add_argument("--no-vnni", action="store_true",
                    help="edgevlm's integer kernels without AVX-VNNI (the AVX2 path), against the maddubs peak")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"), help="'-' for stdout only")
    args = ap.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    model = args.model or os.path.join(args.workdir, "bluelm-v-3b-q4_0.gguf")
    mmproj = args.mmproj or os.path.join(args.workdir, "bluelm-v-3b-mmproj-q8_0.gguf")
    if args.mmproj == "none":
        mmproj = None
    if not os.path.exists(model) or (mmproj and not os.path.exists(mmproj)):
        what = ["--only", "llm"] if not mmproj else []
        print(f"run_bluelm_bench: generating the bluelm-v-3b files in {args.workdir}", flush=True)
        run([args.edgevlm, "gen-bluelm", "--out-dir", args.workdir] + what, "gen-bluelm")
    threads = [int(t) for t in args.threads.split(",")]
    native = args.peer != "node"
    if not args.no_peer and native and not os.path.exists(args.peer):
        sys.exit(f"run_bluelm_bench: no native peer at {args.peer} (bench/peer-native/build.sh builds it; "
                 "--peer node uses node-llama-cpp)")
    if not args.no_peer and not native:
        run([os.path.join(ROOT, "bench", "peer", "install.sh")], "installing the llama.cpp peer")

    peers = [("native", args.peer)]
    if not args.no_peer and native and os.path.exists(args.peer_no_amx):
        peers = [("native", args.peer), ("native, no AMX", args.peer_no_amx)]
    ev = {t: [] for t in threads}
    lc = {t: [] for t in threads}
    lc_default = {t: [] for t in threads}  # upstream's defaults: the native build, flash attention auto
    loads = []
    t_start = time.time()
    for r in range(args.rounds):
        for t in threads:
            cmd = [args.edgevlm, "bench", "--json", "-m", model, "-t", str(t), "-p", str(args.prompt), "-n", str(args.n),
                   "--reps", "1", "--kv-type", args.kv_type] + (["--no-vnni"] if args.no_vnni else []) + \
                  (["--no-amx"] if args.no_amx else [])
            if mmproj:
                cmd += ["--mmproj", mmproj, "--tiles", str(args.tiles)]
            out, secs = run(cmd, f"edgevlm bench -t {t}")
            e = last_json(out)
            ev[t].append(e)
            loads.append(e.get("load_start", -1))
            line = (f"round {r + 1}/{args.rounds} t={t}: edgevlm prefill {e['prefill_tok_s']:.2f} decode "
                    f"{e['decode_tok_s']:.2f} tok/s (load {e.get('load_start', -1):.1f}, {secs:.0f} s)")
            if not args.no_peer and native:
                # Flash attention on and off, and each build (with and without its AMX path where both
                # exist); the fastest per figure (the peer's best configuration). Upstream's defaults
                # (the native build, flash attention auto) are kept apart.
                ps, secs = [], 0
                for build, exe in peers:
                    for fa in ("on", "off", "auto"):
                        if fa == "auto" and build != "native":
                            continue
                        out, s_fa = run([exe, "--model", model, "--threads", str(t), "--prompt", str(args.prompt),
                                         "--n", str(args.n), "--reps", "1", "--flash-attn", fa],
                                        f"llama.cpp ({build}) bench -t {t} fa={fa}")
                        x = dict(last_json(out), build=build)
                        secs += s_fa
                        if fa == "auto":
                            lc_default[t].append(x)
                        else:
                            ps.append(x)
                best_p = max(ps, key=lambda x: x["prefill_tok_s"])
                best_d = max(ps, key=lambda x: x["decode_tok_s"])
                p = dict(best_p, decode_tok_s=best_d["decode_tok_s"], fa_prefill=best_p["flash_attn"],
                         fa_decode=best_d["flash_attn"], build_prefill=best_p["build"], build_decode=best_d["build"],
                         peak_rss_mib=min(x["peak_rss_mib"] for x in ps))
                lc[t].append(p)
                line += (f" | llama.cpp prefill {p['prefill_tok_s']:.2f} ({p['build_prefill']}, fa {p['fa_prefill']}) "
                         f"decode {p['decode_tok_s']:.2f} ({p['build_decode']}, fa {p['fa_decode']}) ({secs:.0f} s)")
            elif not args.no_peer:
                out, secs = run(["node", os.path.join(ROOT, "bench", "peer", "bench.mjs"), "--model", model, "--threads",
                                 str(t), "--prompt", str(args.prompt), "-n", str(args.n), "--reps", "1"],
                                f"llama.cpp bench -t {t}")
                p = last_json(out)
                lc[t].append(p)
                line += f" | llama.cpp prefill {p['prefill_tok_s']:.2f} decode {p['decode_tok_s']:.2f} ({secs:.0f} s)"
            print(line, flush=True)

    med = statistics.median
    size_gb = os.path.getsize(model) / 1e9
    if args.no_peer:
        peer_desc = "not run"
    elif native:
        info = lc[threads[0]][0]
        fa = sorted({f"prefill {x['build_prefill']} fa {x['fa_prefill']}, decode {x['build_decode']} fa {x['fa_decode']}"
                     for t in threads for x in lc[t]})
        rss = ", ".join(f"{med([x['peak_rss_mib'] for x in lc[t]]) * 1.048576:.0f} MB at {t} thread(s)" for t in threads)
        builds = " and the same built without its AMX path" if len(peers) > 1 else ""
        dflt = "; ".join(f"{med([x['prefill_tok_s'] for x in lc_default[t]]):.2f} prefill and "
                         f"{med([x['decode_tok_s'] for x in lc_default[t]]):.2f} decode tok/s at {t} thread(s)"
                         for t in threads if lc_default[t])
        peer_desc = (f"{info['engine']} ({info['build_flags']}; `{info['system_info'].strip()}`){builds}, flash "
                     f"attention on and off in every round, the fastest per figure (chosen: {'; '.join(fa)}); its "
                     f"peak RSS {rss}; with upstream's defaults (the native build, flash attention auto): {dflt}")
    else:
        peer_desc = "node-llama-cpp 3.21.1's prebuilt CPU build"
    lines = [BEGIN, "## bluelm-v-3b shape: edgevlm vs llama.cpp", "",
             f"Model: `edgevlm gen-bluelm` (random weights; decoder 2.7B: hidden 2560, 32 layers, 32 heads of 80, "
             f"8 KV heads, SwiGLU 6912, vocab 100096; Q4_0 matrices, Q8_0 token embeddings and output; "
             f"{size_gb:.2f} GB). Prefill {args.prompt} tokens from an empty cache (edgevlm in chunks of 128, "
             f"llama.cpp in one batch), then {args.n} greedy decode steps. edgevlm KV cache: {args.kv_type}; "
             f"llama.cpp: {peer_desc}, F16 KV cache. Medians of "
             f"{args.rounds} interleaved rounds; the limits (read bandwidth over a 1 GB buffer, peak FMA rate, and "
             "the multiply-add rate of the instruction edgevlm's GEMM kernels run for several rows: AMX's BF16 tile "
             "product where the CPU has AMX, else vpdpbusd on 512-bit registers where it has AVX512-VNNI, on 256-bit "
             "ones with AVX-VNNI, else maddubs; same thread count) are measured inside each edgevlm run.", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs. Load average during the runs: "
             f"{min(loads):.1f}–{max(loads):.1f} (shared machine; other engineers' builds and tests ran at the same "
             f"time). Date {datetime.date.today().isoformat()}. Command: `bench/run_bluelm_bench.py --rounds "
             f"{args.rounds} --threads {args.threads}{' --no-vnni' if args.no_vnni else ''}` "
             f"({time.time() - t_start:.0f} s).", ""]
    if max(loads) > (os.cpu_count() or 1):
        lines += ["**Measured on an oversubscribed machine (load average above the CPU count):** the absolute "
                  "figures and the fractions of the limits are depressed by contention; rerun on a quiet machine "
                  "before quoting them.", ""]
    lines += ["| threads | prefill tok/s edgevlm | llama.cpp | ratio | decode tok/s edgevlm | llama.cpp | ratio | "
              "decode: % of read bandwidth (paired) | prefill: % of peak (paired) | bandwidth GB/s | "
              "peak G mul-add/s | peak RSS MB |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in threads:
        e = ev[t]
        ep, ed = med([x["prefill_tok_s"] for x in e]), med([x["decode_tok_s"] for x in e])
        fb = med([x.get("decode_frac_bandwidth", 0) for x in e])
        fp = med([x.get("prefill_frac_peak", 0) for x in e])
        fbp = med([x.get("decode_frac_paired", 0) for x in e])
        fpp = med([x.get("prefill_frac_paired", 0) for x in e])
        bw = med([x.get("bandwidth_gbs", 0) for x in e])
        i8 = med([x.get("peak_int8_gops", 0) for x in e])
        rss = max(x.get("peak_rss_mb", 0) for x in e)
        if lc[t]:
            lp, ld = med([x["prefill_tok_s"] for x in lc[t]]), med([x["decode_tok_s"] for x in lc[t]])
            peer = f"{lp:.2f} | {ep / lp:.2f}× | {ed:.2f} | {ld:.2f} | {ed / ld:.2f}×"
        else:
            peer = f"– | – | {ed:.2f} | – | –"
        lines.append(f"| {t} | {ep:.2f} | {peer} | {100 * fb:.0f}% ({100 * fbp:.0f}%) | {100 * fp:.0f}% ({100 * fpp:.0f}%) | "
                     f"{bw:.1f} | {i8:.0f} "
                     f"({peak_kind(e)}) | {rss:.0f} |")
    vit = [x for t in threads for x in ev[t] if "vit_ms_per_tile" in x]
    if vit:
        lines += ["", "ViT (so400m at 384×384, 27 layers, Q8_0 matrices; the MLP down-projections, F16 in the file "
                  "since 4304 is not a multiple of 32, quantized to Q8_0 with zero-padded rows at load), batches of "
                  f"{args.tiles} tiles, medians of the rounds:", "",
                  "| threads | ms per tile | % of peak (paired) | mmproj load ms |", "| ---: | ---: | ---: | ---: |"]
        for t in threads:
            xs = [x for x in ev[t] if "vit_ms_per_tile" in x]
            if xs:
                lines.append(f"| {t} | {med([x['vit_ms_per_tile'] for x in xs]):.0f} | "
                             f"{100 * med([x.get('vit_frac_peak', 0) for x in xs]):.0f}% "
                             f"({100 * med([x.get('vit_frac_paired', 0) for x in xs]):.0f}%) | "
                             f"{med([x.get('vit_load_ms', float('nan')) for x in xs]):.0f} |")
    lines += ["", "Ratio = edgevlm ÷ llama.cpp. Decode % of bandwidth = weight bytes per token × tokens/s ÷ measured "
              "read bandwidth. Prefill % of peak = multiply-adds per token (matrices + attention) × tokens/s ÷ measured "
              "multiply-add rate of the GEMM kernels' instruction (amx-bf16 tiles: AMX's BF16 tile product, where the "
              "products of several rows run on AMX; avx512-vnni zmm: vpdpbusd on 512-bit registers, "
              "twice the 256-bit rate on Zen 5, the same on Zen 4; avx-vnni: vpdpbusd on 256-bit registers, about "
              "twice the maddubs rate; avx2: maddubs → madd → add). The limits are the best of several passes "
              "measured before the model loads; (paired) divides each run by the same limit measured around that "
              "run instead (the mean of one pass just before it and one just after; the median of those ratios), since what this shared machine leaves to one "
              "process moves from minute to minute.", "", "<details><summary>All runs</summary>", ""]
    for t in threads:
        lines.append(f"- {t} thread(s): edgevlm prefill {[round(x['prefill_tok_s'], 2) for x in ev[t]]}, decode "
                     f"{[round(x['decode_tok_s'], 2) for x in ev[t]]}, decode % of read (paired) "
                     f"{[round(100 * x.get('decode_frac_paired', 0)) for x in ev[t]]}, ViT % of peak (paired) "
                     f"{[round(100 * x.get('vit_frac_paired', 0)) for x in ev[t]]}, load {[round(x.get('load_start', -1), 1) for x in ev[t]]}"
                     + (f"; llama.cpp prefill {[round(x['prefill_tok_s'], 2) for x in lc[t]]}, decode "
                        f"{[round(x['decode_tok_s'], 2) for x in lc[t]]}" if lc[t] else ""))
    lines += ["", "</details>", END]
    block = "\n".join(lines) + "\n"
    print(block)
    if args.out != "-":
        write_section(args.out, BEGIN, END, block)
        print(f"run_bluelm_bench: wrote {args.out}")


if __name__ == "__main__":
    main()
