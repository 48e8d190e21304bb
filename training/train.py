"""The nano model's training recipe (BlueLM-V-3B's two stages, preceded by component pretraining).

  python3 training/train.py --out training/runs/nano            # the full recipe (≤ ~100 min, 2 threads)
  python3 training/train.py --out training/runs/smoke --smoke   # a 3-minute end-to-end check
  python3 training/train.py --out training/runs/nano --resume   # continue after an interruption
  python3 training/train.py --out training/runs/nano2 --init training/runs/nano/final.pt \
      --shares 0 0 0 1 --minutes 60                             # more stage 2 from a finished run

Phases (each has a sample cap and a wall-clock share of --minutes; it ends at whichever comes first,
and its cosine learning-rate schedule follows max(sample progress, time progress)):
  siglip  ViT + a small text tower, SigLIP sigmoid loss on (image, description) pairs
  read    ViT + a per-patch glyph head: which character each patch shows (the glyph loss)
  text    decoder language modelling on text-only renderings of the tasks and pure-text questions
  stage1  projector only (ViT and decoder frozen), answer tokens only
  stage2  everything, answer tokens only
Then: export of the GGUF pair, test-split evaluation per task, loss plot. Outputs in --out:
  tokenizer.json, log.jsonl, loss.png, last.pt (resume), final.pt, edgevlm-nano.gguf, edgevlm-nano-mmproj.gguf,
  results.json, results.md; with --install DIR the GGUF pair and results are copied there.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import lora  # noqa: E402
import sequence  # noqa: E402
import tiling  # noqa: E402
import variation  # noqa: E402
from model import ModelConfig, VLM, merge2x2  # noqa: E402
from tokenizer import BPETokenizer  # noqa: E402

PHASES = ["siglip", "read", "text", "stage1", "stage2"]
PHASE_BASE = {"siglip": 100_000_000, "read": 500_000_000, "text": 200_000_000, "stage1": 300_000_000,
              "stage2": 400_000_000}
CORPUS_BASE = 900_000_000


class TextTower(nn.Module):
    """SigLIP's text encoder, training-only (not exported)."""

    def __init__(self, vocab, d=128, layers=2, ctx=64):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(ctx, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d, d)
        self.ctx = ctx

    def forward(self, ids, pad):
        ids = ids[:, :self.ctx]
        pad = pad[:, :self.ctx]
        x = self.tok(ids) + self.pos[:ids.shape[1]]
        x = self.enc(x, src_key_padding_mask=pad)
        keep = (~pad).float().unsqueeze(-1)
        return self.head((x * keep).sum(1) / keep.sum(1).clamp(min=1))


class SigLIPHead(nn.Module):
    def __init__(self, v_width, d=128):
        super().__init__()
        self.img = nn.Linear(v_width, d)
        self.t = nn.Parameter(torch.tensor(math.log(10.0)))
        self.b = nn.Parameter(torch.tensor(-10.0))


def siglip_loss(zi, zt, t, b):
    zi, zt = F.normalize(zi, dim=-1), F.normalize(zt, dim=-1)
    logits = zi @ zt.T * t.exp() + b
    labels = 2 * torch.eye(len(zi)) - 1
    return -F.logsigmoid(labels * logits).sum() / len(zi)


def text_only(tok, sample):
    """A ChatML conversation with the image replaced by its description; LM loss on every token."""
    ids = []
    for t, (q, a) in enumerate(sample["qa"]):
        ctx = (sample["desc"] + "\n") if (t == 0 and sample["image"] is not None) else ""
        ids += [tok.id("<|im_start|>")] + tok.encode(f"user\n{ctx}{q}") + [tok.id("<|im_end|>")] + tok.encode("\n")
        ids += [tok.id("<|im_start|>")] + tok.encode(f"assistant\n{a}") + [tok.id("<|im_end|>")] + tok.encode("\n")
    return ids, [1] * len(ids), None


class Trainer:
    def __init__(self, a):
        self.a = a
        os.makedirs(a.out, exist_ok=True)
        self.tcfg = tiling.TilingConfig(tile=a.tile, max_tiles=a.max_tiles, policy=a.policy)
        tok_path = os.path.join(a.out, "tokenizer.json")
        init = load_init(a.init) if a.init else None
        if init is not None and not os.path.exists(tok_path):
            BPETokenizer([tuple(m) for m in init["tokenizer_merges"]]).save(tok_path)
        if os.path.exists(tok_path):
            self.tok = BPETokenizer.load(tok_path)
        else:
            t0 = time.time()
            texts = data.corpus_texts(a.corpus, base=CORPUS_BASE)
            self.tok = BPETokenizer.train(texts, a.vocab)
            self.tok.save(tok_path)
            print(f"tokenizer: {self.tok.n_vocab} tokens, {len(self.tok.merges)} merges, {time.time() - t0:.1f}s", flush=True)
        self.mc = ModelConfig(tile=a.tile, patch=a.patch, v_width=a.v_width, v_layers=a.v_layers, v_heads=a.v_heads,
                              v_ff=4 * a.v_width, vocab=self.tok.n_vocab, width=a.width, layers=a.layers,
                              heads=a.heads, kv_heads=a.kv_heads, ff=a.ff)
        torch.manual_seed(a.seed)
        self.model = VLM(self.mc)
        if init is not None:   # continue from another run's weights (e.g. more stage 2 on a quieter machine)
            self.model.load_state_dict(init["model"])
            print(f"initialised from {a.init}", flush=True)
        self.text_tower = TextTower(self.tok.n_vocab, d=a.v_width)
        self.sig = SigLIPHead(a.v_width, a.v_width)
        # Training-only heads: which description tokens the image contains, from the ViT's pooled output;
        # which character each patch shows (its glyph class, 0 for none), from each patch's ViT output.
        self.content = nn.Linear(a.v_width, self.tok.n_vocab)
        self.glyph = nn.Linear(a.v_width, len(data.GLYPHS) + 1)
        # A run that goes on from another's weights keeps its heads where the checkpoint has them; a GGUF
        # pair has none, and fresh heads are fitted alone before stage 2 (fit_fresh_heads).
        self.fresh_heads = init is not None and "glyph" not in init
        if init is not None:
            for key, head in (("text_tower", self.text_tower), ("sig", self.sig), ("content", self.content),
                              ("glyph", self.glyph)):
                if key in init:
                    head.load_state_dict(init[key])
        # The modular variant: stage 2 trains a LoRA adapter on the frozen decoder instead of the decoder.
        self.lora = None
        if a.modular_lora:
            self.lora = lora.DecoderLora(self.model.llm, a.modular_lora, a.lora_alpha).attach(self.model.llm)
            if init is not None and "lora" in init:
                self.lora.load_state_dict(init["lora"])
        self.task_boost = parse_task_boost(a.task_boost)
        self.pad = self.tok.id("<|endoftext|>")
        self.log = open(os.path.join(a.out, "log.jsonl"), "a")
        self.state = {"phase": 0, "samples": 0, "elapsed": 0.0, "step": 0}
        self.progress = 0.0   # of the running phase: max(sample share, time share)
        self.opt = None
        n = sum(p.numel() for p in self.model.parameters())
        print(f"model: {n / 1e6:.2f}M parameters (ViT {sum(p.numel() for p in self.model.vit.parameters()) / 1e6:.2f}M), "
              f"config {self.mc.to_dict()}", flush=True)

    # ---- schedule
    def phase_cfg(self, name):
        a = self.a
        share = dict(zip(PHASES, a.shares))[name]
        cap = dict(zip(PHASES, a.samples))[name]
        lr = dict(zip(PHASES, a.lrs))[name]
        return share * a.minutes * 60, cap, lr

    def params_for(self, name):
        m = self.model
        for p in m.parameters():
            p.requires_grad_(False)
        if name == "siglip":
            ps = list(m.vit.parameters()) + list(self.text_tower.parameters()) + list(self.sig.parameters())
        elif name == "read":
            ps = list(m.vit.parameters()) + list(self.glyph.parameters())
        elif name == "text":
            ps = list(m.llm.parameters())
        elif name == "stage1":
            ps = list(m.proj.parameters())
        else:   # stage 2; the modular variant keeps the decoder the text model and trains its adapter
            ps = (list(m.parameters()) if self.lora is None
                  else list(m.vit.parameters()) + list(m.proj.parameters()) + list(self.lora.parameters()))
            ps += list(self.content.parameters()) if self.a.content_loss > 0 else []
            ps += list(self.glyph.parameters()) if self.a.glyph_loss > 0 else []
        for p in ps:
            p.requires_grad_(True)
        return ps

    # ---- batches
    def batches(self, name, start):
        """Yields (batch, n_samples) forever; sample indices continue from `start` so resume is exact.
        Draws 4 batches at once and groups them by length to cut padding."""
        a = self.a
        i = start
        bs = a.siglip_batch if name in ("siglip", "read") else a.batch
        cap = self.phase_cfg(name)[1]
        while True:
            group = []
            while len(group) < 4 * bs:
                # the curriculum follows the phase's progress, as the learning rate does: on a busy machine
                # the phase ends on its time share long before its sample cap
                prog = max(i / cap, self.progress)
                w = data.curriculum_weights(prog if a.curriculum else 1.0) if name == "stage2" else \
                    data.READING_WEIGHTS if name == "read" else None
                if name == "stage2" and self.task_boost:
                    w = {t: v * self.task_boost.get(t, 1.0) for t, v in w.items()}
                s = data.make_sample("train", PHASE_BASE[name] + a.data_offset + i, weights=w,
                                     recipe=variation.TRAIN if a.vary else None)
                i += 1
                if name in ("siglip", "read"):
                    if s["image"] is None:
                        continue
                    group.append(s)
                elif name == "text":
                    group.append(text_only(self.tok, s))
                else:
                    if name == "stage1" and s["image"] is None:
                        continue
                    ids, loss, pix, grid = sequence.encode_chat(self.tok, s, self.tcfg, self.mc.tokens_per_tile)
                    group.append((ids, loss, pix, self.tok.encode(s["desc"]) if pix is not None else [],
                                  self.glyph_labels(s, grid, 0 if pix is None else pix.shape[0])))
            if name not in ("siglip", "read"):
                group.sort(key=lambda e: len(e[0]))
            chunks = [group[k * bs:(k + 1) * bs] for k in range(4)]
            rng = np.random.default_rng(i)
            for k in rng.permutation(4):
                yield chunks[k], i

    def glyph_labels(self, s, grid, n_tiles):
        if not n_tiles:
            return None
        labels = tiling.glyph_labels(s["glyphs"], s["image"].size, grid, self.tcfg, self.mc.patch, n_tiles)
        if not self.a.glyph_thumbnail and n_tiles > grid[0] * grid[1]:
            labels[-1] = -1   # ignored by the loss
        return labels

    def glyph_loss(self, vit_out, labels):
        """Cross-entropy of each patch's glyph class (labels [tiles, g, g], tiles in vit_out's order). A dense,
        local signal that teaches the ViT to read: through the decoder alone, and through the pooled content
        loss, it learned colours and shapes but no characters (docs/TRAINING.md)."""
        w = torch.ones(len(data.GLYPHS) + 1)
        w[0] = self.a.glyph_bg_weight
        return F.cross_entropy(self.glyph(vit_out.reshape(-1, vit_out.shape[-1])), labels.reshape(-1), weight=w,
                               ignore_index=-1)

    @torch.no_grad()
    def glyph_accuracy(self, vit_out, labels):
        """The share of glyph patches whose class the glyph head gets right (background excluded)."""
        on = labels.reshape(-1) > 0
        pred = self.glyph(vit_out.reshape(-1, vit_out.shape[-1])[on]).argmax(-1)
        return (pred == labels.reshape(-1)[on]).float().mean().item() if on.any() else 0.0

    def loss(self, name, batch):
        if name == "read":
            tiles, labels = [], []
            for s in batch:
                grid, t = tiling.image_to_tiles(s["image"], self.tcfg)
                tiles.append(tiling.normalize(t, self.tcfg))
                labels.append(self.glyph_labels(s, grid, len(t)))
            vit_out = self.model.vit(torch.from_numpy(np.concatenate(tiles)))
            labels = torch.from_numpy(np.concatenate(labels))
            loss = self.glyph_loss(vit_out, labels)
            self.last_parts = {"glyph_acc": round(self.glyph_accuracy(vit_out, labels), 3)}
            return loss
        if name == "siglip":
            tiles, owner, caps = [], [], []
            for j, s in enumerate(batch):
                _, t = tiling.image_to_tiles(s["image"], self.tcfg)
                tiles.append(tiling.normalize(t, self.tcfg))
                owner += [j] * len(t)
                caps.append(self.tok.encode(s["desc"]))
            h = self.model.vit(torch.from_numpy(np.concatenate(tiles))).mean(1)
            owner = torch.tensor(owner)
            pooled = torch.zeros(len(batch), h.shape[1]).index_add(0, owner, h)
            pooled = pooled / torch.bincount(owner, minlength=len(batch)).unsqueeze(1).float()
            L = max(len(c) for c in caps)
            ids = torch.full((len(caps), L), self.pad)
            pad = torch.ones(len(caps), L, dtype=torch.bool)
            for j, c in enumerate(caps):
                ids[j, :len(c)] = torch.tensor(c)
                pad[j, :len(c)] = False
            return siglip_loss(self.sig.img(pooled), self.text_tower(ids, pad), self.sig.t, self.sig.b)
        ids, img_mask, pixels, loss_mask, targets = sequence.collate([e[:3] for e in batch], self.pad)
        if name == "text":
            e = self.model.llm.tok(ids)
            h = self.model.llm.hidden(e)
            return F.cross_entropy(self.model.llm.out(h[loss_mask]), targets[loss_mask])
        if pixels is None or not pixels.shape[0]:
            return self.model(ids, img_mask, pixels, loss_mask, targets)
        m = self.model
        vit_out = m.vit(pixels)
        img = m.proj(merge2x2(vit_out, m.c.tile // m.c.patch)).reshape(-1, m.c.width)
        h = m.llm.hidden(m.embed(ids, img_mask, img))
        ce = F.cross_entropy(m.llm.out(h[loss_mask]), targets[loss_mask])
        if name == "stage2" and (self.a.content_loss > 0 or self.a.glyph_loss > 0):
            parts = {"answer_loss": round(ce.item(), 5)}
            if self.a.content_loss > 0:
                aux = self.content_loss(vit_out, batch)
                parts["content_loss"] = round(aux.item(), 3)
                ce = ce + self.a.content_loss * aux
            if self.a.glyph_loss > 0:
                labels = torch.from_numpy(np.concatenate([e[4] for e in batch if e[4] is not None]))
                aux = self.glyph_loss(vit_out, labels)
                parts["glyph_loss"] = round(aux.item(), 3)
                parts["glyph_acc"] = round(self.glyph_accuracy(vit_out, labels), 3)
                ce = ce + self.a.glyph_loss * aux
            self.last_parts = parts
        # Optionally hold image embeddings at the scale of token embeddings (the first model's were ~300×
        # larger); measured not to make the model look at its images (docs/TRAINING.md), so off by default.
        if self.a.scale_penalty <= 0:
            return ce
        rms_img = img.pow(2).mean().sqrt()
        rms_tok = m.llm.tok.weight.pow(2).mean().sqrt().detach()
        return ce + self.a.scale_penalty * torch.log(rms_img / rms_tok).pow(2)

    def content_loss(self, vit_out, batch):
        """Multi-label loss: from each image's mean ViT output, which tokens its description contains
        (the words, numbers, colours and shapes it shows). A direct signal for the ViT to encode what the
        image says; without it the decoder learned to use colours but never the text (docs/TRAINING.md)."""
        with_img = [e for e in batch if e[2] is not None]
        owner = torch.cat([torch.full((e[2].shape[0],), j) for j, e in enumerate(with_img)])
        per_tile = vit_out.mean(1)
        pooled = torch.zeros(len(with_img), per_tile.shape[1]).index_add(0, owner, per_tile)
        pooled = pooled / torch.bincount(owner, minlength=len(with_img)).unsqueeze(1).float()
        target = torch.zeros(len(with_img), self.tok.n_vocab)
        for j, e in enumerate(with_img):
            target[j, e[3]] = 1.0
        bce = F.binary_cross_entropy_with_logits(self.content(pooled), target, reduction="sum")
        return bce / len(with_img)

    # ---- checkpoints
    def save(self, path, final=False):
        ck = {"model": self.model.state_dict(), "config": self.mc.to_dict(), "tiling": asdict(self.tcfg),
              "tokenizer_merges": [list(m) for m in self.tok.merges], "state": dict(self.state),
              "args": vars(self.a)}
        # the training-only heads are kept in final.pt too (under 1 MB), so that a run going on from it
        # (--init) starts with heads that match its ViT instead of random ones
        ck["text_tower"] = self.text_tower.state_dict()
        ck["sig"] = self.sig.state_dict()
        ck["content"] = self.content.state_dict()
        ck["glyph"] = self.glyph.state_dict()
        if self.lora is not None:
            ck["lora"] = self.lora.state_dict()
            ck["lora_config"] = {"rank": self.lora.rank, "alpha": self.lora.alpha}
        if not final:
            ck["opt"] = self.opt.state_dict() if self.opt is not None else None
        tmp = path + ".tmp"
        torch.save(ck, tmp)
        os.replace(tmp, path)

    def resume(self, path):
        ck = torch.load(path)
        self.model.load_state_dict(ck["model"])
        self.text_tower.load_state_dict(ck["text_tower"])
        self.sig.load_state_dict(ck["sig"])
        if "content" in ck:
            self.content.load_state_dict(ck["content"])
        if "glyph" in ck:
            self.glyph.load_state_dict(ck["glyph"])
        self.state = ck["state"]
        self._resume_opt = ck.get("opt")
        print(f"resumed at {self.state}", flush=True)

    # ---- one phase
    def run_phase(self, pi):
        name = PHASES[pi]
        budget, cap, lr_max = self.phase_cfg(name)
        if budget <= 0 or cap <= 0:
            self.state.update(phase=pi + 1, samples=0, elapsed=0.0, step=0)
            return
        if name == "stage2" and self.fresh_heads and self.state["step"] == 0:
            self.fit_fresh_heads(cap)
        ps = self.params_for(name)
        # In stage 2 the ViT learns at its own, lower rate: at the decoder's 1e-3 its output lost most of
        # its dependence on the image within a few hundred steps and the decoder learned to answer blind.
        vit = {id(p) for p in self.model.vit.parameters()} if name == "stage2" else set()
        groups = [{"params": [p for p in ps if id(p) not in vit], "lr": lr_max, "peak": lr_max}]
        if vit:
            groups.append({"params": [p for p in ps if id(p) in vit], "lr": self.a.vit_lr, "peak": self.a.vit_lr})
        self.opt = torch.optim.AdamW(groups, lr=lr_max, betas=(0.9, 0.98), weight_decay=0.01)
        if getattr(self, "_resume_opt", None) is not None and self.state["step"] > 0:
            self.opt.load_state_dict(self._resume_opt)
        self._resume_opt = None
        st = self.state
        warm = self.a.warmup
        t_start = time.time() - st["elapsed"]
        self.progress = max(st["samples"] / cap, st["elapsed"] / budget)
        last_ck = time.time()
        next_val = self.a.val_every
        for batch, idx_end in self.batches(name, st["samples"]):
            prog = max(st["samples"] / cap, (time.time() - t_start) / budget)
            self.progress = prog
            if prog >= 1.0:
                break
            # warm-up ends after `warm` steps or 5 % of the phase, whichever comes first (a phase cut short
            # by its time share on a busy machine may have only a few dozen steps)
            w = min(1.0, max((st["step"] + 1) / warm, prog / 0.05))
            lr = lr_max * w * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * prog)))
            for g in self.opt.param_groups:
                g["lr"] = lr * g.get("peak", lr_max) / lr_max
            self.model.train()
            loss = self.loss(name, batch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ps, 1.0)
            self.opt.step()
            st["step"] += 1
            st["samples"] = idx_end
            st["elapsed"] = time.time() - t_start
            if st["step"] % self.a.log_every == 0:
                rec = {"phase": name, "step": st["step"], "samples": st["samples"], "loss": round(loss.item(), 5),
                       "lr": lr, "elapsed": round(st["elapsed"], 1), "progress": round(prog, 4),
                       **getattr(self, "last_parts", {})}
                self.log.write(json.dumps(rec) + "\n")
                self.log.flush()
                print(json.dumps(rec), flush=True)
            if name == "stage2" and prog >= next_val:
                next_val += self.a.val_every
                self.validate(name)
            if time.time() - last_ck > self.a.ckpt_minutes * 60:
                self.save(os.path.join(self.a.out, "last.pt"))
                last_ck = time.time()
        if name in ("stage1", "stage2"):
            self.validate(name)
        st.update(phase=pi + 1, samples=0, elapsed=0.0, step=0)
        self.opt = None
        self.save(os.path.join(self.a.out, "last.pt"))

    def fit_fresh_heads(self, cap):
        """Fits random training-only heads to a trained ViT before stage 2 goes on: with random heads the
        glyph loss starts near 3 (against ~0.3 trained) and its gradients through the ViT would undo part
        of what the ViT knows during the first minutes. Uses samples past the phase's cap, which the phase
        itself never reaches."""
        heads = [p for h, w in ((self.content, self.a.content_loss), (self.glyph, self.a.glyph_loss)) if w > 0
                 for p in h.parameters()]
        if not heads or self.a.head_steps <= 0:
            return
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in heads:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(heads, lr=3e-3, weight_decay=0.0)
        self.model.eval()
        batches = self.batches("stage2", cap)
        for k in range(self.a.head_steps):
            batch, _ = next(batches)
            loss = self.loss("stage2", batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (k + 1) % self.a.log_every == 0 or k == 0:
                print(json.dumps({"phase": "heads", "step": k + 1, **self.last_parts}), flush=True)
        self.fresh_heads = False

    def validate(self, name):
        import evaluate
        samples = data.eval_set("val", self.a.val_per_task)
        t0 = time.time()
        preds, _ = evaluate.generate(self.model, self.tok, samples, self.tcfg)
        res = evaluate.score(samples, preds)
        rec = {"phase": name, "val": {t: round(d["exact_match"], 3) for t, d in res.items()},
               "step": self.state["step"], "samples": self.state["samples"],
               "elapsed": round(self.state["elapsed"], 1), "val_seconds": round(time.time() - t0, 1)}
        self.log.write(json.dumps(rec) + "\n")
        self.log.flush()
        print(json.dumps(rec), flush=True)

    def run(self):
        while self.state["phase"] < len(PHASES):
            print(f"== phase {PHASES[self.state['phase']]}", flush=True)
            self.run_phase(self.state["phase"])
        self.save(os.path.join(self.a.out, "final.pt"), final=True)
        plot(os.path.join(self.a.out, "log.jsonl"), os.path.join(self.a.out, "loss.png"))


def plot(log_path, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    recs = [json.loads(l) for l in open(log_path)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    off = 0.0
    for name in PHASES:
        r = [x for x in recs if x.get("phase") == name and "loss" in x]
        if r:
            axes[0].plot([off + x["elapsed"] / 60 for x in r], [x["loss"] for x in r], label=name, lw=0.8)
            off += r[-1]["elapsed"] / 60
    axes[0].set_xlabel("minutes")
    axes[0].set_ylabel("loss")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[0].set_title("training loss per phase")
    v = [x for x in recs if "val" in x and x["phase"] == "stage2"]
    if v:
        for t in list(v[-1]["val"]):
            axes[1].plot([x["samples"] for x in v], [x["val"][t] for x in v], label=t,
                         lw=2.0 if t == "overall" else 0.8)
        axes[1].set_xlabel("stage-2 samples")
        axes[1].set_ylabel("val exact match")
        axes[1].legend(fontsize=7, ncol=2)
        axes[1].set_title("validation exact match")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def parse_task_boost(items):
    """{"ocr_word": 2.0, ...} from ["ocr_word=2", ...]; names a task that does not exist as an error."""
    boost = {}
    for item in items or []:
        task, sep, factor = item.partition("=")
        if not sep or task not in data.TASKS and task != data.DESCRIBE:
            raise SystemExit(f"--task-boost: expected TASK=FACTOR with TASK one of {data.TASK_NAMES + [data.DESCRIBE]}, "
                             f"got {item!r}")
        try:
            boost[task] = float(factor)
        except ValueError:
            raise SystemExit(f"--task-boost: {factor!r} in {item!r} is not a number")
        if boost[task] < 0:
            raise SystemExit(f"--task-boost: factor of {task} must be >= 0, got {boost[task]}")
    return boost


def load_init(path):
    """The weights and tokenizer to start from: a checkpoint, or a shipped GGUF pair (MODEL.gguf, with
    MODEL-mmproj.gguf beside it), so that training can go on from the model in models/."""
    if not path.endswith(".gguf"):
        return torch.load(path)
    model, tok, _ = load_checkpoint(path)
    return {"model": model.state_dict(), "tokenizer_merges": [list(m) for m in tok.merges]}


def load_checkpoint(path):
    """(model, tokenizer, tiling config) from a final.pt, or from a GGUF pair (MODEL.gguf with
    MODEL-mmproj.gguf beside it), e.g. the shipped one: evaluate.py --ckpt models/edgevlm-nano.gguf."""
    if path.endswith(".gguf"):
        import export
        model, tok, tcfg = export.import_pair(path, path[:-len(".gguf")] + "-mmproj.gguf")
        model.eval()
        return model, tok, tcfg
    ck = torch.load(path)
    mc = ModelConfig(**ck["config"])
    model = VLM(mc)
    model.load_state_dict(ck["model"])
    if "lora" in ck:   # a modular run: the decoder with its vision adapter attached
        model.lora = lora.DecoderLora(model.llm, ck["lora_config"]["rank"], ck["lora_config"]["alpha"])
        model.lora.load_state_dict(ck["lora"])
        model.lora.attach(model.llm)
    model.eval()
    tok = BPETokenizer([tuple(m) for m in ck["tokenizer_merges"]])
    return model, tok, tiling.TilingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ck["tiling"].items()})


def finish(a):
    import evaluate
    import export
    model, tok, tcfg = load_checkpoint(os.path.join(a.out, "final.pt"))
    paths = export.export_pair(model, tok, tcfg, os.path.join(a.out, "edgevlm-nano"), "f32")
    if getattr(model, "lora", None) is not None:   # the decoder file is the base text model; vision needs this
        paths = list(paths) + [os.path.join(a.out, "edgevlm-nano-vision-lora.gguf")]
        lora.export_adapter(model.lora, paths[-1])
    print("exported", paths, flush=True)
    samples = data.eval_set("test", a.test_per_task)
    t0 = time.time()
    preds, ntok = evaluate.generate(model, tok, samples, tcfg)
    table = evaluate.score(samples, preds)
    res = {"split": "test", "per_task": a.test_per_task, "policy": tcfg.policy, "pytorch": table,
           "image_tokens_mean": float(np.mean([n for n, s in zip(ntok, samples) if s["image"] is not None])),
           "eval_seconds": time.time() - t0,
           "examples": [{"task": s["task"], "q": s["qa"][0][0], "gold": s["qa"][0][1], "pred": p}
                        for s, p in zip(samples, preds)]}
    md = evaluate.markdown(table, f"nano, test split, PyTorch greedy, tiling {tcfg.policy}")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(md + "\n")
    print(md, flush=True)
    if a.install:
        os.makedirs(a.install, exist_ok=True)
        for p in list(paths) + [os.path.join(a.out, "results.md"), os.path.join(a.out, "loss.png")]:
            shutil.copy(p, a.install)
        print("installed into", a.install, flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="training/runs/nano")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="start from this checkpoint's (or GGUF pair's) weights and "
                    "tokenizer, e.g. --init models/edgevlm-nano.gguf --shares 0 0 0 0 1 --minutes 60 for more "
                    "stage 2")
    ap.add_argument("--smoke", action="store_true", help="tiny budget: checks the pipeline end to end")
    ap.add_argument("--install", default=None, help="copy the GGUF pair and results here (e.g. models)")
    ap.add_argument("--minutes", type=float, default=100.0, help="wall-clock budget of the four phases")
    ap.add_argument("--shares", type=float, nargs=5, default=[0.0, 0.3, 0.0, 0.02, 0.68],
                    help="wall-clock share per phase (siglip read text stage1 stage2). SigLIP and text "
                         "pretraining are off by default: neither helped here (docs/TRAINING.md), SigLIP left a "
                         "ViT whose output barely depended on the image; the read phase teaches the ViT glyphs")
    ap.add_argument("--scale-penalty", type=float, default=0.0,
                    help="weight of the log² ratio of image- to token-embedding RMS (stages 1 and 2)")
    ap.add_argument("--samples", type=int, nargs=5, default=[8000, 66000, 12000, 4000, 60000],
                    help="sample cap per phase")
    ap.add_argument("--lrs", type=float, nargs=5, default=[1e-3, 1e-3, 1e-3, 1e-3, 1e-3])
    ap.add_argument("--data-offset", type=int, default=0,
                    help="start each phase's training samples this far in: fresh images for a run that goes "
                         "on from another run's weights (--init)")
    ap.add_argument("--no-curriculum", dest="curriculum", action="store_false",
                    help="stage 2 on the full mixture (the curriculum's end point, describe task included) from its "
                         "first step: for a stage 2 continued from a run that already had the curriculum")
    ap.add_argument("--vary", action="store_true",
                    help="vary the training samples as real inputs differ (variation.TRAIN: wording, fonts, "
                         "dark theme, larger, screenshots, camera frames, degradation, describe turns)")
    ap.add_argument("--task-boost", nargs="*", default=[], metavar="TASK=FACTOR",
                    help="multiply stage 2's weight of these tasks, e.g. ocr_word=2 text=1.5")
    ap.add_argument("--content-loss", type=float, default=0.05,
                    help="weight of the ViT's description-token loss in stage 2 (0: off)")
    ap.add_argument("--glyph-loss", type=float, default=0.5,
                    help="weight of the ViT's per-patch glyph loss in stage 2 (0: off)")
    ap.add_argument("--glyph-bg-weight", type=float, default=0.1,
                    help="weight of the glyph loss's background class: most patches show no character, and at "
                         "1.0 the head predicted background everywhere for the first ~5k images")
    ap.add_argument("--glyph-thumbnail", action="store_true",
                    help="glyph labels on the thumbnail tile too (its characters are a few pixels wide)")
    ap.add_argument("--head-steps", type=int, default=150,
                    help="steps fitting the glyph and content heads alone before stage 2, when --init has none "
                         "(a GGUF pair)")
    ap.add_argument("--vit-lr", type=float, default=3e-4, help="peak learning rate of the ViT in stage 2")
    ap.add_argument("--modular-lora", type=int, default=0, metavar="RANK",
                    help="the modular variant: stage 2 trains the ViT, the projector and a rank-RANK LoRA adapter "
                         "on the frozen decoder (exported beside the pair as edgevlm-nano-vision-lora.gguf)")
    ap.add_argument("--lora-alpha", type=float, default=16.0, help="alpha of --modular-lora (scale alpha / rank)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--siglip-batch", type=int, default=32, help="batch of the ViT-only phases (siglip, read)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--corpus", type=int, default=3000)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--max-tiles", type=int, default=4)
    ap.add_argument("--policy", default="relaxed")
    ap.add_argument("--v-width", type=int, default=128)
    ap.add_argument("--v-layers", type=int, default=4)
    ap.add_argument("--v-heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ff", type=int, default=512)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--val-every", type=float, default=0.2, help="stage-2 validation every this much progress")
    ap.add_argument("--val-per-task", type=int, default=6)
    ap.add_argument("--test-per-task", type=int, default=100)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    a = ap.parse_args(argv)
    if a.smoke:
        a.minutes, a.val_per_task, a.test_per_task, a.log_every, a.corpus = 3.0, 2, 4, 2, 500
        a.val_every = 0.5
    return a


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    tr = Trainer(a)
    if a.resume and os.path.exists(os.path.join(a.out, "last.pt")):
        tr.resume(os.path.join(a.out, "last.pt"))
    tr.run()
    finish(a)
    print(f"total {(time.time() - t0) / 60:.1f} minutes", flush=True)


if __name__ == "__main__":
    main()
