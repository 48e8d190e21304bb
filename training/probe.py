"""Does a checkpoint look at its images? Per task: teacher-forced answer loss with each sample's own
image against another sample's image (equal losses = the decoder answers blind), plus the ViT output's
image dependence (std across tiles / overall std) and the image- vs token-embedding RMS.

  python3 training/probe.py --ckpt training/runs/nano/final.pt [--split val --per-task 32]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import sequence  # noqa: E402


@torch.no_grad()
def probe(model, tok, tcfg, split="val", per_task=32):
    pad = tok.id("<|endoftext|>")
    tpt = model.c.tokens_per_tile
    rows = {}
    for task in data.TASK_NAMES:
        samples = [data.make_sample(split, i, task=task, max_turns=1) for i in range(per_task)]
        enc = [sequence.encode_chat(tok, s, tcfg, tpt, n_turns=1)[:3] for s in samples]
        if enc[0][2] is None:
            continue
        own = model(*sequence.collate(enc, pad)).item()
        # another sample's image with the same tile count (so the sequence layout stays valid)
        swapped = []
        for k, e in enumerate(enc):
            other = next((enc[(k + j) % len(enc)][2] for j in range(1, len(enc))
                          if enc[(k + j) % len(enc)][2].shape == e[2].shape), None)
            swapped.append((e[0], e[1], other if other is not None else e[2]))
        other = model(*sequence.collate(swapped, pad)).item()
        pix = torch.from_numpy(np.concatenate([e[2] for e in enc]))
        h = model.vit(pix)
        img = model.encode_tiles(pix)
        rows[task] = {"loss_own_image": own, "loss_other_image": other,
                      "vit_image_dependence": (h.std(0).mean() / h.std()).item(),
                      "image_rms": img.pow(2).mean().sqrt().item()}
    tok_rms = model.llm.tok.weight.pow(2).mean().sqrt().item()
    return rows, tok_rms


def main():
    import train
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--per-task", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, tok, tcfg = train.load_checkpoint(a.ckpt)
    rows, tok_rms = probe(model, tok, tcfg, a.split, a.per_task)
    print(f"token-embedding RMS {tok_rms:.4f}")
    print("| task | loss, own image | loss, another image | ViT image dependence | image-embedding RMS |")
    print("|---|---|---|---|---|")
    for t, r in rows.items():
        print(f"| {t} | {r['loss_own_image']:.3f} | {r['loss_other_image']:.3f} | "
              f"{r['vit_image_dependence']:.2f} | {r['image_rms']:.3f} |")


if __name__ == "__main__":
    main()
