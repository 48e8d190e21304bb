#!/usr/bin/env python3
"""GGUF quant types: edgevlm vs llama.cpp compiled natively here (bench/peer-native), same files.

For each decoder shape and llama-quantize scheme (files written by `edgevlm gen-model` /
`gen-bluelm` in F16 and converted by `edgevlm quantize --scheme S`, into --workdir, never git), each
round runs, per thread count, `edgevlm bench --json` (prefill and decode tokens/s, peak RSS, and this
machine's read bandwidth measured in the same process) and then the peer, `peer_bench`, once per
flash-attention setting (--flash-attn on / off; upstream's default `auto` is `on` on the CPU). The
best peer figure per column is the faster setting, as the peer's best configuration. Medians over
the interleaved rounds. Output: a Markdown section of docs/BENCHMARKS.md between the quant-bench
markers, and stdout.

Shapes: llama-1b (embd 2048, 16 layers, 32/8 heads, SwiGLU 8192, GPT-2 vocabulary, tied output;
0.98B parameters: Llama-3.2-1B's blocks with a smaller vocabulary) and bluelm-v-3b-llm (DESIGN.md:
embd 2560, 32 layers, vocabulary 100096; 2.7B).

Usage: bench/run_quant_bench.py [--edgevlm build/edgevlm] [--peer build/peer-native/peer_bench]
       [--shapes llama-1b,bluelm-v-3b-llm] [--schemes q4_k_m,q6_k,iq4_xs] [--threads 1,2] [--rounds 3]
       [--prompt 512] [-n 32]
"""

import argparse
import datetime
import os
import statistics
import sys

from benchlib import GPT2_VOCAB, ROOT, cpu_features, cpu_name, last_json, run, write_section

BEGIN, END = "<!-- quant-bench:begin -->", "<!-- quant-bench:end -->"
VOCAB = GPT2_VOCAB
SHAPES = {
    "llama-1b": ["gen-model", "--arch", "llama", "--embd", "2048", "--layers", "16", "--heads", "32", "--kv-heads",
                 "8", "--ff", "8192", "--ctx", "4096", "--type", "f16", "--vocab-from", VOCAB, "--tied",
                 "--rope-base", "500000"],
    "bluelm-v-3b-llm": ["gen-bluelm", "--llm-scheme", "f16", "--only", "llm", "--vocab-from", VOCAB],
}






def model_file(edgevlm, workdir, shape, scheme):
    """WORKDIR/SHAPE-SCHEME.gguf, written from the shape's F16 file when missing."""
    path = os.path.join(workdir, f"{shape}-{scheme}.gguf")
    if os.path.exists(path):
        return path
    f16 = os.path.join(workdir, f"{shape}-f16.gguf")
    if not os.path.exists(f16):
        cmd = [edgevlm] + SHAPES[shape]
        if cmd[1] == "gen-bluelm":
            tmp = os.path.join(workdir, "gen-bluelm")
            run(cmd + ["--out-dir", tmp], f"gen {shape}")
            written = [f for f in os.listdir(tmp) if f.endswith(".gguf")]
            if len(written) != 1:
                sys.exit(f"run_quant_bench: gen-bluelm wrote {written} into {tmp}, expected one decoder file")
            os.rename(os.path.join(tmp, written[0]), f16)
        else:
            run(cmd + ["--out", f16], f"gen {shape}")
    run([edgevlm, "quantize", "-q", "-s", scheme, f16, path], f"quantize {shape} {scheme}")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgevlm", default=os.path.join(ROOT, "build", "edgevlm"))
    ap.add_argument("--peer", default=os.path.join(ROOT, "build", "peer-native", "peer_bench"))
    ap.add_argument("--workdir", default="/tmp/qbench")
    ap.add_argument("--shapes", default="llama-1b,bluelm-v-3b-llm")
    ap.add_argument("--schemes", default="q4_k_m,q6_k,iq4_xs")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--flash-attn", default="on,off", help="peer settings tried; the faster counts per figure")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"), help="'-' for stdout only")
    args = ap.parse_args()
    if not os.path.exists(args.peer):
        sys.exit(f"run_quant_bench: no peer at {args.peer} (bench/peer-native/build.sh builds it)")
    os.makedirs(args.workdir, exist_ok=True)
    threads = [int(t) for t in args.threads.split(",")]
    fas = args.flash_attn.split(",")
    cases = [(s, q, model_file(args.edgevlm, args.workdir, s, q)) for s in args.shapes.split(",")
             for q in args.schemes.split(",")]
    ev, lc = {}, {}
    load0 = os.getloadavg()[0]
    for r in range(args.rounds):
        for shape, scheme, path in cases:
            for t in threads:
                key = (shape, scheme, t)
                e = last_json(run([args.edgevlm, "bench", "--json", "-m", path, "-t", str(t), "-p", str(args.prompt),
                                   "-n", str(args.n), "--reps", "1"], f"edgevlm bench {key}"))
                ev.setdefault(key, []).append(e)
                line = (f"round {r + 1}/{args.rounds} {shape} {scheme} t={t}: edgevlm prefill {e['prefill_tok_s']:.2f} "
                        f"decode {e['decode_tok_s']:.2f}")
                for fa in fas:
                    p = last_json(run([args.peer, "--model", path, "--threads", str(t), "--prompt", str(args.prompt),
                                       "--n", str(args.n), "--reps", "1", "--flash-attn", fa], f"peer {key} fa={fa}"))
                    lc.setdefault(key + (fa,), []).append(p)
                    line += f" | llama.cpp fa={fa} prefill {p['prefill_tok_s']:.2f} decode {p['decode_tok_s']:.2f}"
                print(line, flush=True)

    med = statistics.median
    peer_info = lc[next(iter(lc))][0]
    rows = []
    for shape, scheme, path in cases:
        for t in threads:
            key = (shape, scheme, t)
            e = ev[key]
            ep, ed = med([x["prefill_tok_s"] for x in e]), med([x["decode_tok_s"] for x in e])
            bw = med([x["bandwidth_gbs"] for x in e])
            frac = med([x["decode_frac_bandwidth"] for x in e])
            erss = med([x["peak_rss_mb"] for x in e])
            lp = {fa: med([x["prefill_tok_s"] for x in lc[key + (fa,)]]) for fa in fas}
            ld = {fa: med([x["decode_tok_s"] for x in lc[key + (fa,)]]) for fa in fas}
            lrss = min(med([x["peak_rss_mib"] * 1.048576 for x in lc[key + (fa,)]]) for fa in fas)
            bp, bd = max(lp, key=lp.get), max(ld, key=ld.get)
            rows.append(f"| {shape} | {scheme} | {os.path.getsize(path) / 1e9:.2f} | {t} | {ep:.1f} | {lp[bp]:.1f} ({bp}) | "
                        f"**{ep / lp[bp]:.2f}** | {ed:.2f} | {ld[bd]:.2f} ({bd}) | **{ed / ld[bd]:.2f}** | {frac:.2f} of "
                        f"{bw:.0f} GB/s | {erss:.0f} / {lrss:.0f} |")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [BEGIN, "## GGUF quant types: edgevlm vs llama.cpp compiled here", "",
             f"{when}, {cpu_name()} ({cpu_features()}), {os.cpu_count()} logical CPUs, load average {load0:.1f} at the start "
             f"and {os.getloadavg()[0]:.1f} at the end. `bench/run_quant_bench.py --rounds {args.rounds}` "
             f"(medians of {args.rounds} interleaved rounds; prefill {args.prompt} tokens from an empty cache, decode "
             f"{args.n} tokens after it). Files: random weights written by `edgevlm gen-model`/`gen-bluelm` in F16 and "
             "converted by `edgevlm quantize --scheme S` (llama-quantize's per-tensor choices).", "",
             f"Peer: {peer_info['engine']}; {peer_info['build_flags']}; `{peer_info['system_info'].strip()}`; "
             "F16 KV cache, batch 512, flash attention on and off (the faster one per figure is shown). "
             "edgevlm: INT8 KV cache, prefill chunks of 128, one process per measurement.", "",
             "| shape | scheme | GB | threads | edgevlm prefill tok/s | llama.cpp prefill | ratio | edgevlm decode "
             "tok/s | llama.cpp decode | ratio | edgevlm decode, of read bandwidth | peak RSS MB edgevlm / llama.cpp |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"] + rows + [
             "", "Ratio = edgevlm ÷ llama.cpp (above 1: edgevlm faster). Decode of read bandwidth = weight bytes per "
             "token × tokens/s ÷ the read bandwidth `edgevlm bench` measured in the same process at the same thread "
             "count. The peer's peak RSS includes ggml's repacked copies beside the mapped file; edgevlm's "
             "interleaved Q4_K copy replaces the mapped rows.", "", END]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        write_section(args.out, BEGIN, END, text)


if __name__ == "__main__":
    main()
