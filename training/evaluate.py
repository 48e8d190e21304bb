"""Scores a model on the test (or val) split, per task: exact match, and ANLS for the free-text tasks.

  PyTorch:  python3 training/evaluate.py --ckpt training/runs/nano/final.pt [--split test --per-task 100]
  edgevlm:  python3 training/evaluate.py --ckpt ... --cli build/edgevlm --model models/edgevlm-nano.gguf \
                --mmproj models/edgevlm-nano-mmproj.gguf       (also scores the PyTorch answers and their agreement)
  out of distribution: --split ood --per-task 20   (ood.py: per task × condition)
  tiling:   --policy relaxed|llava_next|single   (accuracy and image tokens per policy)
  variants: --cli-args "--kv-type q8" --compare-with f32.json   (agreement of the CLI's answers with an
            earlier run's, e.g. INT8 against F32 KV cache, or a quantized model against F32 files)
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import ood  # noqa: E402
import sequence  # noqa: E402
import tiling  # noqa: E402

MAX_NEW = 24   # answer tokens at most, in PyTorch and through the CLI (-n)
ANLS_TASKS = {"ocr_word", "ocr_code", "multilingual", "banner", "strip", "document", "caption"}


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def anls(pred: str, gold: str, tau: float = 0.5) -> float:
    p, g = pred.strip().lower(), gold.strip().lower()
    if not p and not g:
        return 1.0
    nl = levenshtein(p, g) / max(len(p), len(g))
    return 1.0 - nl if nl < tau else 0.0


@torch.no_grad()
def generate(model, tok, samples, tcfg, max_new=MAX_NEW, batch=32):
    """Greedy answers to the first question of each sample, batched: a padded prefill (causal, so no
    sequence sees another's padding), then one KV-cached step per token at per-sample positions."""
    model.eval()
    c = model.c
    im_end = tok.id("<|im_end|>")
    out, n_img_tokens = [], []
    for s0 in range(0, len(samples), batch):
        chunk = samples[s0:s0 + batch]
        encs = [sequence.encode_chat(tok, s, tcfg, c.tokens_per_tile, n_turns=1, with_answers=False) for s in chunk]
        lens = [len(e[0]) for e in encs]
        n_img_tokens += [sum(1 for t in e[0] if t == sequence.IMG) for e in encs]
        B, Lp = len(chunk), max(lens)
        ids = torch.zeros(B, Lp, dtype=torch.long)
        img_mask = torch.zeros(B, Lp, dtype=torch.bool)
        for b, e in enumerate(encs):
            s = torch.tensor(e[0])
            img_mask[b, :len(s)] = s == sequence.IMG
            ids[b, :len(s)] = torch.where(s == sequence.IMG, torch.zeros_like(s), s)
        pix = [e[2] for e in encs if e[2] is not None]
        img = model.encode_tiles(torch.from_numpy(np.concatenate(pix))).reshape(-1, c.width) if pix else None
        emb = model.embed(ids, img_mask, img)
        cache = model.llm.new_cache(B, Lp + max_new)
        valid = torch.zeros(B, Lp + max_new, dtype=torch.bool)
        h = model.llm.hidden_cached(emb, torch.zeros(B, dtype=torch.long), cache, valid)
        cur = torch.tensor(lens)
        for b in range(B):
            valid[b, :lens[b]] = True
        logits = model.llm.out(h[torch.arange(B), cur - 1])
        done = [False] * B
        gen = [[] for _ in range(B)]
        for _ in range(max_new):
            nxt = logits.argmax(-1)
            for b in range(B):
                if not done[b]:
                    if int(nxt[b]) == im_end:
                        done[b] = True
                    else:
                        gen[b].append(int(nxt[b]))
            if all(done):
                break
            h = model.llm.hidden_cached(model.llm.tok(nxt)[:, None], cur, cache, valid)
            valid[torch.arange(B), cur] = True
            cur = cur + 1
            logits = model.llm.out(h[:, 0])
        out += [tok.decode(g) for g in gen]
    return out, n_img_tokens


def score(samples, preds):
    per = {}
    for s, p in zip(samples, preds):
        gold = s["qa"][0][1]
        d = per.setdefault(s["task"], {"n": 0, "em": 0, "anls": 0.0})
        d["n"] += 1
        d["em"] += int(p.strip() == gold)
        d["anls"] += anls(p, gold)
    tot = {"n": sum(d["n"] for d in per.values()), "em": sum(d["em"] for d in per.values()),
           "anls": sum(d["anls"] for d in per.values())}
    table = {t: {"n": d["n"], "exact_match": d["em"] / d["n"], "anls": d["anls"] / d["n"]} for t, d in per.items()}
    table["overall"] = {"n": tot["n"], "exact_match": tot["em"] / tot["n"], "anls": tot["anls"] / tot["n"]}
    return table


def markdown(table, title="") -> str:
    lines = [f"### {title}" if title else "", "| task | n | exact match | ANLS |", "|---|---|---|---|"]
    for t, d in table.items():
        a = f"{d['anls']:.3f}" if t in ANLS_TASKS or t == "overall" else "–"
        lines.append(f"| {t} | {d['n']} | {100 * d['exact_match']:.1f}% | {a} |")
    return "\n".join(lines)


def same_answers(a, b) -> float:
    """The share of prompts whose two answers are equal (whitespace aside)."""
    return float(np.mean([x.strip() == y.strip() for x, y in zip(a, b)]))


def run_cli(cli, model_path, mmproj, samples, workdir, extra=()):
    """Answers through the edgevlm CLI, one process per prompt, greedy: `edgevlm run -m MODEL
    --mmproj MMPROJ --image IMG -p QUESTION -n MAX_NEW --temp 0` (the flags scripts/demo.sh uses), or
    `edgevlm generate` for questions without an image. The answer is stdout up to the closing
    "[timing] ..." line."""
    preds = []
    for i, s in enumerate(samples):
        q = s["qa"][0][0]
        if s["image"] is not None:
            p = os.path.join(workdir, f"{i}.png")
            s["image"].save(p)
            cmd = [cli, "run", "-m", model_path, "--mmproj", mmproj, "--image", p]
        else:   # pure-text questions: `run` needs an image, `generate` applies the same chat template
            cmd = [cli, "generate", "-m", model_path]
        cmd += ["-p", q, "-n", str(MAX_NEW), "--temp", "0", "-t", "1", *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        out = r.stdout
        k = out.rfind("[timing]")
        if k >= 0:
            out = out[:k]
        preds.append(out.strip() if r.returncode == 0 else f"<error rc={r.returncode}: {r.stderr.strip()[:200]}>")
    return preds


def main():
    import train  # noqa: E402  (model loading helpers)
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True, help="a checkpoint written by train.py (final.pt), or a GGUF pair's MODEL.gguf")
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-task", type=int, default=100)
    ap.add_argument("--policy", default=None, help="override the tiling policy (relaxed, llava_next, single)")
    ap.add_argument("--max-tiles", type=int, default=None, help="override the model's tile budget")
    ap.add_argument("--compare-tiling", action="store_true",
                    help="score relaxed, llava_next and single tiling: accuracy and image tokens per image")
    ap.add_argument("--cli", default=None, help="path of the edgevlm binary to score as well")
    ap.add_argument("--model", default=None)
    ap.add_argument("--mmproj", default=None)
    ap.add_argument("--cli-args", default="", help="extra flags for every CLI call, e.g. \"--kv-type q8\"")
    ap.add_argument("--compare-with", default=None,
                    help="a results JSON of an earlier --cli run: report how often this run's CLI answers equal its")
    ap.add_argument("--out", default=None, help="write the results JSON here")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, tok, tcfg = train.load_checkpoint(a.ckpt)
    if a.policy:
        tcfg = tiling.TilingConfig(**{**tcfg.__dict__, "policy": a.policy})
    if a.max_tiles:
        tcfg = tiling.TilingConfig(**{**tcfg.__dict__, "max_tiles": a.max_tiles})
    if a.split == "ood":
        return evaluate_ood(a, model, tok, tcfg)
    samples = data.eval_set(a.split, a.per_task)
    if a.compare_tiling:
        rows = ["| tiling | overall exact match | image tokens / image | " + " | ".join(data.TASK_NAMES) + " |",
                "|---" * (3 + len(data.TASK_NAMES)) + "|"]
        out = {}
        for pol in ("relaxed", "llava_next", "single"):
            tc = tiling.TilingConfig(**{**tcfg.__dict__, "policy": pol})
            preds, ntok = generate(model, tok, samples, tc)
            table = score(samples, preds)
            ntok_mean = float(np.mean([n for n, s in zip(ntok, samples) if s["image"] is not None]))
            out[pol] = {"table": table, "image_tokens_mean": ntok_mean}
            rows.append(f"| {pol} | {100 * table['overall']['exact_match']:.1f}% | {ntok_mean:.1f} | "
                        + " | ".join(f"{100 * table[t]['exact_match']:.0f}%" for t in data.TASK_NAMES) + " |")
            print(rows[-1], flush=True)
        print("\n".join(rows))
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"split": a.split, "per_task": a.per_task, "policies": out, "markdown": "\n".join(rows)}, f, indent=1)
        return
    t0 = time.time()
    preds, ntok = generate(model, tok, samples, tcfg)
    res = {"split": a.split, "policy": tcfg.policy, "pytorch": score(samples, preds),
           "image_tokens_mean": float(np.mean([n for n, s in zip(ntok, samples) if s["image"] is not None])),
           "seconds": time.time() - t0}
    print(markdown(res["pytorch"], f"PyTorch, {a.split}, tiling {tcfg.policy}, "
                   f"{res['image_tokens_mean']:.1f} image tokens/image"))
    if a.cli:
        with tempfile.TemporaryDirectory() as d:
            cp = run_cli(a.cli, a.model, a.mmproj, samples, d, shlex.split(a.cli_args))
        res["edgevlm"] = score(samples, cp)
        res["agreement"] = same_answers(preds, cp)
        res["cli_answers"] = cp
        print(markdown(res["edgevlm"], "edgevlm CLI"))
        print(f"edgevlm == PyTorch on {100 * res['agreement']:.1f}% of prompts")
        if a.compare_with:
            ref = json.load(open(a.compare_with))["cli_answers"]
            if len(ref) != len(cp):
                sys.exit(f"--compare-with: {a.compare_with} holds {len(ref)} answers, this run {len(cp)}")
            res["agreement_with_reference"] = same_answers(ref, cp)
            print(f"edgevlm ({a.cli_args or 'default flags'}) == {a.compare_with} on "
                  f"{100 * res['agreement_with_reference']:.1f}% of prompts")
    if a.out:
        res["examples"] = [{"task": s["task"], "q": s["qa"][0][0], "gold": s["qa"][0][1], "pred": p}
                           for s, p in zip(samples, preds)]
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1, ensure_ascii=False)


def evaluate_ood(a, model, tok, tcfg):
    """The out-of-distribution set (ood.py), scored per task × condition in PyTorch and, with --cli, through
    the engine (--max-tiles is passed on to it)."""
    samples = ood.ood_set(a.per_task)
    t0 = time.time()
    preds, ntok = generate(model, tok, samples, tcfg)
    res = {"split": "ood", "per_cell": a.per_task, "max_tiles": tcfg.max_tiles, "pytorch": ood.table(samples, preds),
           "seconds": time.time() - t0}
    print(ood.markdown(res["pytorch"], f"PyTorch, out-of-distribution set, {a.per_task} per cell, "
                                       f"up to {tcfg.max_tiles} tiles"), flush=True)
    if a.cli:
        extra = shlex.split(a.cli_args) + (["--max-tiles", str(a.max_tiles)] if a.max_tiles else [])
        with tempfile.TemporaryDirectory() as d:
            cp = run_cli(a.cli, a.model, a.mmproj, samples, d, extra)
        res["edgevlm"] = ood.table(samples, cp)
        res["agreement"] = same_answers(preds, cp)
        preds = cp
        print(ood.markdown(res["edgevlm"], "edgevlm CLI"))
        print(f"edgevlm == PyTorch on {100 * res['agreement']:.1f}% of prompts")
    if a.out:
        res["examples"] = [{"condition": s["condition"], "task": s["task"], "q": s["qa"][0][0], "gold": s["qa"][0][1],
                            "pred": p} for s, p in zip(samples, preds)]
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
