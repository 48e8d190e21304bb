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

    def add(n, t):
        a = _np(t)
        w.add_tensor(n, a, _wtype(a, wtype))

    add("token_embd.weight", llm.tok.weight)
    for i, b in enumerate(llm.blocks):
        add(f"blk.{i}.attn_norm.weight", b.attn_norm.w)
        add(f"blk.{i}.attn_q.weight", b.q.weight)
        add(f"blk.{i}.attn_k.weight", b.k.weight)
        add(f"blk.{i}.attn_v.weight", b.v.weight)
        add(f"blk.{i}.attn_output.weight", b.o.weight)
        add(f"blk.{i}.ffn_norm.weight", b.ffn_norm.w)
        add(f"blk.{i}.ffn_gate.weight", b.gate.weight)
        add(f"blk.{i}.ffn_up.weight", b.up.weight)
        add(f"blk.{i}.ffn_down.weight", b.down.weight)
    add("output_norm.weight", llm.norm.w)
    add("output.weight", llm.out.weight)
    w.write(path)


def export_mmproj(model, tcfg: tiling.TilingConfig, path, wtype=GGMLType.F32, name="edgevlm-nano"):
    c = model.c
    v = model.vit
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

    def add(n, t, allow_quant=True):
        a = _np(t)
        w.add_tensor(n, a, _wtype(a, wtype) if allow_quant else GGMLType.F32)

    add("v.patch_embd.weight", v.patch_embd.weight, allow_quant=False)   # 4-D conv kernel: F32
    add("v.patch_embd.bias", v.patch_embd.bias)
    add("v.position_embd.weight", v.pos, allow_quant=False)
    for i, b in enumerate(v.blocks):
        p = f"v.blk.{i}."
        for nm, mod in (("ln1", b.ln1), ("ln2", b.ln2), ("attn_q", b.q), ("attn_k", b.k), ("attn_v", b.v),
                        ("attn_out", b.o), ("ffn_up", b.up), ("ffn_down", b.down)):
            add(p + nm + ".weight", mod.weight)
            add(p + nm + ".bias", mod.bias)
    add("v.post_ln.weight", v.post_ln.weight)
    add("v.post_ln.bias", v.post_ln.bias)
    pr = model.proj
    add("mm.input_norm.weight", pr.norm.weight)
    add("mm.input_norm.bias", pr.norm.bias)
    add("mm.1.weight", pr.l1.weight)
    add("mm.1.bias", pr.l1.bias)
    add("mm.2.weight", pr.l2.weight)
    add("mm.2.bias", pr.l2.bias)
    w.write(path)


def export_pair(model, tok, tcfg, out_prefix, type_name="f32"):
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    t = TYPES[type_name]
    export_llm(model, tok, out_prefix + ".gguf", t)
    export_mmproj(model, tcfg, out_prefix + "-mmproj.gguf", t)
    return out_prefix + ".gguf", out_prefix + "-mmproj.gguf"


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
