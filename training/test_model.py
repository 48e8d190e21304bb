"""Checks of the reference model: cached decoding equals full recomputation, merge order, RoPE pairs."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ModelConfig, VLM, apply_rope, merge2x2, rope_tables  # noqa: E402


def small():
    torch.manual_seed(0)
    return VLM(ModelConfig(vocab=50, width=32, layers=2, heads=4, kv_heads=2, ff=64, v_width=16, v_layers=1,
                           v_heads=2, ctx=64))


def test_cached_decoding_matches_full_forward():
    m = small().eval()
    B, L = 3, 12
    emb = torch.randn(B, L, 32)
    full = m.llm.hidden(emb)
    lens = torch.tensor([5, 9, 7])
    # prefill the padded prompt, then feed the remaining tokens one at a time at per-sample positions
    cache = m.llm.new_cache(B, L + 2)
    valid = torch.zeros(B, L + 2, dtype=torch.bool)
    m.llm.hidden_cached(emb[:, :9], torch.zeros(B, dtype=torch.long), cache, valid)
    for b in range(B):
        valid[b, :lens[b]] = True
    cur = lens.clone()
    for _ in range(3):
        x = emb[torch.arange(B), cur][:, None]
        h = m.llm.hidden_cached(x, cur, cache, valid)
        torch.testing.assert_close(h[:, 0], full[torch.arange(B), cur], atol=1e-5, rtol=1e-4)
        valid[torch.arange(B), cur] = True
        cur = cur + 1


def test_merge_order_is_tl_tr_bl_br_row_major():
    g, d = 4, 2
    h = torch.arange(g * g, dtype=torch.float32).repeat_interleave(d).view(1, g * g, d)
    out = merge2x2(h, g)          # token value = its patch index
    assert out.shape == (1, 4, 4 * d)
    assert out[0, 0, ::d].tolist() == [0, 1, 4, 5]
    assert out[0, 1, ::d].tolist() == [2, 3, 6, 7]
    assert out[0, 2, ::d].tolist() == [8, 9, 12, 13]


def test_merge_zero_pads_odd_grid():
    h = torch.ones(1, 9, 1)
    out = merge2x2(h, 3)
    assert out.shape == (1, 4, 4)
    assert out[0, 3].tolist() == [1, 0, 0, 0]


def test_rope_rotates_adjacent_pairs():
    cos, sin = rope_tables(8, 4, 10000.0)
    x = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 1, 4).expand(1, 1, 8, 4)
    y = apply_rope(x, cos, sin)
    p = 3
    assert torch.allclose(y[0, 0, p, :2], torch.tensor([torch.cos(torch.tensor(3.0)), torch.sin(torch.tensor(3.0))]))
    th = 3 * 10000 ** (-2 / 4)
    assert torch.allclose(y[0, 0, p, 2:], torch.tensor([torch.cos(torch.tensor(th)), torch.sin(torch.tensor(th))]), atol=1e-6)
