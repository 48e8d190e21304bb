"""Export checks: the GGUF pair written by export.py reads back (with gguf_io) with the keys, shapes (ne
order) and values docs/FORMAT.md specifies, and a numpy forward of one tile computed from the file alone
matches PyTorch — so FORMAT.md's description of the tensors is enough to run the vision side."""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import export  # noqa: E402
import tiling  # noqa: E402
from gguf_io import GGUFReader  # noqa: E402
from model import ModelConfig, VLM, merge2x2  # noqa: E402
from tokenizer import BPETokenizer  # noqa: E402


def _setup(tmp):
    tok = BPETokenizer.train(data.corpus_texts(100), 400)
    torch.manual_seed(0)
    m = VLM(ModelConfig(vocab=tok.n_vocab, width=32, layers=2, heads=4, kv_heads=2, ff=64, v_width=16,
                        v_layers=2, v_heads=2, v_ff=64, tile=32, patch=8)).eval()
    for p in m.parameters():          # non-trivial LayerNorm/bias values
        p.data += 0.05 * torch.randn_like(p)
    tc = tiling.TilingConfig(tile=32)
    return m, tok, tc, export.export_pair(m, tok, tc, os.path.join(tmp, "t"))


def test_llm_file():
    with tempfile.TemporaryDirectory() as d:
        m, tok, tc, (lp, vp) = _setup(d)
        r = GGUFReader(lp)
        assert r.get("general.architecture") == "llama"
        assert r.get("llama.attention.head_count_kv") == 2 and r.get("llama.rope.dimension_count") == 8
        assert r.get("tokenizer.ggml.model") == "gpt2" and r.get("tokenizer.ggml.pre") == "default"
        assert r.get("tokenizer.ggml.tokens") == tok.tokens
        assert r.get("tokenizer.ggml.eos_token_id") == tok.id("<|im_end|>")
        assert r.tensors["token_embd.weight"].ne == [32, tok.n_vocab]
        assert r.tensors["blk.1.attn_k.weight"].ne == [32, 16]
        assert r.tensors["blk.0.ffn_down.weight"].ne == [64, 32]
        assert np.array_equal(r.tensor("blk.0.attn_q.weight"), m.llm.blocks[0].q.weight.detach().numpy())


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def test_mmproj_file_runs_a_tile_like_pytorch():
    with tempfile.TemporaryDirectory() as d:
        m, tok, tc, (lp, vp) = _setup(d)
        r = GGUFReader(vp)
        assert r.get("clip.projector_type") == "lfm2" and r.get("clip.vision.image_size") == 32
        assert r.get("edgevlm.image.tile_separator") == "<tile>" and r.get("edgevlm.tiling.max_tiles") == 4
        assert r.tensors["v.patch_embd.weight"].ne == [8, 8, 3, 16]
        assert r.tensors["v.position_embd.weight"].ne == [16, 16]
        assert r.tensors["mm.1.weight"].ne == [64, 32]
        T, P, D = 32, 8, 16
        g = T // P
        eps = r.get("clip.vision.attention.layer_norm_epsilon")
        x = np.random.default_rng(0).standard_normal((3, T, T)).astype(np.float32)
        # patch embedding written out per FORMAT.md: patches row-major, kernel flattened (c, ky, kx)
        W = r.tensor("v.patch_embd.weight").reshape(D, -1)
        patches = x.reshape(3, g, P, g, P).transpose(1, 3, 0, 2, 4).reshape(g * g, -1)
        h = patches @ W.T + r.tensor("v.patch_embd.bias") + r.tensor("v.position_embd.weight")
        H = r.get("clip.vision.attention.head_count")
        for i in range(r.get("clip.vision.block_count")):
            t = lambda n: r.tensor(f"v.blk.{i}.{n}")
            y = _ln(h, t("ln1.weight"), t("ln1.bias"), eps)
            q, k, v = (y @ t(f"attn_{n}.weight").T + t(f"attn_{n}.bias") for n in "qkv")
            hd = D // H
            outs = []
            for j in range(H):
                s = q[:, j * hd:(j + 1) * hd] @ k[:, j * hd:(j + 1) * hd].T / np.sqrt(hd)
                s = np.exp(s - s.max(-1, keepdims=True))
                outs.append((s / s.sum(-1, keepdims=True)) @ v[:, j * hd:(j + 1) * hd])
            h = h + np.concatenate(outs, -1) @ t("attn_out.weight").T + t("attn_out.bias")
            y = _ln(h, t("ln2.weight"), t("ln2.bias"), eps)
            h = h + _gelu(y @ t("ffn_up.weight").T + t("ffn_up.bias")) @ t("ffn_down.weight").T + t("ffn_down.bias")
        h = _ln(h, r.tensor("v.post_ln.weight"), r.tensor("v.post_ln.bias"), eps)
        grid = h.reshape(g, g, D)
        merged = np.stack([np.concatenate([grid[2 * my, 2 * mx], grid[2 * my, 2 * mx + 1], grid[2 * my + 1, 2 * mx],
                                           grid[2 * my + 1, 2 * mx + 1]]) for my in range(g // 2) for mx in range(g // 2)])
        y = _ln(merged, r.tensor("mm.input_norm.weight"), r.tensor("mm.input_norm.bias"),
                r.get("edgevlm.projector.input_norm_epsilon"))
        y = _gelu(y @ r.tensor("mm.1.weight").T + r.tensor("mm.1.bias")) @ r.tensor("mm.2.weight").T + r.tensor("mm.2.bias")
        with torch.no_grad():
            ref = m.encode_tiles(torch.from_numpy(x)[None])[0].numpy()
        np.testing.assert_allclose(y, ref, atol=2e-4, rtol=1e-3)


def test_import_pair_inverts_export():
    """import_pair (training from the shipped GGUF pair) gives back the exported model: the same weights,
    tokenizer and tiling, so exporting it again writes the same bytes."""
    with tempfile.TemporaryDirectory() as d:
        m, tok, tc, (lp, vp) = _setup(d)
        m2, tok2, tc2 = export.import_pair(lp, vp)
        assert tok2.merges == tok.merges and tc2.policy == tc.policy and tc2.max_tiles == tc.max_tiles
        sd, sd2 = m.state_dict(), m2.state_dict()
        assert sd.keys() == sd2.keys()
        for k in sd:
            assert torch.equal(sd[k], sd2[k]), k
        lp2, vp2 = export.export_pair(m2, tok2, tc2, os.path.join(d, "again"))
        assert open(lp, "rb").read() == open(lp2, "rb").read()
        assert open(vp, "rb").read() == open(vp2, "rb").read()
        try:
            export.import_pair(vp, lp)             # the files swapped: refused with a message, not a crash
            raise AssertionError("a swapped pair was accepted")
        except ValueError as e:
            assert "not an edgevlm" in str(e)
