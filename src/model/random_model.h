// Random-weight decoders written to GGUF: the subjects of the parity tests (edgevlm vs llama.cpp vs
// a numpy reference) and of the text benchmarks. Each architecture (llama, qwen2, qwen3, gemma3,
// phi3, lfm2) gets the keys, tensor names and shapes llama.cpp's converter writes for it, and
// tokenizer.* copied from a real vocab file, so that llama.cpp loads them as it would any model.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/quant.h"

namespace edgevlm {

struct RandomLlamaSpec {
  // llama (normal RoPE), qwen2 (NeoX RoPE, usually with qkv_bias), qwen2vl (qwen2 with M-RoPE), qwen3 (q/k norms), gemma3
  // (post-norms, GELU, sliding window), phi3 (fused QKV and gate/up), lfm2 (short convolutions
  // and attention)
  std::string arch = "llama";
  int n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx = 0;
  int head_dim = 0;  // 0: n_embd / n_head; otherwise written as attention.key_length/value_length
  int n_rot = 0;     // rotated dimensions per head (rope.dimension_count); 0: head_dim
  // Llama 3 RoPE scaling written as rope_freqs.weight the way the converter computes it from
  // rope_scaling {factor, low_freq_factor, high_freq_factor, original_max_position_embeddings};
  // factor 0: none.
  float llama3_factor = 0, llama3_low = 1, llama3_high = 4;
  int llama3_orig_ctx = 8192;
  // phi3 LongRoPE: rope_factors_short/long.weight, rope.scaling.original_context_length and
  // rope.scaling.attn_factor, as the converter writes them for a longrope config (0: none).
  int longrope_orig_ctx = 0;
  int n_swa = 0;  // gemma3: attention.sliding_window (0: key absent)
  // Linear RoPE scaling (rope.scaling.type linear, rope.scaling.factor), as Gemma 3 4B+ and
  // linearly scaled Llama fine-tunes have it; 0: none.
  float rope_linear_factor = 0;
  // lfm2: the layers with attention (the others are short convolutions of conv_kernel taps).
  std::vector<int> attn_layers;
  int conv_kernel = 3;
  float rope_freq_base = 10000;
  // qwen2vl: rope.dimension_sections (t, h, w; the converter writes a fourth, 0), pairs of n_rot/2.
  std::array<int, 3> rope_sections{};
  bool qkv_bias = false;
  bool tied_output = false;  // no output.weight: the output projection is token_embd
  GGMLType weight_type = GGMLType::F32;  // every matrix (token_embd included); norms and biases stay F32
  uint64_t seed = 1;
  std::string vocab_from;  // path of a GGUF whose tokenizer.* keys (and vocab size) are copied
  // Added members:
  float rms_eps = 1e-5f;
  int n_vocab = 0;  // vocabulary size when vocab_from is empty (the file then has no tokenizer)
  // Tokens appended to vocab_from's vocabulary as CONTROL tokens (type 3), as the converter writes a
  // model's added special tokens; bos_token / eos_token, when set, name the BOS / EOS among all tokens.
  std::vector<std::string> added_tokens;
  std::string bos_token, eos_token;
  int add_bos = -1;  // tokenizer.ggml.add_bos_token: -1 as vocab_from has it, 0 false, 1 true
  // output.weight drawn this many times larger: sharper next-token distributions, so that greedy
  // parity tests have clear margins between the top candidates.
  float output_scale = 1.0f;
};

// Writes the model. Weights are deterministic in (seed, tensor name) and independent of the weight
// type, so the Q8_0/Q4_0 files of a seed are quantizations of its F32 file. Throws edgevlm::Error
// on an inconsistent spec or an unreadable vocab file.
void write_random_llama(const std::string& path, const RandomLlamaSpec& spec);

// Parameters (elements of all tensors) of the model a spec describes.
int64_t random_llama_param_count(const RandomLlamaSpec& spec, int n_vocab);

// `edgevlm gen-model ...`: parses the flags below into a spec and writes the file (argv[0] is the
// subcommand name). Returns the process exit status; errors are printed, not thrown.
//   --out F  --arch llama|qwen2  --embd N  --layers N  --heads N  --kv-heads N  --ff N  --ctx N
//   --type f32|f16|q8_0|q4_0  --seed S  --vocab-from GGUF | --vocab-size N
//   [--rope-base B] [--eps E] [--qkv-bias] [--tied] [--head-dim N] [--rot N]
//   [--llama3-rope FACTOR,LOW,HIGH,ORIG_CTX] [--longrope ORIG_CTX] [--swa N] [--attn-layers I,J,...]
//   [--rope-linear FACTOR]
int gen_model_main(int argc, char** argv);

// A random LoRA adapter for a base model file, in llama.cpp's adapter format (model/lora.h): one
// .lora_a/.lora_b pair per targeted matrix of the base. Values are deterministic in (seed, tensor
// name). A is drawn with rms 1/√n_in, and B so that the product's scaled update s·B·A has an rms
// of `strength` times the base matrix's own rms: 0.5 moves a random model's greedy tokens.
struct RandomLoraSpec {
  std::string base;  // the base model GGUF (its architecture, tensor names and shapes)
  // Matrices by their name within a block ("attn_q", "ffn_down", "attn_qkv", "shortconv.in_proj",
  // ...) or "output" for output.weight; {"all"}: every matrix the decoder multiplies.
  std::vector<std::string> targets = {"all"};
  int rank = 8;
  float alpha = 16;  // written as adapter.lora.alpha; 0: the key is written as 0 (s = the user's scale)
  GGMLType type = GGMLType::F32;  // f32, f16, bf16 or q8_0 (q8_0 needs ranks and widths in blocks of 32)
  float strength = 0.5f;
  uint64_t seed = 1;
};

// Writes the adapter; returns the number of matrices it targets. Throws edgevlm::Error on a bad
// spec, a base file that cannot be read or targets that match no matrix.
int write_random_lora(const std::string& path, const RandomLoraSpec& spec);

// `edgevlm gen-lora --base M.gguf --out A.gguf [--rank R] [--alpha A] [--targets T,...]
// [--type f32|f16|bf16|q8_0] [--strength S] [--seed S]`.
int gen_lora_main(int argc, char** argv);
// ---- A random-weight SmolVLM / SmolVLM2 pair (clip.projector_type idefics3), in llama.cpp's
// converter's conventions for the published ggml-org/SmolVLM-*-GGUF files:
// - the decoder: arch llama (SmolLM2), vocabulary from vocab_from (a GPT-2 BPE vocab, where "\n" and
//   "\n\n" are single tokens as in SmolLM2's) with SmolVLM's added tokens appended as CONTROL:
//   <|im_start|> (BOS), <end_of_utterance> (EOS), <fake_token_around_image>, <image>,
//   <global-img> and <row_R_col_C> for R, C in 1..6;
// - the mmproj: general.architecture clip, clip.projector_type idefics3, clip.has_vision_encoder,
//   clip.use_gelu, clip.vision.{image_size, patch_size, embedding_length, feed_forward_length,
//   block_count, attention.head_count, attention.layer_norm_epsilon, projection_dim, image_mean,
//   image_std, projector.scale_factor} and, when preproc_image_size > 0, clip.vision.preproc_image_size
//   (the processor's size.longest_edge; files converted before that key existed lack it); tensors
//   v.patch_embd.{weight,bias}, v.position_embd.weight, v.blk.N.{ln1,attn_q,attn_k,attn_v,attn_out,
//   ln2,ffn_up,ffn_down}.{weight,bias}, v.post_ln.{weight,bias}, mm.model.fc.weight (no bias); matrices
//   F16 (the converter's default for the published mmproj-*-f16.gguf), vectors F32; no edgevlm.* key.
struct RandomIdefics3Spec {
  // Decoder: n_embd is taken from vision.projection_dim; arch llama.
  int n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 128, n_ctx = 4096;
  GGMLType llm_type = GGMLType::F32;
  std::string vocab_from;
  float output_scale = 8.0f;  // RandomLlamaSpec::output_scale
  uint64_t seed = 1;
  // Vision: tile image_size, patch_size, ViT width/depth, projection_dim (= decoder width).
  int image_size = 64, patch_size = 8, n_embd = 32, n_ff_vit = 64, n_layer_vit = 2, n_head_vit = 4;
  int projection_dim = 64, scale_factor = 2;
  int preproc_image_size = 0;  // clip.vision.preproc_image_size; 0: absent
  std::array<float, 3> image_mean = {0.5f, 0.5f, 0.5f}, image_std = {0.5f, 0.5f, 0.5f};
  GGMLType vision_type = GGMLType::F16;
  int min_tiles = 0, max_tiles = 0;  // internvl: clip.vision.preproc_min/max_tiles (0: absent)
  int sliding_window = 512;          // gemma3: the local layers' window (Gemma 3 1B's)
  int window_pattern = 4;            // qwen25vl: clip.vision.n_wa_pattern (Qwen2.5-VL's 32 layers: 8)
};
// SmolVLM's added tokens, in the order they are appended.
std::vector<std::string> smolvlm_added_tokens();
void write_random_idefics3(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& spec);
// ---- A random-weight InternVL 2.5/3 pair (clip.projector_type internvl), same spec: the decoder
// is qwen2 (InternVL3-1B/2B's Qwen2.5, Q/K/V biases) with the GPT-2 vocabulary plus <|im_start|>,
// <|im_end|> (EOS), <img>, </img>, <IMG_CONTEXT>; the mmproj has InternViT's class token
// (v.class_embd [D,1,1], v.position_embd.weight [D, N+1, 1] F32), layer scales v.blk.N.ls1/ls2,
// no post-LayerNorm, and mm.model.mlp.0 (LayerNorm) / .1 / .3 with biases; clip.vision.preproc_min_tiles
// and preproc_max_tiles when set. longest_edge is not used.
void write_random_internvl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& spec);
// ---- A random-weight Qwen2-VL / Qwen2.5-VL pair (clip.projector_type qwen2vl_merger /
// qwen2.5vl_merger), same spec: the decoder is qwen2vl (Q/K/V biases, M-RoPE sections in Qwen2-VL's
// proportions) with the GPT-2 vocabulary plus <|im_start|>, <|im_end|> (EOS), <|vision_start|>,
// <|vision_end|>, <|image_pad|>; the mmproj has the Conv3d's two slices, no position table, CLIP's
// mean/std, mm.0/mm.2 with biases; 2.5: RMSNorm, SwiGLU (clip.use_silu) and clip.vision.n_wa_pattern.
void write_random_qwen2vl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& spec,
                          bool qwen25);

// ---- A random-weight LFM2-VL pair (clip.projector_type lfm2), same spec: the decoder is lfm2
// (short convolutions and attention alternating) with the GPT-2 vocabulary plus <|startoftext|>,
// <|im_start|>, <|im_end|> (EOS), <image>, <|image_start|>, <|image_end|>, <|img_thumbnail|> and
// <|img_row_R_col_C|> for R, C in 1..10; the mmproj is SigLIP2-shaped (image_size = the position
// grid's pixels, post-LayerNorm) with mm.input_norm, mm.1, mm.2 and their biases.
void write_random_lfm2vl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& spec);

// ---- A random-weight Gemma 3 pair (clip.projector_type gemma3), same spec: the decoder is gemma3
// (post-norms, GELU, sliding-window local layers) with the GPT-2 vocabulary plus <bos>, <eos>,
// <start_of_turn>, <end_of_turn> (EOS), <start_of_image>, <end_of_image>, <image_soft_token>; the
// mmproj is SigLIP-shaped with mm.soft_emb_norm and mm.input_projection ([text, vit] in GGUF).
void write_random_gemma3vl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& spec);

// `edgevlm gen-vlm-pair --family idefics3|internvl|lfm2|gemma3 --out LLM --mmproj-out MMPROJ --vocab-from VOCAB [...]`
// (see --help).
int gen_vlm_pair_main(int argc, char** argv);

}  // namespace edgevlm
