"""The PyTorch reference of the engine's model (docs/FORMAT.md): SigLIP-style ViT per tile, 2×2 merge
+ lfm2 projector, LLaMA-style decoder with adjacent-pair ("normal") RoPE, GQA and SwiGLU."""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    # vision
    tile: int = 64
    patch: int = 8
    v_width: int = 128
    v_layers: int = 4
    v_heads: int = 4
    v_ff: int = 512
    v_eps: float = 1e-6
    proj_eps: float = 1e-5
    # language
    vocab: int = 1024
    width: int = 192
    layers: int = 4
    heads: int = 6
    kv_heads: int = 2
    ff: int = 512
    rms_eps: float = 1e-5
    rope_base: float = 10000.0
    ctx: int = 512

    @property
    def n_patches(self):
        return (self.tile // self.patch) ** 2

    @property
    def tokens_per_tile(self):
        g = self.tile // self.patch
        return ((g + 1) // 2) ** 2

    def to_dict(self):
        return asdict(self)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


class VitBlock(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        d = c.v_width
        self.h = c.v_heads
        self.ln1 = nn.LayerNorm(d, eps=c.v_eps)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln2 = nn.LayerNorm(d, eps=c.v_eps)
        self.up = nn.Linear(d, c.v_ff)
        self.down = nn.Linear(c.v_ff, d)

    def forward(self, x):
        B, N, D = x.shape
        hd = D // self.h
        y = self.ln1(x)
        q = self.q(y).view(B, N, self.h, hd).transpose(1, 2)
        k = self.k(y).view(B, N, self.h, hd).transpose(1, 2)
        v = self.v(y).view(B, N, self.h, hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, N, D))
        return x + self.down(gelu_tanh(self.up(self.ln2(x))))


class Vit(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        self.patch_embd = nn.Conv2d(3, c.v_width, c.patch, stride=c.patch)
        self.pos = nn.Parameter(torch.randn(c.n_patches, c.v_width) * 0.02)
        self.blocks = nn.ModuleList(VitBlock(c) for _ in range(c.v_layers))
        self.post_ln = nn.LayerNorm(c.v_width, eps=c.v_eps)

    def forward(self, x):                       # x: [T, 3, tile, tile] normalised
        h = self.patch_embd(x).flatten(2).transpose(1, 2)   # [T, N, d], patches row-major
        h = h + self.pos
        for b in self.blocks:
            h = b(h)
        return self.post_ln(h)


def merge2x2(h, g):
    """[T, g*g, d] → [T, ceil(g/2)^2, 4d]; concat order TL, TR, BL, BR; zero-pad odd sides."""
    T, N, d = h.shape
    x = h.view(T, g, g, d)                      # [T, y, x, d]
    if g % 2:
        x = F.pad(x, (0, 0, 0, 1, 0, 1))
        g += 1
    x = x.view(T, g // 2, 2, g // 2, 2, d)      # [T, my, dy, mx, dx, d]
    x = x.permute(0, 1, 3, 2, 4, 5)             # [T, my, mx, dy, dx, d]
    return x.reshape(T, (g // 2) ** 2, 4 * d)


class Projector(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(4 * c.v_width, eps=c.proj_eps)
        self.l1 = nn.Linear(4 * c.v_width, c.width)
        self.l2 = nn.Linear(c.width, c.width)

    def forward(self, x):
        return self.l2(gelu_tanh(self.l1(self.norm(x))))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


def rope_tables(n, hd, base, device=None):
    inv = base ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None]
    return torch.cos(ang).float(), torch.sin(ang).float()   # [n, hd/2]


def apply_rope(x, cos, sin):
    """x: [B, H, L, hd]; rotates adjacent pairs (2i, 2i+1) like llama.cpp's normal mode."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)


class LlmBlock(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        hd = c.width // c.heads
        self.attn_norm = RMSNorm(c.width, c.rms_eps)
        self.q = nn.Linear(c.width, c.heads * hd, bias=False)
        self.k = nn.Linear(c.width, c.kv_heads * hd, bias=False)
        self.v = nn.Linear(c.width, c.kv_heads * hd, bias=False)
        self.o = nn.Linear(c.heads * hd, c.width, bias=False)
        self.ffn_norm = RMSNorm(c.width, c.rms_eps)
        self.gate = nn.Linear(c.width, c.ff, bias=False)
        self.up = nn.Linear(c.width, c.ff, bias=False)
        self.down = nn.Linear(c.ff, c.width, bias=False)

    def forward(self, x, cos, sin, mask, cache=None, pos=None):
        """x [B, L, D]. Without cache: causal self-attention over x (mask [L, L]). With cache (k, v of
        shape [B, Hkv, Lc, hd]): L new positions starting at per-sample pos [B] are written into the
        cache and attend to it (mask [B, 1, L, Lc]); cos/sin are then [B, L, hd/2]."""
        c = self.c
        B, L, D = x.shape
        hd = D // c.heads
        rep = c.heads // c.kv_heads
        y = self.attn_norm(x)
        if cache is not None:
            cos, sin = cos[:, None], sin[:, None]
        q = apply_rope(self.q(y).view(B, L, c.heads, hd).transpose(1, 2), cos, sin)
        k = apply_rope(self.k(y).view(B, L, c.kv_heads, hd).transpose(1, 2), cos, sin)
        v = self.v(y).view(B, L, c.kv_heads, hd).transpose(1, 2)
        if cache is not None:
            ck, cv = cache
            idx = (pos[:, None] + torch.arange(L)[None]).view(B, 1, L, 1).expand(B, c.kv_heads, L, hd)
            ck.scatter_(2, idx, k)
            cv.scatter_(2, idx, v)
            k, v = ck, cv
        # GQA without copying K/V: query heads of one KV group are stacked along the sequence axis
        qg = q.reshape(B, c.kv_heads, rep * L, hd)
        s = (qg @ k.transpose(-1, -2)).view(B, c.kv_heads, rep, L, -1) * (1.0 / math.sqrt(hd))
        s = s + (mask.unsqueeze(1) if mask.dim() == 4 else mask)
        a = (torch.softmax(s, dim=-1).view(B, c.kv_heads, rep * L, -1) @ v).view(B, c.heads, L, hd)
        x = x + self.o(a.transpose(1, 2).reshape(B, L, D))
        y = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Llm(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        self.tok = nn.Embedding(c.vocab, c.width)
        self.blocks = nn.ModuleList(LlmBlock(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.width, c.rms_eps)
        self.out = nn.Linear(c.width, c.vocab, bias=False)
        cos, sin = rope_tables(c.ctx, c.width // c.heads, c.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def hidden(self, emb):
        B, L, _ = emb.shape
        mask = torch.full((L, L), float("-inf")).triu(1)
        x = emb
        for b in self.blocks:
            x = b(x, self.cos[:L], self.sin[:L], mask)
        return self.norm(x)

    def new_cache(self, B, n):
        c = self.c
        hd = c.width // c.heads
        return [(torch.zeros(B, c.kv_heads, n, hd), torch.zeros(B, c.kv_heads, n, hd)) for _ in self.blocks]

    def hidden_cached(self, emb, pos, cache, valid):
        """emb [B, L, D] at positions pos[b] .. pos[b]+L-1; valid [B, Lc] marks cache slots that may be
        attended (filled, real tokens); causality within the new block is added here."""
        B, L, _ = emb.shape
        Lc = cache[0][0].shape[2]
        p = pos[:, None] + torch.arange(L)[None]                      # [B, L]
        keyok = valid[:, None, :] | (torch.arange(Lc)[None, None] == p[..., None])
        keyok = keyok | ((torch.arange(Lc)[None, None] >= pos[:, None, None]) & (torch.arange(Lc)[None, None] <= p[..., None]))
        mask = torch.zeros(B, L, Lc).masked_fill(~keyok, float("-inf")).unsqueeze(1)
        x = emb
        for b, kv in zip(self.blocks, cache):
            x = b(x, self.cos[p], self.sin[p], mask, cache=kv, pos=pos)
        return self.norm(x)


class VLM(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        self.vit = Vit(c)
        self.proj = Projector(c)
        self.llm = Llm(c)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def encode_tiles(self, pixels):
        """[T, 3, tile, tile] → [T, tokens_per_tile, width]"""
        h = self.vit(pixels)
        return self.proj(merge2x2(h, self.c.tile // self.c.patch))

    def embed(self, ids, img_mask, img_emb):
        """Token embeddings with image embeddings written at img_mask positions (in row-major order)."""
        e = self.llm.tok(ids)
        if img_emb is not None and img_emb.numel():
            e = e.masked_scatter(img_mask.unsqueeze(-1), img_emb.to(e.dtype))
        return e

    def forward(self, ids, img_mask, pixels, loss_mask, targets):
        img_emb = self.encode_tiles(pixels) if pixels is not None and pixels.shape[0] else None
        e = self.embed(ids, img_mask, img_emb.reshape(-1, self.c.width) if img_emb is not None else None)
        h = self.llm.hidden(e)
        hs = h[loss_mask]
        logits = self.llm.out(hs)
        return F.cross_entropy(logits, targets[loss_mask])
