"""Turns samples into token sequences (ChatML + image block, docs/FORMAT.md) and batches."""
from __future__ import annotations

import numpy as np
import torch

import tiling

IMG = -1   # placeholder id for an image-embedding position


def image_block(tok, img, tcfg: tiling.TilingConfig, tokens_per_tile: int):
    """(ids with IMG placeholders, normalised tiles [n,3,T,T], (m, n))"""
    (m, n), tiles = tiling.image_to_tiles(img, tcfg)
    ids = []
    for item in tiling.layout(m, n, tiles.shape[0] > m * n):
        if isinstance(item, str):
            ids.append(tok.id(item))
        else:
            ids += [IMG] * tokens_per_tile
    return ids, tiling.normalize(tiles, tcfg), (m, n)


def encode_chat(tok, sample, tcfg, tokens_per_tile, n_turns=None, with_answers=True):
    """ids (IMG placeholders), loss flags (1 where the token is an answer target), pixels, grid.
    With with_answers=False, stops after the first assistant prefix (the generation prompt)."""
    ids, loss = [], []
    pixels, grid = None, None
    qa = sample["qa"][:n_turns] if n_turns else sample["qa"]
    im_start, im_end = tok.id("<|im_start|>"), tok.id("<|im_end|>")
    for t, (q, a) in enumerate(qa):
        part = [im_start] + tok.encode("user\n")
        if t == 0 and sample["image"] is not None:
            blk, pixels, grid = image_block(tok, sample["image"], tcfg, tokens_per_tile)
            part += blk + tok.encode("\n")
        part += tok.encode(q) + [im_end] + tok.encode("\n") + [im_start] + tok.encode("assistant\n")
        ids += part
        loss += [0] * len(part)
        if not with_answers:
            return ids, loss, pixels, grid
        ans = tok.encode(a) + [im_end]
        ids += ans
        loss += [1] * len(ans)
        if t + 1 < len(qa):
            nl = tok.encode("\n")
            ids += nl
            loss += [0] * len(nl)
    return ids, loss, pixels, grid


def prompt_text(question: str, with_image: bool) -> str:
    """The rendered prompt the engine builds (image block shown as the <image> marker)."""
    img = "<image>…</image>\n" if with_image else ""
    return f"<|im_start|>user\n{img}{question}<|im_end|>\n<|im_start|>assistant\n"


def collate(encoded, pad_id):
    """encoded: list of (ids, loss, pixels). Next-token targets: position i predicts ids[i+1]."""
    L = max(len(e[0]) for e in encoded) - 1
    B = len(encoded)
    ids = np.full((B, L), pad_id, np.int64)
    img_mask = np.zeros((B, L), bool)
    loss_mask = np.zeros((B, L), bool)
    targets = np.zeros((B, L), np.int64)
    pix = []
    for b, (seq, loss, p) in enumerate(encoded):
        s = np.array(seq[:-1])
        n = len(s)
        img_mask[b, :n] = s == IMG
        ids[b, :n] = np.where(s == IMG, pad_id, s)
        t = np.array(seq[1:])
        targets[b, :n] = np.where(t == IMG, 0, t)
        loss_mask[b, :n] = np.array(loss[1:], bool)
        if p is not None:
            pix.append(p)
    pixels = torch.from_numpy(np.concatenate(pix)) if pix else None
    return (torch.from_numpy(ids), torch.from_numpy(img_mask), pixels, torch.from_numpy(loss_mask),
            torch.from_numpy(targets))
