"""Writes the GGUF pair (LLM + mmproj) from a train.py checkpoint, following docs/FORMAT.md.

  python3 training/export.py --ckpt training/runs/nano/final.pt --out models/edgevlm-nano [--type f32|f16|q8_0]
  → models/edgevlm-nano.gguf, models/edgevlm-nano-mmproj.gguf
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiling  # noqa: E402
from gguf_io import GGMLType, GGUFValueType, GGUFWriter  # noqa: E402
from tokenizer import B2U, CHAT_TEMPLATE  # noqa: E402

TYPES = {"f32": GGMLType.F32, "f16": GGMLType.F16, "q8_0": GGMLType.Q8_0, "q4_0": GGMLType.Q4_0}


def _np(t):
    return t.detach().cpu().float().numpy()


def _wtype(arr, want):
    """2-D weights take the requested type when rows are whole blocks; 1-D tensors and the rest stay F32."""
    if arr.ndim < 2 or want == GGMLType.F32:
        return GGMLType.F32
    if want in (GGMLType.Q8_0, GGMLType.Q4_0) and arr.shape[-1] % 32:
        return GGMLType.F32
    return want


def export_llm(model, tok, path, wtype=GGMLType.F32, name="edgevlm-nano"):
    c = model.c
    llm = model.llm
    w = GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", name)
    w.add_u32("general.file_type", {GGMLType.F32: 0, GGMLType.F16: 1, GGMLType.Q4_0: 2, GGMLType.Q8_0: 7}[wtype])
    w.add_u32("llama.context_length", c.ctx)
    w.add_u32("llama.embedding_length", c.width)
    w.add_u32("llama.block_count", c.layers)
    w.add_u32("llama.feed_forward_length", c.ff)
    w.add_u32("llama.attention.head_count", c.heads)
    w.add_u32("llama.attention.head_count_kv", c.kv_heads)
    w.add_u32("llama.rope.dimension_count", c.width // c.heads)
    w.add_f32("llama.rope.freq_base", c.rope_base)
    w.add_f32("llama.attention.layer_norm_rms_epsilon", c.rms_eps)
    w.add_u32("llama.vocab_size", tok.n_vocab)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "default")
    w.add_array("tokenizer.ggml.tokens", GGUFValueType.STRING, tok.tokens)
    w.add_array("tokenizer.ggml.token_type", GGUFValueType.INT32, tok.token_types())
    w.add_array("tokenizer.ggml.merges", GGUFValueType.STRING, [f"{a} {b}" for a, b in tok.merges])
    w.add_u32("tokenizer.ggml.bos_token_id", tok.id("<|endoftext|>"))
    w.add_u32("tokenizer.ggml.eos_token_id", tok.id("<|im_end|>"))
    w.add_u32("tokenizer.ggml.padding_token_id", tok.id("<|endoftext|>"))
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_string("tokenizer.chat_template", CHAT_TEMPLATE)

    for n, t in _llm_tensors(llm):
        a = _np(t)
        w.add_tensor(n, a, _wtype(a, wtype))
    w.write(path)


def export_mmproj(model, tcfg: tiling.TilingConfig, path, wtype=GGMLType.F32, name="edgevlm-nano"):
    c = model.c
    w = GGUFWriter()
    w.add_string("general.architecture", "clip")
    w.add_string("general.name", name)
    w.add_u32("general.file_type", {GGMLType.F32: 0, GGMLType.F16: 1, GGMLType.Q4_0: 2, GGMLType.Q8_0: 7}[wtype])
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_string("clip.projector_type", "lfm2")
    w.add_bool("clip.use_gelu", True)
    w.add_u32("clip.vision.image_size", c.tile)
    w.add_u32("clip.vision.patch_size", c.patch)
    w.add_u32("clip.vision.embedding_length", c.v_width)
    w.add_u32("clip.vision.feed_forward_length", c.v_ff)
    w.add_u32("clip.vision.block_count", c.v_layers)
    w.add_u32("clip.vision.attention.head_count", c.v_heads)
    w.add_f32("clip.vision.attention.layer_norm_epsilon", c.v_eps)
    w.add_u32("clip.vision.projection_dim", c.width)
    w.add_array("clip.vision.image_mean", GGUFValueType.FLOAT32, list(tcfg.mean))
    w.add_array("clip.vision.image_std", GGUFValueType.FLOAT32, list(tcfg.std))
    w.add_u32("clip.vision.projector.scale_factor", 2)
    w.add_string("edgevlm.tiling.policy", tcfg.policy)
    w.add_f32("edgevlm.tiling.alpha", tcfg.alpha)
    w.add_u32("edgevlm.tiling.max_tiles", tcfg.max_tiles)
    w.add_bool("edgevlm.tiling.thumbnail", tcfg.thumbnail)
    w.add_string("edgevlm.image.start_token", tiling.START)
    w.add_string("edgevlm.image.end_token", tiling.END)
    w.add_string("edgevlm.image.tile_separator", tiling.TILE_SEP)
    w.add_string("edgevlm.image.row_separator", tiling.ROW_SEP)
    w.add_f32("edgevlm.projector.input_norm_epsilon", c.proj_eps)

    keep_f32 = {"v.patch_embd.weight", "v.position_embd.weight"}   # the 4-D conv kernel and the table
    for n, t in _mmproj_tensors(model):
        a = _np(t)
        w.add_tensor(n, a, GGMLType.F32 if n in keep_f32 else _wtype(a, wtype))
    w.write(path)


def export_pair(model, tok, tcfg, out_prefix, type_name="f32"):
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    t = TYPES[type_name]
    export_llm(model, tok, out_prefix + ".gguf", t)
    export_mmproj(model, tcfg, out_prefix + "-mmproj.gguf", t)
    return out_prefix + ".gguf", out_prefix + "-mmproj.gguf"


def _llm_tensors(llm):
    yield "token_embd.weight", llm.tok.weight
    for i, b in enumerate(llm.blocks):
        for nm, t in (("attn_norm", b.attn_norm.w), ("attn_q", b.q.weight), ("attn_k", b.k.weight),
                      ("attn_v", b.v.weight), ("attn_output", b.o.weight), ("ffn_norm", b.ffn_norm.w),
                      ("ffn_gate", b.gate.weight), ("ffn_up", b.up.weight), ("ffn_down", b.down.weight)):
            yield f"blk.{i}.{nm}.weight", t
    yield "output_norm.weight", llm.norm.w
    yield "output.weight", llm.out.weight


def _mmproj_tensors(model):
    v = model.vit
    yield "v.patch_embd.weight", v.patch_embd.weight
    yield "v.patch_embd.bias", v.patch_embd.bias
    yield "v.position_embd.weight", v.pos
    for i, b in enumerate(v.blocks):
        for nm, mod in (("ln1", b.ln1), ("ln2", b.ln2), ("attn_q", b.q), ("attn_k", b.k), ("attn_v", b.v),
                        ("attn_out", b.o), ("ffn_up", b.up), ("ffn_down", b.down)):
            yield f"v.blk.{i}.{nm}.weight", mod.weight
            yield f"v.blk.{i}.{nm}.bias", mod.bias
    yield "v.post_ln.weight", v.post_ln.weight
    yield "v.post_ln.bias", v.post_ln.bias
    pr = model.proj
    for nm, t in (("mm.input_norm.weight", pr.norm.weight), ("mm.input_norm.bias", pr.norm.bias),
                  ("mm.1.weight", pr.l1.weight), ("mm.1.bias", pr.l1.bias), ("mm.2.weight", pr.l2.weight),
                  ("mm.2.bias", pr.l2.bias)):
        yield nm, t


def import_pair(model_path, mmproj_path):
    """The inverse of export_pair: (VLM, tokenizer, tiling config) from a GGUF pair, so that training can go
    on from the shipped model (whose checkpoint is not in git). Exact for F32 files; quantized files give
    their dequantized weights."""
    import torch
    from gguf_io import GGUFReader
    from model import VLM, ModelConfig
    from tokenizer import BPETokenizer
    lm, mp = GGUFReader(model_path), GGUFReader(mmproj_path)
    if lm.get("general.architecture") != "llama" or mp.get("clip.projector_type") != "lfm2":
        raise ValueError(f"{model_path} / {mmproj_path}: not an edgevlm llama + lfm2 mmproj pair")
    tok = BPETokenizer([tuple(m.split(" ", 1)) for m in lm.get("tokenizer.ggml.merges")])
    c = ModelConfig(tile=mp.get("clip.vision.image_size"), patch=mp.get("clip.vision.patch_size"),
                    v_width=mp.get("clip.vision.embedding_length"), v_layers=mp.get("clip.vision.block_count"),
                    v_heads=mp.get("clip.vision.attention.head_count"),
                    v_ff=mp.get("clip.vision.feed_forward_length"),
                    v_eps=mp.get("clip.vision.attention.layer_norm_epsilon"),
                    proj_eps=mp.get("edgevlm.projector.input_norm_epsilon"), vocab=tok.n_vocab,
                    width=lm.get("llama.embedding_length"), layers=lm.get("llama.block_count"),
                    heads=lm.get("llama.attention.head_count"), kv_heads=lm.get("llama.attention.head_count_kv"),
                    ff=lm.get("llama.feed_forward_length"), rms_eps=lm.get("llama.attention.layer_norm_rms_epsilon"),
                    rope_base=lm.get("llama.rope.freq_base"), ctx=lm.get("llama.context_length"))
    model = VLM(c)
    with torch.no_grad():
        for reader, tensors in ((lm, _llm_tensors(model.llm)), (mp, _mmproj_tensors(model))):
            for name, t in tensors:
                a = reader.tensor(name)
                if a.size != t.numel():
                    raise ValueError(f"{reader.path}: tensor {name} has {a.size} values, the model wants {t.numel()}")
                t.copy_(torch.from_numpy(np.ascontiguousarray(a)).reshape(t.shape))
    tcfg = tiling.TilingConfig(tile=c.tile, max_tiles=mp.get("edgevlm.tiling.max_tiles"),
                               policy=mp.get("edgevlm.tiling.policy"), alpha=mp.get("edgevlm.tiling.alpha"),
                               thumbnail=mp.get("edgevlm.tiling.thumbnail"),
                               mean=tuple(mp.get("clip.vision.image_mean")), std=tuple(mp.get("clip.vision.image_std")))
    model.eval()
    return model, tok, tcfg


def main():
    import train
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True, help="output prefix: writes PREFIX.gguf and PREFIX-mmproj.gguf")
    ap.add_argument("--type", default="f32", choices=list(TYPES))
    a = ap.parse_args()
    model, tok, tcfg = train.load_checkpoint(a.ckpt)
    for p in export_pair(model, tok, tcfg, a.out, a.type):
        print(p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
