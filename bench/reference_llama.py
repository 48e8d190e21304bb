#!/usr/bin/env python3
"""Independent F32 reference forward of a LLaMA-family GGUF (general.architecture = llama or qwen2).

Written from the architecture's definition with numpy only; it shares no code with edgevlm (the file is
read by training/gguf_io.py, which dequantizes Q8_0/Q4_0 itself). Every weight is dequantized to float32
and every operation runs in float64-accumulated float32, with an F32 KV "cache" (the whole sequence is
recomputed), so its logits are the exact-arithmetic target that the engines approximate.

The definition followed (the GGUF ecosystem's, i.e. llama.cpp's, conventions for these tensor names):
  x = token_embd[tokens]
  per layer:  h = RMSNorm(x) * attn_norm
              q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)      (bias only for qwen2)
              RoPE on q, k: llama rotates adjacent pairs (2i, 2i+1) ("normal"); qwen2 rotates
              (i, i + d/2) ("NeoX"); angle = pos * base^(-2i/d)
              causal softmax(q k^T / sqrt(d)) v, KV head of query head h = h // (n_head / n_head_kv)
              x = x + attn Wo
              h = RMSNorm(x) * ffn_norm;  x = x + (silu(h Wgate) * (h Wup)) Wdown
  logits = RMSNorm(x) * output_norm · output^T  (output = token_embd when output.weight is absent)

Usage: reference_llama.py MODEL.gguf --tokens 1,2,3 [--out logits.npy|.f32] [--all] [--greedy N]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
import gguf_io  # noqa: E402


class LlamaReference:
    def __init__(self, path: str):
        r = gguf_io.GGUFReader(path)
        self.arch = r.get("general.architecture")
        if self.arch not in ("llama", "qwen2"):
            raise SystemExit(f"{path}: architecture {self.arch!r} is not llama or qwen2")
        a = self.arch
        self.n_embd = int(r.get(f"{a}.embedding_length"))
        self.n_layer = int(r.get(f"{a}.block_count"))
        self.n_head = int(r.get(f"{a}.attention.head_count"))
        self.n_head_kv = int(r.get(f"{a}.attention.head_count_kv", self.n_head))
        self.head_dim = int(r.get(f"{a}.rope.dimension_count", self.n_embd // self.n_head))
        self.eps = float(r.get(f"{a}.attention.layer_norm_rms_epsilon", 1e-5))
        self.base = float(r.get(f"{a}.rope.freq_base", 10000.0))
        self.neox = a == "qwen2"
        t = r.tensor
        self.tok_embd = t("token_embd.weight")          # (n_vocab, n_embd)
        self.n_vocab = self.tok_embd.shape[0]
        self.out_norm = t("output_norm.weight")
        self.output = t("output.weight") if "output.weight" in r.tensors else self.tok_embd
        self.layers = []
        for i in range(self.n_layer):
            p = f"blk.{i}."
            L = {k: t(p + k + ".weight") for k in
                 ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")}
            for k in ("attn_q", "attn_k", "attn_v"):
                L[k + ".bias"] = t(p + k + ".bias") if p + k + ".bias" in r.tensors else None
            self.layers.append(L)

    def rms_norm(self, x, w):
        x64 = x.astype(np.float64)
        return (x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + self.eps) * w).astype(np.float32)

    def rope(self, x, positions):
        """x: (n_tok, n_heads, d). Rotation as llama.cpp defines it for NORM and NEOX modes."""
        d = self.head_dim
        inv = self.base ** (-np.arange(0, d, 2, dtype=np.float64) / d)      # (d/2,)
        ang = positions[:, None].astype(np.float64) * inv[None, :]          # (n_tok, d/2)
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x = x.astype(np.float64)
        if self.neox:
            a, b = x[..., : d // 2], x[..., d // 2:]
        else:
            a, b = x[..., 0::2], x[..., 1::2]
        ra, rb = a * cos - b * sin, a * sin + b * cos
        out = np.empty_like(x)
        if self.neox:
            out[..., : d // 2], out[..., d // 2:] = ra, rb
        else:
            out[..., 0::2], out[..., 1::2] = ra, rb
        return out

    @staticmethod
    def linear(x, w, b=None):
        y = x.astype(np.float64) @ w.T.astype(np.float64)
        if b is not None:
            y = y + b
        return y

    def forward(self, tokens, last_only=False):
        """Logits (n_tok, n_vocab) float32 for every position of the token list (or (1, n_vocab))."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.min() < 0 or tokens.max() >= self.n_vocab:
            raise SystemExit(f"token id out of range [0, {self.n_vocab})")
        n = len(tokens)
        pos = np.arange(n)
        hd, nh, nkv = self.head_dim, self.n_head, self.n_head_kv
        x = self.tok_embd[tokens].astype(np.float32)
        mask = np.triu(np.full((n, n), -np.inf), k=1)
        for L in self.layers:
            h = self.rms_norm(x, L["attn_norm"])
            q = self.rope(self.linear(h, L["attn_q"], L["attn_q.bias"]).reshape(n, nh, hd), pos)
            k = self.rope(self.linear(h, L["attn_k"], L["attn_k.bias"]).reshape(n, nkv, hd), pos)
            v = self.linear(h, L["attn_v"], L["attn_v.bias"]).reshape(n, nkv, hd)
            att = np.empty((n, nh, hd))
            for hh in range(nh):
                kv = hh // (nh // nkv)
                s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                att[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv, :]
            x = (x + self.linear(att.reshape(n, nh * hd), L["attn_output"])).astype(np.float32)
            h = self.rms_norm(x, L["ffn_norm"])
            g = self.linear(h, L["ffn_gate"])
            u = self.linear(h, L["ffn_up"])
            x = (x + self.linear(g / (1 + np.exp(-g)) * u, L["ffn_down"])).astype(np.float32)
        if last_only:
            x = x[-1:]
        return self.linear(self.rms_norm(x, self.out_norm), self.output).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="write logits here: .npy, or raw little-endian float32 otherwise")
    ap.add_argument("--all", action="store_true", help="logits of every position, not only the last")
    ap.add_argument("--greedy", type=int, default=0, help="also print N greedy continuation token ids")
    args = ap.parse_args()
    m = LlamaReference(args.model)
    toks = [int(t) for t in args.tokens.split(",") if t.strip()]
    logits = m.forward(toks, last_only=not args.all)
    res = logits if args.all else logits[-1]
    if args.out:
        if args.out.endswith(".npy"):
            np.save(args.out, res)
        else:
            res.astype("<f4").tofile(args.out)
    last = logits[-1]
    top = np.argsort(-last)[:5]
    print("top5", " ".join(f"{int(i)}:{last[i]:.5f}" for i in top))
    if args.greedy:
        seq = list(toks)
        gen = []
        for _ in range(args.greedy):
            nxt = int(np.argmax(m.forward(seq, last_only=True)[-1]))
            gen.append(nxt)
            seq.append(nxt)
        print("greedy", ",".join(map(str, gen)))


if __name__ == "__main__":
    main()
