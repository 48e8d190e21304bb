#!/usr/bin/env python3
"""Image questions per VLM family: edgevlm vs llama.cpp's mtmd compiled natively here (bench/peer-native).

For each family at a published model's size (random weights in llama.cpp's converter conventions,
written by `edgevlm gen-vlm-pair` into --workdir, never git) and one 768x1536 image, each round runs
`edgevlm run --json --ignore-eos` (image encode = the wait for the image's encode after the question,
prefill, decode tokens/s, peak RSS) and then `peer_mtmd_bench` (mtmd: preprocessing + encode, prefill,
decode, peak RSS) once per flash-attention setting, the faster counting per figure. edgevlm runs
with the family's mtmd-compatible tiling (--tiling ...-mtmd) so both encode the same tiles; the
table gives both engines' image positions. Medians of --rounds interleaved rounds. Output: a Markdown
section of docs/BENCHMARKS.md between the family-bench markers, and stdout.

Usage: bench/run_family_bench.py [--edgevlm build/edgevlm] [--peer build/peer-native/peer_mtmd_bench]
       [--families smolvlm-500m,internvl3-1b] [--threads 2] [--rounds 3] [-n 32]
"""

import argparse
import datetime
import os
import statistics
import sys

from benchlib import GPT2_VOCAB, ROOT, cpu_name, last_json, run, write_section

BEGIN, END = "<!-- family-bench:begin -->", "<!-- family-bench:end -->"
VOCAB = GPT2_VOCAB
# name: (gen-vlm-pair flags, edgevlm run flags, description). Shapes of the published models; the
# vocabulary is GPT-2's (50257) for all, the files' types those of ggml-org's GGUF releases (Q8_0).
FAMILIES = {
    "smolvlm-500m": (["--family", "idefics3", "--embd", "960", "--layers", "32", "--heads", "15", "--kv-heads", "5",
                      "--ff", "2560", "--vit-embd", "768", "--vit-ff", "3072", "--vit-layers", "12", "--vit-heads",
                      "12", "--tile", "512", "--patch", "16", "--scale-factor", "4", "--longest-edge", "2048",
                      "--type", "q8_0", "--vision-type", "q8_0"],
                     ["--tiling", "idefics3-mtmd", "--resample", "mtmd"],
                     "SmolVLM-500M-Instruct: SigLIP-B/16 at 512 (12 layers), pixel shuffle 4, SmolLM2-360M decoder"),
    "internvl3-1b": (["--family", "internvl", "--embd", "896", "--layers", "24", "--heads", "14", "--kv-heads", "2",
                      "--ff", "4864", "--vit-embd", "1024", "--vit-ff", "4096", "--vit-layers", "24", "--vit-heads",
                      "16", "--tile", "448", "--patch", "14", "--scale-factor", "2", "--min-tiles", "1",
                      "--max-tiles", "12", "--type", "q8_0", "--vision-type", "q8_0"],
                     ["--tiling", "internvl-mtmd", "--resample", "mtmd", "--vit-compat", "mtmd"],
                     "InternVL3-1B: InternViT-300M at 448 (24 layers), pixel shuffle 0.5, Qwen2.5-0.5B-sized decoder"),
    "lfm2vl-1.6b": (["--family", "lfm2", "--embd", "2048", "--layers", "16", "--heads", "32", "--kv-heads", "8",
                     "--ff", "8192", "--vit-embd", "1152", "--vit-ff", "4304", "--vit-layers", "26", "--vit-heads",
                     "16", "--tile", "256", "--patch", "16", "--scale-factor", "2", "--type", "q8_0",
                     "--vision-type", "q8_0"],
                    ["--tiling", "lfm2-mtmd"],
                    "LFM2-VL-1.6B: SigLIP2 NaFlex so400m-sized (26 layers) on 512-px tiles + its smart-resized "
                    "thumbnail, pixel unshuffle 2, LFM2-1.2B-sized decoder (convolution and attention layers alternating)"),
    "gemma3-4b": (["--family", "gemma3", "--embd", "2560", "--layers", "34", "--heads", "10", "--kv-heads", "5",
                   "--ff", "10240", "--vit-embd", "1152", "--vit-ff", "4304", "--vit-layers", "27", "--vit-heads",
                   "16", "--tile", "896", "--patch", "14", "--scale-factor", "4", "--sliding-window", "1024",
                   "--type", "q8_0", "--vision-type", "q8_0"],
                  ["--resample", "mtmd"],
                  "Gemma 3 4B: SigLIP so400m at 896 (27 layers, 4096 patches), 4x4 average pool (256 tokens), a "
                  "Gemma-3-4B-sized decoder (34 layers, 2560 wide, heads of 256, 1024-position sliding window)"),
    "qwen25vl-3b": (["--family", "qwen25vl", "--embd", "2048", "--layers", "36", "--heads", "16", "--kv-heads", "2",
                     "--ff", "11008", "--vit-embd", "1280", "--vit-ff", "3420", "--vit-layers", "32", "--vit-heads",
                     "16", "--tile", "560", "--patch", "14", "--wa-pattern", "8", "--type", "q8_0",
                     "--vision-type", "q8_0"],
                    ["--resample", "mtmd"],
                    "Qwen2.5-VL-3B: its ViT (32 layers, 1280 wide, SwiGLU 3420, 2-D RoPE, 112-px windows with every "
                    "8th layer full) at the image's own size (768x1536 -> 27x55 tokens), a Qwen2.5-3B-sized decoder "
                    "(36 layers, 2048 wide, 16/2 heads, M-RoPE)"),
}





def make_image(path, w, h):
    from PIL import Image  # Debian's python3-pil
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 255) // (w - 1), (y * 255) // (h - 1), ((x // 32 + y // 32) % 2) * 200)
    img.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgevlm", default=os.path.join(ROOT, "build", "edgevlm"))
    ap.add_argument("--peer", default=os.path.join(ROOT, "build", "peer-native", "peer_mtmd_bench"))
    ap.add_argument("--workdir", default="/tmp/edgevlm-family-bench")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--image-size", default="768x1536")
    ap.add_argument("--flash-attn", default="on,off")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"), help="'-' for stdout only")
    args = ap.parse_args()
    if not os.path.exists(args.peer):
        sys.exit(f"run_family_bench: no peer at {args.peer} (bench/peer-native/build.sh builds it)")
    os.makedirs(args.workdir, exist_ok=True)
    w, h = (int(v) for v in args.image_size.split("x"))
    image = os.path.join(args.workdir, f"image-{w}x{h}.png")
    if not os.path.exists(image):
        make_image(image, w, h)
    fams = args.families.split(",")
    files = {}
    for f in fams:
        llm, mmproj = (os.path.join(args.workdir, f"{f}{s}.gguf") for s in ("", "-mmproj"))
        if not (os.path.exists(llm) and os.path.exists(mmproj)):
            run([args.edgevlm, "gen-vlm-pair", "--out", llm, "--mmproj-out", mmproj, "--vocab-from", VOCAB]
                + FAMILIES[f][0], f"gen-vlm-pair {f}")
        files[f] = (llm, mmproj)
    fas = args.flash_attn.split(",")
    ev, lc = {f: [] for f in fams}, {(f, fa): [] for f in fams for fa in fas}
    load0 = os.getloadavg()[0]
    for r in range(args.rounds):
        for f in fams:
            llm, mmproj = files[f]
            e = last_json(run([args.edgevlm, "run", "-m", llm, "--mmproj", mmproj, "--image", image, "-p",
                               "Describe the image.", "--json", "--ignore-eos", "-n", str(args.n), "-t",
                               str(args.threads)] + FAMILIES[f][1], f"edgevlm run {f}"))
            ev[f].append(e)
            t = e["timings"]
            line = (f"round {r + 1}/{args.rounds} {f}: edgevlm encode {t['encode_wait_ms'] / 1e3:.2f} s prefill "
                    f"{t['prefill_ms'] / 1e3:.2f} s decode {t['decode_tok_s']:.1f} tok/s")
            for fa in fas:
                p = last_json(run([args.peer, "--model", llm, "--mmproj", mmproj, "--image", image, "--threads",
                                   str(args.threads), "--n", str(args.n), "--reps", "1", "--flash-attn", fa],
                                  f"peer {f} fa={fa}"))
                lc[(f, fa)].append(p)
                line += f" | mtmd fa={fa} encode {p['encode_s']:.2f} prefill {p['prefill_s']:.2f} decode {p['decode_tok_s']:.1f}"
            print(line, flush=True)

    med = statistics.median
    peer_info = lc[(fams[0], fas[0])][0]
    rows = []
    for f in fams:
        t = [x["timings"] for x in ev[f]]
        enc, pre = med([x["encode_wait_ms"] / 1e3 for x in t]), med([x["prefill_ms"] / 1e3 for x in t])
        dec, rss = med([x["decode_tok_s"] for x in t]), med([x["peak_rss_mib"] for x in t])
        positions = ev[f][0]["usage"]["prompt_tokens"]
        penc = {fa: med([x["encode_s"] for x in lc[(f, fa)]]) for fa in fas}
        ppre = {fa: med([x["prefill_s"] for x in lc[(f, fa)]]) for fa in fas}
        pdec = {fa: med([x["decode_tok_s"] for x in lc[(f, fa)]]) for fa in fas}
        prss = min(med([x["peak_rss_mib"] for x in lc[(f, fa)]]) for fa in fas)
        be, bp, bd = min(penc, key=penc.get), min(ppre, key=ppre.get), max(pdec, key=pdec.get)
        ppos = lc[(f, fas[0])][0]["prompt_positions"]
        # edgevlm's `run` prefills the image positions while the question is pending, inside its encode
        # wait; the sum (time to the first token) is the figure both engines measure alike.
        ttft = med([(x["encode_wait_ms"] + x["prefill_ms"]) / 1e3 for x in t])
        pttft = min(med([x["encode_s"] + x["prefill_s"] for x in lc[(f, fa)]]) for fa in fas)
        rows.append(f"| {f} | {t[0]['tiles']} | {positions} / {ppos} | {ttft:.2f} / {pttft:.2f} | **{pttft / ttft:.2f}** | "
                    f"{enc:.2f} / {penc[be]:.2f} ({be}) | "
                    f"**{penc[be] / enc:.2f}** | {pre:.2f} / {ppre[bp]:.2f} ({bp}) | **{ppre[bp] / pre:.2f}** | "
                    f"{dec:.1f} / {pdec[bd]:.1f} ({bd}) | **{dec / pdec[bd]:.2f}** | {rss:.0f} / {prss:.0f} |")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    descr = "; ".join(f"{f}: {FAMILIES[f][2]}" for f in fams)
    lines = [BEGIN, "## VLM families: edgevlm vs llama.cpp's mtmd compiled here", "",
             f"{when}, {cpu_name()}, {args.threads} threads, load average {load0:.1f} at the start and "
             f"{os.getloadavg()[0]:.1f} at the end. `bench/run_family_bench.py --rounds {args.rounds}` (medians of "
             f"{args.rounds} interleaved rounds), one {w}x{h} PNG, \"Describe the image.\", {args.n} greedy tokens. "
             f"Pairs (random weights, Q8_0 decoder and ViT): {descr}.", "",
             f"Peer: {peer_info['engine']}; {peer_info['build_flags']}; F16 KV cache; flash attention "
             f"{' and '.join(fas)} (the better per figure shown). Its encode is mtmd_tokenize (preprocessing) plus mtmd_encode_chunk; "
             "edgevlm's is the wait for the image after the question (PNG decode, tiling, ViT, projector, and the "
             "image positions' prefill, which `run` does while the question is pending: compare the sums). "
             "Ratios: > 1 means edgevlm is faster (or, for RSS, see the MiB).", "",
             "| family | tiles (edgevlm) | prompt positions edgevlm / mtmd | encode + prefill s edgevlm / mtmd | ratio | encode s "
             "edgevlm / mtmd | ratio | prefill s edgevlm / mtmd | ratio | decode tok/s edgevlm / mtmd | ratio | "
             "peak RSS MiB edgevlm / mtmd |", "|---|---|---|---|---|---|---|---|---|---|---|---|"] + rows + ["", END]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        write_section(args.out, BEGIN, END, text)


if __name__ == "__main__":
    main()
