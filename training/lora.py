"""LoRA adapters on the decoder, for the modular variant of the recipe (train.py --modular-lora R): stage 2
trains the ViT, the projector and these adapters while the decoder's own weights stay frozen, so that the
decoder file stays the text model it was after the text phase and vision is an adapter beside it
(BlueLM-V-3B's "modular multimodal model via LoRA"). Without the adapter the engine answers text exactly as
the text model did; with `edgevlm run --lora ADAPTER.gguf` it answers about images.

The adapter file is llama.cpp's LoRA format, which the engine's --lora reads (src/model/lora.cc):
general.type = adapter, adapter.type = lora, adapter.lora.alpha, and for every adapted matrix
`blk.N.<name>.weight.lora_a` of shape [n_in, r] (ne order) and `.lora_b` of shape [r, n_out]; the matrix
used is W + (alpha / r) · B·A."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gguf_io import GGMLType, GGUFWriter

# GGUF matrix name → the attribute of model.LlmBlock that holds it.
TARGETS = {"attn_q": "q", "attn_k": "k", "attn_v": "v", "attn_output": "o",
           "ffn_gate": "gate", "ffn_up": "up", "ffn_down": "down"}


class DecoderLora(nn.Module):
    """A rank-r adapter on every TARGETS matrix of every decoder block. B starts at zero, so an attached
    adapter leaves the decoder's outputs unchanged until it has trained."""

    def __init__(self, llm, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.rank, self.alpha = rank, float(alpha)
        self.scale = self.alpha / rank
        self.a = nn.ParameterDict()
        self.b = nn.ParameterDict()
        for i, blk in enumerate(llm.blocks):
            for name, attr in TARGETS.items():
                lin = getattr(blk, attr)
                self.a[self.key(i, name)] = nn.Parameter(torch.randn(rank, lin.in_features) / math.sqrt(lin.in_features))
                self.b[self.key(i, name)] = nn.Parameter(torch.zeros(lin.out_features, rank))
        self._hooks = []

    @staticmethod
    def key(block: int, name: str) -> str:
        return f"blk{block}_{name}"   # ParameterDict keys cannot hold dots

    def attach(self, llm):
        """Adds the adapter's term to the outputs of llm's matrices (forward hooks; the matrices are not
        modified, so the decoder's state_dict and its GGUF export stay the base model)."""
        self.detach()
        for i, blk in enumerate(llm.blocks):
            for name, attr in TARGETS.items():
                a, b = self.a[self.key(i, name)], self.b[self.key(i, name)]
                self._hooks.append(getattr(blk, attr).register_forward_hook(
                    lambda mod, inp, out, a=a, b=b: out + self.scale * F.linear(F.linear(inp[0], a), b)))
        return self

    def detach(self):
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def delta(self, block: int, name: str) -> torch.Tensor:
        """The adapter's change to a matrix, (alpha / r) · B·A, shaped like the matrix [n_out, n_in]."""
        k = self.key(block, name)
        return self.scale * self.b[k] @ self.a[k]


def export_adapter(lora: DecoderLora, path: str, name: str = "edgevlm-nano-vision"):
    """Writes the adapter as a GGUF LoRA file for a decoder of architecture llama (the nano decoder's)."""
    w = GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.type", "adapter")
    w.add_string("general.name", name)
    w.add_string("adapter.type", "lora")
    w.add_f32("adapter.lora.alpha", lora.alpha)
    n_blocks = len({k.split("_")[0] for k in lora.a.keys()})
    for i in range(n_blocks):
        for tname in TARGETS:
            k = lora.key(i, tname)
            # add_tensor takes arrays shaped ne[::-1]: A as [r, n_in] gives ne [n_in, r]; B as [n_out, r] gives
            # ne [r, n_out]
            w.add_tensor(f"blk.{i}.{tname}.weight.lora_a", lora.a[k].detach().float().numpy(), GGMLType.F32)
            w.add_tensor(f"blk.{i}.{tname}.weight.lora_b", lora.b[k].detach().float().numpy(), GGMLType.F32)
    w.write(path)
