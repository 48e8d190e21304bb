#!/usr/bin/env python3
"""Independent F32 reference forward of a decoder GGUF (general.architecture llama, qwen2, qwen3,
gemma3, phi3 or lfm2).

Written from the architectures' definitions with numpy only; it shares no code with edgevlm (the file is
read by training/gguf_io.py, which dequantizes Q8_0/Q4_0 itself). Every weight is dequantized to float32
and every operation runs in float64-accumulated float32, with an F32 KV "cache" (the whole sequence is
recomputed), so its logits are the exact-arithmetic target that the engines approximate.

The definition followed (the GGUF ecosystem's, i.e. llama.cpp's, conventions for these tensor names):
  x = token_embd[tokens]                       (gemma3: times sqrt(n_embd))
  per layer:  h = RMSNorm(x) * attn_norm
              q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)      (bias: qwen2; phi3: one attn_qkv
                                                                matrix, rows Q then K then V)
              qwen3, gemma3: q, k = RMSNorm(q) * attn_q_norm, RMSNorm(k) * attn_k_norm per head
              RoPE on the first n_rot dims of each head of q, k: llama rotates adjacent pairs
              (2i, 2i+1) ("normal"); the others rotate (i, i + n_rot/2) ("NeoX");
              angle = pos * base^(-2i/n_rot) * freq_scale / factor_i, cos/sin * attn_factor, with
              factor_i from rope_freqs.weight (Llama 3) or rope_factors_short/long.weight (phi3
              LongRoPE: long when the context exceeds rope.scaling.original_context_length)
              causal softmax(q k^T * scale) v, KV head of query head h = h // (n_head / n_head_kv);
              scale = 1/sqrt(head_dim); gemma3 sliding-window layers (5 of every 6 when
              attention.sliding_window is set) see only the last `window` positions and use rope
              base rope.freq_base_swa (10000) without scaling
              o = attn Wo;  gemma3: o = RMSNorm(o) * post_attention_norm;  x = x + o
              h = RMSNorm(x) * ffn_norm
              f = (act(h Wgate) * (h Wup)) Wdown,  act = silu (gemma3: gelu tanh); phi3's ffn_up
              holds the gate rows then the up rows
              gemma3: f = RMSNorm(f) * post_ffw_norm;  x = x + f
  lfm2: layers whose attention.head_count_kv entry is 0 replace the attention sub-block by a gated
        short convolution: h = RMSNorm(x) * attn_norm; [B | C | xc] = h Win (shortconv.in_proj);
        u = B * xc; y_t = sum_j w[:, j] * u_{t-(L-1)+j} (causal, L = shortconv.l_cache taps from
        shortconv.conv.weight, zeros before the sequence); x = x + (C * y) Wout (shortconv.out_proj);
        its final norm is token_embd_norm
  logits = RMSNorm(x) * output_norm · output^T  (output = token_embd when output.weight is absent)
  LoRA adapters (llama.cpp's adapter GGUF: <W>.lora_a of shape (r, n_in), <W>.lora_b of shape (n_out, r)
  in numpy order, adapter.lora.alpha): W is replaced by W + s * B @ A in float64, s = scale * alpha / r
  (scale alone when alpha is 0 or absent), before fused tensors are split

Usage: reference_llama.py MODEL.gguf --tokens 1,2,3 [--out logits.npy|.f32] [--all] [--greedy N] [--ctx N]
                         [--lora ADAPTER.gguf[:SCALE] ...]
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
import gguf_io  # noqa: E402

# qwen2vl (Qwen2-VL's decoder): on text its M-RoPE gives every rotation pair the same position, which
# is qwen2's NeoX RoPE; images are not part of this reference.
ARCHS = ("llama", "qwen2", "qwen2vl", "qwen3", "gemma3", "phi3", "lfm2")


def lora_deltas(loras, arch):
    """{target tensor name: sum of s * B @ A (float64, numpy shape (n_out, n_in))} of the adapters."""
    deltas = {}
    for path, scale in loras:
        r = gguf_io.GGUFReader(path)
        if r.get("general.type") != "adapter" or r.get("adapter.type") != "lora":
            raise SystemExit(f"{path}: not a LoRA adapter (general.type, adapter.type)")
        if r.get("general.architecture") != arch:
            raise SystemExit(f"{path}: adapter for {r.get('general.architecture')!r}, the model is {arch!r}")
        alpha = float(r.get("adapter.lora.alpha", 0.0))
        for name in r.tensors:
            if not name.endswith(".lora_a"):
                continue
            target = name[: -len(".lora_a")]
            a = r.tensor(name).astype(np.float64)                  # (r, n_in)
            b = r.tensor(target + ".lora_b").astype(np.float64)    # (n_out, r)
            s = scale * alpha / a.shape[0] if alpha else scale
            deltas[target] = deltas.get(target, 0.0) + s * (b @ a)
    return deltas


class LlamaReference:
    def __init__(self, path: str, n_ctx: int = 0, loras=()):
        """loras: (adapter path, scale) pairs applied to the weights."""
        r = gguf_io.GGUFReader(path)
        self.arch = r.get("general.architecture")
        if self.arch not in ARCHS:
            raise SystemExit(f"{path}: architecture {self.arch!r} is not one of {', '.join(ARCHS)}")
        a = self.arch
        self.n_embd = int(r.get(f"{a}.embedding_length"))
        self.n_layer = int(r.get(f"{a}.block_count"))
        self.n_head = int(r.get(f"{a}.attention.head_count"))
        kv = r.get(f"{a}.attention.head_count_kv", self.n_head)
        kv = list(kv) if isinstance(kv, (list, tuple)) else [kv] * self.n_layer  # lfm2: per layer, 0 = conv
        self.conv = [int(h) == 0 for h in kv]
        self.n_head_kv = max(int(h) for h in kv)
        self.head_dim = int(r.get(f"{a}.attention.key_length", self.n_embd // self.n_head))
        self.n_rot = int(r.get(f"{a}.rope.dimension_count", self.head_dim))
        self.eps = float(r.get(f"{a}.attention.layer_norm_rms_epsilon", 1e-5))
        self.base = float(r.get(f"{a}.rope.freq_base", 10000.0))
        n_ctx_train = int(r.get(f"{a}.context_length"))
        self.n_ctx = n_ctx or n_ctx_train
        factor = float(r.get(f"{a}.rope.scaling.factor", 0.0))
        self.freq_scale = 1.0 / factor if factor else 1.0
        self.attn_factor = float(r.get(f"{a}.rope.scaling.attn_factor", 1.0))
        self.neox = a != "llama"
        self.gemma = a == "gemma3"
        self.qk_norm = a in ("qwen3", "gemma3", "lfm2")
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.window = int(r.get(f"{a}.attention.sliding_window", 0)) if self.gemma else 0
        period = int(r.get(f"{a}.attention.sliding_window_pattern", 6))
        self.local = [self.window > 0 and i % period < period - 1 for i in range(self.n_layer)]
        self.base_swa = float(r.get(f"{a}.rope.freq_base_swa", 10000.0))
        deltas = lora_deltas(loras, a)
        t = lambda name: (r.tensor(name).astype(np.float64) + deltas[name]).astype(np.float32) \
            if name in deltas else r.tensor(name)  # noqa: E731
        has = lambda name: name in r.tensors  # noqa: E731
        self.factors = None
        if has("rope_freqs.weight"):
            self.factors = t("rope_freqs.weight")
        elif has("rope_factors_long.weight"):
            n_orig = int(r.get(f"{a}.rope.scaling.original_context_length", n_ctx_train))
            self.factors = t("rope_factors_long.weight" if self.n_ctx > n_orig else "rope_factors_short.weight")
        self.tok_embd = t("token_embd.weight")          # (n_vocab, n_embd)
        self.n_vocab = self.tok_embd.shape[0]
        self.out_norm = t("token_embd_norm.weight" if a == "lfm2" else "output_norm.weight")
        self.output = t("output.weight") if has("output.weight") else self.tok_embd
        q_dim, kv_dim = self.n_head * self.head_dim, self.n_head_kv * self.head_dim
        self.layers = []
        for i in range(self.n_layer):
            p = f"blk.{i}."
            if self.conv[i]:
                L = {k: t(p + k + ".weight") for k in ("attn_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down",
                                                       "shortconv.in_proj", "shortconv.out_proj", "shortconv.conv")}
                self.layers.append(L)
                continue
            L = {k: t(p + k + ".weight") for k in ("attn_norm", "attn_output", "ffn_norm", "ffn_down")}
            if has(p + "attn_qkv.weight"):
                qkv = t(p + "attn_qkv.weight")
                L["attn_q"], L["attn_k"], L["attn_v"] = qkv[:q_dim], qkv[q_dim:q_dim + kv_dim], qkv[q_dim + kv_dim:]
            else:
                for k in ("attn_q", "attn_k", "attn_v"):
                    L[k] = t(p + k + ".weight")
            if has(p + "ffn_gate.weight"):
                L["ffn_gate"], L["ffn_up"] = t(p + "ffn_gate.weight"), t(p + "ffn_up.weight")
            else:  # phi3: gate rows, then up rows
                gu = t(p + "ffn_up.weight")
                L["ffn_gate"], L["ffn_up"] = gu[: gu.shape[0] // 2], gu[gu.shape[0] // 2:]
            for k in ("attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_q_norm.weight", "attn_k_norm.weight",
                      "post_attention_norm.weight", "post_ffw_norm.weight"):
                L[k] = t(p + k) if has(p + k) else None
            if self.qk_norm and (L["attn_q_norm.weight"] is None or L["attn_k_norm.weight"] is None):
                raise SystemExit(f"{path}: {a} needs {p}attn_q_norm.weight and attn_k_norm.weight")
            self.layers.append(L)

    def rms_norm(self, x, w):
        x64 = x.astype(np.float64)
        return (x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + self.eps) * w).astype(np.float32)

    def rope(self, x, positions, local):
        """x: (n_tok, n_heads, head_dim). Rotation as llama.cpp defines it for NORM and NEOX modes."""
        d = self.n_rot
        base, scale = (self.base_swa, 1.0) if local else (self.base, self.freq_scale)
        inv = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)           # (d/2,)
        if self.factors is not None and not local:
            inv = inv / self.factors.astype(np.float64)
        ang = positions[:, None].astype(np.float64) * inv[None, :] * scale   # (n_tok, d/2)
        cos = np.cos(ang)[:, None, :] * self.attn_factor
        sin = np.sin(ang)[:, None, :] * self.attn_factor
        x = x.astype(np.float64)
        out = x.copy()
        if self.neox:
            a, b = x[..., : d // 2], x[..., d // 2: d]
        else:
            a, b = x[..., 0:d:2], x[..., 1:d:2]
        ra, rb = a * cos - b * sin, a * sin + b * cos
        if self.neox:
            out[..., : d // 2], out[..., d // 2: d] = ra, rb
        else:
            out[..., 0:d:2], out[..., 1:d:2] = ra, rb
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
        if self.gemma:
            x = (x * np.float32(math.sqrt(self.n_embd))).astype(np.float32)
        causal = np.triu(np.full((n, n), -np.inf), k=1)
        # sliding window: query p sees p' only when p - p' < window
        windowed = causal + np.where(pos[:, None] - pos[None, :] >= max(self.window, 1), -np.inf, 0.0)
        for il, L in enumerate(self.layers):
            if self.conv[il]:
                x = self.conv_block(x, L)
                x = self.ffn(x, L)
                continue
            local = self.local[il]
            h = self.rms_norm(x, L["attn_norm"])
            q = self.linear(h, L["attn_q"], L["attn_q.bias"]).reshape(n, nh, hd)
            k = self.linear(h, L["attn_k"], L["attn_k.bias"]).reshape(n, nkv, hd)
            v = self.linear(h, L["attn_v"], L["attn_v.bias"]).reshape(n, nkv, hd)
            if self.qk_norm:
                q = self.rms_norm(q, L["attn_q_norm.weight"])
                k = self.rms_norm(k, L["attn_k_norm.weight"])
            q, k = self.rope(q, pos, local), self.rope(k, pos, local)
            mask = windowed if local else causal
            att = np.empty((n, nh, hd))
            for hh in range(nh):
                kv = hh // (nh // nkv)
                s = q[:, hh, :] @ k[:, kv, :].T * self.scale + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                att[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv, :]
            o = self.linear(att.reshape(n, nh * hd), L["attn_output"])
            if L["post_attention_norm.weight"] is not None:
                o = self.rms_norm(o, L["post_attention_norm.weight"])
            x = (x + o).astype(np.float32)
            x = self.ffn(x, L)
        if last_only:
            x = x[-1:]
        return self.linear(self.rms_norm(x, self.out_norm), self.output).astype(np.float32)

    def conv_block(self, x, L):
        """LFM2's gated causal short convolution over the whole sequence (zeros before it)."""
        n, e = x.shape
        bcx = self.linear(self.rms_norm(x, L["attn_norm"]), L["shortconv.in_proj"])
        b, c, xc = bcx[:, :e], bcx[:, e:2 * e], bcx[:, 2 * e:]
        u = b * xc
        w = L["shortconv.conv"].astype(np.float64)          # (e, taps)
        taps = w.shape[1]
        padded = np.concatenate([np.zeros((taps - 1, e)), u])
        y = sum(padded[j:j + n] * w[:, j] for j in range(taps))
        return (x + self.linear(c * y, L["shortconv.out_proj"])).astype(np.float32)

    def ffn(self, x, L):
        """x + the gated feed-forward sub-block (with gemma3's post-norm)."""
        h = self.rms_norm(x, L["ffn_norm"])
        g = self.linear(h, L["ffn_gate"])
        u = self.linear(h, L["ffn_up"])
        if self.gemma:
            act = 0.5 * g * (1 + np.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
        else:
            act = g / (1 + np.exp(-g))
        f = self.linear(act * u, L["ffn_down"])
        if L.get("post_ffw_norm.weight") is not None:
            f = self.rms_norm(f, L["post_ffw_norm.weight"])
        return (x + f).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="write logits here: .npy, or raw little-endian float32 otherwise")
    ap.add_argument("--all", action="store_true", help="logits of every position, not only the last")
    ap.add_argument("--greedy", type=int, default=0, help="also print N greedy continuation token ids")
    ap.add_argument("--ctx", type=int, default=0, help="context size the engines run with (LongRoPE's choice); "
                    "default the model's context_length")
    ap.add_argument("--lora", action="append", default=[], help="LoRA adapter FILE[:SCALE] (repeatable)")
    args = ap.parse_args()
    loras = []
    for spec in args.lora:
        path, _, scale = spec.rpartition(":")
        try:
            loras.append((path, float(scale)) if path else (spec, 1.0))
        except ValueError:
            loras.append((spec, 1.0))
    m = LlamaReference(args.model, args.ctx, loras)
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
