"""The modular recipe's decoder adapter (lora.py): its hooks add exactly (alpha/r)·B·A to each matrix,
the file it writes is llama.cpp's LoRA format as the engine reads it (checked through the engine when
build/edgevlm exists), and modular stage 2 leaves the decoder's weights untouched."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import export  # noqa: E402
import lora  # noqa: E402
import tiling  # noqa: E402
import train  # noqa: E402
from gguf_io import GGUFReader  # noqa: E402
from model import ModelConfig, VLM  # noqa: E402
from test_train import fit_stage2, small_trainer  # noqa: E402
from tokenizer import BPETokenizer  # noqa: E402

CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "edgevlm")


def _model(seed=0):
    tok = BPETokenizer.train(data.corpus_texts(100), 400)
    torch.manual_seed(seed)
    m = VLM(ModelConfig(vocab=tok.n_vocab, width=32, layers=2, heads=4, kv_heads=2, ff=64, v_width=16,
                        v_layers=1, v_heads=2, v_ff=64, tile=32, patch=8)).eval()
    return m, tok


def _random_adapter(m, rank=4, alpha=6.0):
    ad = lora.DecoderLora(m.llm, rank, alpha)
    with torch.no_grad():
        for p in ad.b.values():
            p.normal_(0, 0.2)
    return ad


def _logits(m, ids):
    with torch.no_grad():
        h = m.llm.hidden(m.llm.tok(torch.tensor([ids])))
        return m.llm.out(h)[0, -1].numpy()


def test_zero_adapter_changes_nothing_and_a_trained_one_adds_its_product():
    m, _ = _model()
    ids = [5, 17, 42, 99, 3]
    base = _logits(m, ids)
    ad = lora.DecoderLora(m.llm, 4, 8.0).attach(m.llm)
    np.testing.assert_array_equal(_logits(m, ids), base)   # B starts at zero
    with torch.no_grad():
        for p in ad.b.values():
            p.normal_(0, 0.2)
    hooked = _logits(m, ids)
    ad.detach()
    np.testing.assert_array_equal(_logits(m, ids), base)   # detached: the base model again
    # reference: the same model with W + (alpha/r)·B·A written into its matrices
    merged, _ = _model()
    with torch.no_grad():
        for i, blk in enumerate(merged.llm.blocks):
            for name, attr in lora.TARGETS.items():
                k = ad.key(i, name)
                getattr(blk, attr).weight += (8.0 / 4) * ad.b[k] @ ad.a[k]
    want = _logits(merged, ids)
    assert np.abs(hooked - base).max() > 1e-2                      # the adapter does something
    np.testing.assert_allclose(hooked, want, rtol=1e-4, atol=1e-5)


def test_adapter_file_is_llama_cpp_lora_format():
    m, _ = _model()
    ad = _random_adapter(m, rank=4, alpha=6.0)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.gguf")
        lora.export_adapter(ad, p)
        r = GGUFReader(p)
        assert r.get("general.type") == "adapter" and r.get("adapter.type") == "lora"
        assert r.get("general.architecture") == "llama"
        assert r.get("adapter.lora.alpha") == pytest.approx(6.0)
        assert len(r.tensors) == 2 * len(lora.TARGETS) * len(m.llm.blocks)
        a = r.tensors["blk.1.ffn_down.weight.lora_a"]
        b = r.tensors["blk.1.ffn_down.weight.lora_b"]
        assert a.ne == [64, 4] and b.ne == [4, 32]                  # [n_in, r] and [r, n_out]
        np.testing.assert_array_equal(r.tensor("blk.1.ffn_down.weight.lora_b"), ad.b[ad.key(1, "ffn_down")].detach().numpy())


@pytest.mark.skipif(not os.path.exists(CLI), reason="needs the engine (make build)")
def test_engine_applies_the_exported_adapter_like_pytorch():
    m, tok = _model(seed=1)
    ad = _random_adapter(m, rank=4, alpha=6.0)
    ids = [7, 30, 2, 250, 11, 64]
    base = _logits(m, ids)
    ad.attach(m.llm)
    adapted = _logits(m, ids)
    with tempfile.TemporaryDirectory() as d:
        model_path, _ = export.export_pair(m, tok, tiling.TilingConfig(tile=32), os.path.join(d, "t"))
        adapter = os.path.join(d, "vision-lora.gguf")
        lora.export_adapter(ad, adapter)
        for extra, want in (([], base), (["--lora", adapter], adapted)):
            out = os.path.join(d, "logits.bin")
            subprocess.run([CLI, "generate", "-m", model_path, "--prompt-tokens", ",".join(map(str, ids)), "-n", "1",
                            "--temp", "0", "-t", "1", "--kv-type", "f32", "--dump-logits", out, *extra], check=True, capture_output=True)
            got = np.fromfile(out, dtype="<f4")
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert np.abs(adapted - base).max() > 1e-2


def test_modular_stage2_trains_the_adapter_and_leaves_the_decoder(tmp_path):
    torch.manual_seed(0)
    tr = small_trainer(tmp_path, "--modular-lora", "4")
    decoder = {k: v.clone() for k, v in tr.model.llm.state_dict().items()}
    assert not any(p is q for p in tr.params_for("stage2") for q in tr.model.llm.parameters())
    first, last = fit_stage2(tr, 12)
    assert last < 0.8 * first
    for k, v in tr.model.llm.state_dict().items():
        assert torch.equal(v, decoder[k]), k
    assert max(p.abs().max().item() for p in tr.lora.b.values()) > 0
    # the checkpoint carries the adapter, and loading it attaches it again
    tr.save(os.path.join(str(tmp_path), "final.pt"), final=True)
    m, _, _ = train.load_checkpoint(os.path.join(str(tmp_path), "final.pt"))
    ids = [3, 9, 27]
    np.testing.assert_allclose(_logits(m, ids), _logits(tr.model.eval(), ids), rtol=1e-5, atol=1e-6)
