#include "model/bluelm_shape.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "core/timer.h"
#include "formats/gguf.h"
#include "model/tokenizer.h"

namespace edgevlm {

namespace {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// Uniform values of a given mean and standard deviation from splitmix64: fast enough to draw
// 2.7 billion weights in seconds. The distribution's shape does not matter for speed and memory
// work; the scales keep activations O(1) through the layers.
class Draw {
 public:
  Draw(uint64_t seed, const std::string& name) : s_(seed * 0x9E3779B97F4A7C15ull ^ fnv1a(name)) {}
  void fill(float* v, int64_t n, float mean, float sd) {
    const float a = sd * 1.7320508f * 2.0f;  // uniform on [-√3·sd, √3·sd)
    for (int64_t i = 0; i < n; ++i) v[i] = mean + a * (float(next() >> 40) * (1.0f / 16777216.0f) - 0.5f);
  }

 private:
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t s_;
};

struct Tensor {
  std::string name;
  std::vector<int64_t> ne;
  float mean, sd;
  GGMLType type;
};

// The type of a generated tensor: as quantize_gguf would give a file with F16 matrices (so rows
// that are not whole blocks end at F16, not F32).
GGMLType pick(QuantScheme s, ModelFileKind kind, const std::string& name, const std::vector<int64_t>& ne) {
  GGUFTensorInfo t;
  t.name = name;
  t.ne = ne;
  t.type = GGMLType::F16;
  return quant_target_type(s, kind, t);
}

void stream(GGUFStreamWriter& w, const std::vector<Tensor>& ts, uint64_t seed, const std::string& path,
            void (*progress)(uint64_t, uint64_t)) {
  for (const Tensor& t : ts) w.add_tensor_info(t.name, t.type, t.ne);
  uint64_t total = 0, done = 0;
  for (size_t i = 0; i < ts.size(); ++i) total += w.tensor_bytes(i);
  w.begin(path);
  std::vector<float> row;
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    if (progress) progress(done, total);
    Draw d(seed, t.name);
    int64_t n = 1;
    for (int64_t x : t.ne) n *= x;
    const int64_t cols = t.ne[0], rows = n / cols;
    const size_t rb = row_bytes(t.type, cols);
    const int64_t batch = std::max<int64_t>(1, int64_t((4u << 20) / rb));
    row.resize(size_t(cols));
    buf.resize(size_t(std::min(batch, rows)) * rb);
    for (int64_t r0 = 0; r0 < rows; r0 += batch) {
      const int64_t r1 = std::min(rows, r0 + batch);
      for (int64_t r = r0; r < r1; ++r) {
        d.fill(row.data(), cols, t.mean, t.sd);
        quantize_row(t.type, row.data(), buf.data() + size_t(r - r0) * rb, cols);
      }
      w.write_data(buf.data(), size_t(r1 - r0) * rb);
    }
    done += w.tensor_bytes(i);
  }
  if (progress) progress(done, total);
  w.finish();
}

std::string default_vocab() {
  std::string shared;
  if (const char* e = std::getenv("EDGEVLM_SHARED_DIR"); e && *e) {
    shared = e;
  } else {
    shared = "../shared";  // beside the checkout, as the README's commands run from its root
  }
  return shared + "/testdata/tokenizer/ggml-vocab-gpt-2.gguf";
}

const char* kChatML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

bool is_letters(const std::string& s, size_t from) {
  if (s.size() <= from) return false;
  for (size_t i = from; i < s.size(); ++i)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) return false;
  return true;
}

// tokenizer.* keys: the base vocabulary, synthetic merges (word + common suffix, both already
// tokens, so every added token is reachable by BPE) up to n_vocab − 6, then the control tokens.
void tokenizer_keys(GGUFStreamWriter& w, const BlueLmShape& s) {
  const std::string path = s.vocab_from.empty() ? default_vocab() : s.vocab_from;
  auto f = GGUFFile::open(path);
  EV_CHECK(f->get_string_or("tokenizer.ggml.model", "") == "gpt2",
           "gen-bluelm: %s is not a gpt2-style (byte-level BPE) vocabulary", path.c_str());
  std::vector<std::string> tokens = f->get_strings("tokenizer.ggml.tokens");
  std::vector<std::string> merges = f->get_strings("tokenizer.ggml.merges");
  std::vector<int64_t> types64 = f->has("tokenizer.ggml.token_type") ? f->get_ints("tokenizer.ggml.token_type")
                                                                      : std::vector<int64_t>(tokens.size(), 1);
  EV_CHECK(types64.size() == tokens.size(), "gen-bluelm: %s: token_type and tokens differ in length", path.c_str());
  const char* specials[] = {"<|im_start|>", "<|im_end|>", "<image>", "</image>", "<tile>", "<row>"};
  const size_t n_special = sizeof specials / sizeof specials[0];
  EV_CHECK(size_t(s.n_vocab) >= tokens.size() + n_special,
           "gen-bluelm: vocabulary size %d is smaller than %s's %zu tokens plus %zu control tokens", s.n_vocab,
           path.c_str(), tokens.size(), n_special);
  const size_t target = size_t(s.n_vocab) - n_special;
  std::unordered_set<std::string> have(tokens.begin(), tokens.end());
  std::vector<size_t> words, suffixes;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types64[i] != 1) continue;
    const std::string& t = tokens[i];
    const bool spaced = t.rfind("\xC4\xA0", 0) == 0;  // "Ġ": a leading space in GPT-2's byte mapping
    if (is_letters(t, spaced ? 2 : 0) && t.size() >= 2) words.push_back(i);
    if (!spaced && t.size() <= 3 && is_letters(t, 0) && t[0] >= 'a' && suffixes.size() < 64) suffixes.push_back(i);
  }
  // A merge "a b" is added only when the base BPE encodes the text of a+b as exactly [a, b]: the
  // new merges rank after every base merge, so BPE then reaches the new token.
  auto base = Tokenizer::from_gguf(*f);
  for (size_t si = 0; si < suffixes.size() && tokens.size() < target; ++si) {
    for (size_t wi = 0; wi < words.size() && tokens.size() < target; ++wi) {
      const std::string& a = tokens[words[wi]];
      const std::string& b = tokens[suffixes[si]];
      std::string cand = a + b;
      if (have.count(cand)) continue;
      const std::vector<int32_t> ids = base->encode(
          base->token_to_piece(int32_t(words[wi])) + base->token_to_piece(int32_t(suffixes[si])), false, false);
      if (ids.size() != 2 || ids[0] != int32_t(words[wi]) || ids[1] != int32_t(suffixes[si])) continue;
      have.insert(cand);
      merges.push_back(a + " " + b);
      tokens.push_back(std::move(cand));
      types64.push_back(1);
    }
  }
  EV_CHECK(tokens.size() == target, "gen-bluelm: could only extend %s to %zu tokens", path.c_str(), tokens.size());
  int32_t eot = -1;
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == "<|endoftext|>") eot = int32_t(i);
  for (const char* sp : specials) {
    EV_CHECK(have.insert(sp).second, "gen-bluelm: %s already has the token %s", path.c_str(), sp);
    tokens.push_back(sp);
    types64.push_back(3);
  }
  const int32_t im_end = int32_t(target + 1);
  if (eot < 0) eot = int32_t(target);  // no <|endoftext|>: <|im_start|> serves as BOS/padding
  std::vector<int32_t> types(types64.begin(), types64.end());
  w.set("tokenizer.ggml.model", GGUFValue::from_string("gpt2"));
  w.set("tokenizer.ggml.pre", GGUFValue::from_string(f->get_string_or("tokenizer.ggml.pre", "default")));
  w.set("tokenizer.ggml.tokens", GGUFValue::from_strings(tokens));
  w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s(types));
  w.set("tokenizer.ggml.merges", GGUFValue::from_strings(merges));
  w.set("tokenizer.ggml.bos_token_id", GGUFValue::from_u32(uint32_t(eot)));
  w.set("tokenizer.ggml.eos_token_id", GGUFValue::from_u32(uint32_t(im_end)));
  w.set("tokenizer.ggml.padding_token_id", GGUFValue::from_u32(uint32_t(eot)));
  w.set("tokenizer.ggml.add_bos_token", GGUFValue::from_bool(false));
  w.set("tokenizer.ggml.add_eos_token", GGUFValue::from_bool(false));
  w.set("tokenizer.chat_template", GGUFValue::from_string(kChatML));
}

void check_shape(const BlueLmShape& s) {
  EV_CHECK(s.n_embd > 0 && s.n_layer > 0 && s.n_head > 0 && s.n_head_kv > 0 && s.n_ff > 0 && s.n_ctx > 0,
           "gen-bluelm: LLM sizes must be positive");
  EV_CHECK(s.n_embd % s.n_head == 0 && s.n_head % s.n_head_kv == 0 && (s.n_embd / s.n_head) % 2 == 0,
           "gen-bluelm: hidden %d, %d heads, %d KV heads do not make even, grouped heads", s.n_embd, s.n_head,
           s.n_head_kv);
  // SigLIP at 384 with patch 14 covers 27 × 14 = 378 pixels: the stride-14 convolution drops the rest.
  EV_CHECK(s.image_size > 0 && s.patch_size > 0 && s.patch_size <= s.image_size,
           "gen-bluelm: patch %d does not fit a tile of %d", s.patch_size, s.image_size);
  EV_CHECK(s.vit_embd > 0 && s.vit_heads > 0 && s.vit_embd % s.vit_heads == 0 && s.vit_layers > 0 && s.vit_ff > 0 &&
               s.proj_hidden > 0,
           "gen-bluelm: ViT width %d is not a multiple of %d heads (or a size is not positive)", s.vit_embd,
           s.vit_heads);
}

}  // namespace

void write_bluelm_llm(const std::string& path, const BlueLmShape& s, void (*progress)(uint64_t, uint64_t)) {
  check_shape(s);
  GGUFStreamWriter w;
  const std::string a = "llama.";
  const int hd = s.n_embd / s.n_head, kv = s.n_head_kv * hd;
  w.set("general.architecture", GGUFValue::from_string("llama"));
  w.set("general.name", GGUFValue::from_string("bluelm-v-3b-shape-random"));
  w.set("general.file_type", GGUFValue::from_u32(quant_file_type(s.llm_scheme, ModelFileKind::Llm)));
  w.set("general.quantization_version", GGUFValue::from_u32(2));
  w.set(a + "context_length", GGUFValue::from_u32(uint32_t(s.n_ctx)));
  w.set(a + "embedding_length", GGUFValue::from_u32(uint32_t(s.n_embd)));
  w.set(a + "block_count", GGUFValue::from_u32(uint32_t(s.n_layer)));
  w.set(a + "feed_forward_length", GGUFValue::from_u32(uint32_t(s.n_ff)));
  w.set(a + "attention.head_count", GGUFValue::from_u32(uint32_t(s.n_head)));
  w.set(a + "attention.head_count_kv", GGUFValue::from_u32(uint32_t(s.n_head_kv)));
  w.set(a + "rope.dimension_count", GGUFValue::from_u32(uint32_t(hd)));
  w.set(a + "rope.freq_base", GGUFValue::from_f32(s.rope_freq_base));
  w.set(a + "attention.layer_norm_rms_epsilon", GGUFValue::from_f32(s.rms_eps));
  w.set(a + "vocab_size", GGUFValue::from_u32(uint32_t(s.n_vocab)));
  tokenizer_keys(w, s);

  // Scales as random_model.cc's (fan-in relative, so activations stay O(1) at any width).
  std::vector<Tensor> ts;
  auto mat = [&](const std::string& name, int64_t n_in, int64_t n_out, float sd) {
    ts.push_back({name, {n_in, n_out}, 0.0f, sd, pick(s.llm_scheme, ModelFileKind::Llm, name, {n_in, n_out})});
  };
  auto vec = [&](const std::string& name, int64_t n, float mean, float sd) {
    ts.push_back({name, {n}, mean, sd, GGMLType::F32});
  };
  const float e = float(s.n_embd);
  mat("token_embd.weight", s.n_embd, s.n_vocab, 1.0f);
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    vec(p + "attn_norm.weight", s.n_embd, 1.0f, 0.1f);
    mat(p + "attn_q.weight", s.n_embd, s.n_embd, 1.5f / std::sqrt(e));
    mat(p + "attn_k.weight", s.n_embd, kv, 1.5f / std::sqrt(e));
    mat(p + "attn_v.weight", s.n_embd, kv, 1.0f / std::sqrt(e));
    mat(p + "attn_output.weight", s.n_embd, s.n_embd, 0.6f / std::sqrt(e));
    vec(p + "ffn_norm.weight", s.n_embd, 1.0f, 0.1f);
    mat(p + "ffn_gate.weight", s.n_embd, s.n_ff, 1.0f / std::sqrt(e));
    mat(p + "ffn_up.weight", s.n_embd, s.n_ff, 1.0f / std::sqrt(e));
    mat(p + "ffn_down.weight", s.n_ff, s.n_embd, 0.6f / std::sqrt(float(s.n_ff)));
  }
  vec("output_norm.weight", s.n_embd, 1.0f, 0.1f);
  mat("output.weight", s.n_embd, s.n_vocab, 1.0f / std::sqrt(e));
  stream(w, ts, s.seed, path, progress);
}

void write_bluelm_mmproj(const std::string& path, const BlueLmShape& s, void (*progress)(uint64_t, uint64_t)) {
  check_shape(s);
  GGUFStreamWriter w;
  auto key = [&](const std::string& k, GGUFValue v) { w.set(k, std::move(v)); };
  key("general.architecture", GGUFValue::from_string("clip"));
  key("general.name", GGUFValue::from_string("bluelm-v-3b-shape-random-mmproj"));
  key("general.file_type", GGUFValue::from_u32(quant_file_type(s.vit_scheme, ModelFileKind::Mmproj)));
  key("general.quantization_version", GGUFValue::from_u32(2));
  key("clip.has_vision_encoder", GGUFValue::from_bool(true));
  key("clip.has_text_encoder", GGUFValue::from_bool(false));
  key("clip.projector_type", GGUFValue::from_string("lfm2"));
  key("clip.use_gelu", GGUFValue::from_bool(true));
  key("clip.vision.image_size", GGUFValue::from_u32(uint32_t(s.image_size)));
  key("clip.vision.patch_size", GGUFValue::from_u32(uint32_t(s.patch_size)));
  key("clip.vision.embedding_length", GGUFValue::from_u32(uint32_t(s.vit_embd)));
  key("clip.vision.feed_forward_length", GGUFValue::from_u32(uint32_t(s.vit_ff)));
  key("clip.vision.block_count", GGUFValue::from_u32(uint32_t(s.vit_layers)));
  key("clip.vision.attention.head_count", GGUFValue::from_u32(uint32_t(s.vit_heads)));
  key("clip.vision.attention.layer_norm_epsilon", GGUFValue::from_f32(1e-6f));
  key("clip.vision.projection_dim", GGUFValue::from_u32(uint32_t(s.n_embd)));
  key("clip.vision.image_mean", GGUFValue::from_f32s({0.5f, 0.5f, 0.5f}));
  key("clip.vision.image_std", GGUFValue::from_f32s({0.5f, 0.5f, 0.5f}));
  key("clip.vision.projector.scale_factor", GGUFValue::from_u32(2));
  key("edgevlm.tiling.policy", GGUFValue::from_string("relaxed"));
  key("edgevlm.tiling.alpha", GGUFValue::from_f32(0.1f));
  key("edgevlm.tiling.max_tiles", GGUFValue::from_u32(uint32_t(s.max_tiles)));
  key("edgevlm.tiling.thumbnail", GGUFValue::from_bool(true));
  key("edgevlm.image.start_token", GGUFValue::from_string("<image>"));
  key("edgevlm.image.end_token", GGUFValue::from_string("</image>"));
  key("edgevlm.image.tile_separator", GGUFValue::from_string("<tile>"));
  key("edgevlm.image.row_separator", GGUFValue::from_string("<row>"));
  key("edgevlm.projector.input_norm_epsilon", GGUFValue::from_f32(1e-5f));

  std::vector<Tensor> ts;
  auto mat = [&](const std::string& name, std::vector<int64_t> ne, int64_t fan_in) {
    const GGMLType t = pick(s.vit_scheme, ModelFileKind::Mmproj, name, ne);
    ts.push_back({name, std::move(ne), 0.0f, 1.0f / std::sqrt(float(fan_in)), t});
  };
  auto vec = [&](const std::string& name, std::vector<int64_t> ne, float mean, float sd) {
    ts.push_back({name, std::move(ne), mean, sd, GGMLType::F32});
  };
  const int64_t P = s.patch_size, D = s.vit_embd, F = s.vit_ff, side = s.image_size / s.patch_size, N = side * side;
  mat("v.patch_embd.weight", {P, P, 3, D}, 3 * P * P);
  vec("v.patch_embd.bias", {D}, 0.0f, 0.05f);
  vec("v.position_embd.weight", {D, N}, 0.0f, 0.3f);
  for (int i = 0; i < s.vit_layers; ++i) {
    const std::string p = "v.blk." + std::to_string(i) + ".";
    vec(p + "ln1.weight", {D}, 1.0f, 0.1f);
    vec(p + "ln1.bias", {D}, 0.0f, 0.05f);
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      mat(p + n + ".weight", {D, D}, D);
      vec(p + n + ".bias", {D}, 0.0f, 0.05f);
    }
    vec(p + "ln2.weight", {D}, 1.0f, 0.1f);
    vec(p + "ln2.bias", {D}, 0.0f, 0.05f);
    mat(p + "ffn_up.weight", {D, F}, D);
    vec(p + "ffn_up.bias", {F}, 0.0f, 0.05f);
    mat(p + "ffn_down.weight", {F, D}, F);
    vec(p + "ffn_down.bias", {D}, 0.0f, 0.05f);
  }
  vec("v.post_ln.weight", {D}, 1.0f, 0.1f);
  vec("v.post_ln.bias", {D}, 0.0f, 0.05f);
  const int64_t MD = D * 4, H = s.proj_hidden, OUT = s.n_embd;
  vec("mm.input_norm.weight", {MD}, 1.0f, 0.1f);
  vec("mm.input_norm.bias", {MD}, 0.0f, 0.05f);
  mat("mm.1.weight", {MD, H}, MD);
  vec("mm.1.bias", {H}, 0.0f, 0.05f);
  mat("mm.2.weight", {H, OUT}, H);
  vec("mm.2.bias", {OUT}, 0.0f, 0.05f);
  stream(w, ts, s.seed + 1, path, progress);
}

// ---- CLI ----

namespace {

const char* kUsage =
    "usage: edgevlm gen-bluelm [--out-dir DIR] [options]\n"
    "Writes the bluelm-v-3b shape (DESIGN.md) with random weights at the paper's precisions:\n"
    "  DIR/bluelm-v-3b-q4_0.gguf         2.7B llama decoder: Q4_0 matrices, Q8_0 embeddings/output\n"
    "  DIR/bluelm-v-3b-mmproj-q8_0.gguf  so400m SigLIP ViT at 384 + lfm2 projector, Q8_0\n"
    "Streamed: peak memory is a few tens of MB. Keep DIR out of git (default /tmp/edgevlm-bluelm).\n"
    "  --out-dir DIR       output folder (created if missing)\n"
    "  --seed S            random seed (default 1)\n"
    "  --llm-scheme S      bluelm (default), q8_0, q4_0, f16: types of the decoder's matrices\n"
    "  --vit-scheme S      bluelm (default: Q8_0), f16\n"
    "  --llm-layers N      decoder blocks (default 32; fewer for quick runs)\n"
    "  --vit-layers N      ViT blocks (default 27)\n"
    "  --only llm|mmproj   write one of the two files\n"
    "  --vocab-from GGUF   gpt2-style vocabulary to extend to 100096 tokens (default: the shared GPT-2 one)\n";

int to_int(const std::string& flag, const char* v) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  EV_CHECK(end != v && *end == '\0' && errno == 0 && x >= 1 && x <= 4096, "gen-bluelm: %s expects 1..4096, got '%s'",
           flag.c_str(), v);
  return int(x);
}

void print_progress(uint64_t done, uint64_t total) {
  static double last = -1;
  const double t = now_ms();
  if (done < total && t - last < 500) return;
  last = t;
  std::fprintf(stderr, "\r  %6.0f / %.0f MB (%3.0f%%)", double(done) / 1e6, double(total) / 1e6,
               total ? 100.0 * double(done) / double(total) : 100.0);
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

int gen_bluelm_main(int argc, char** argv) {
  try {
    BlueLmShape s;
    std::string dir = "/tmp/edgevlm-bluelm", only;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> const char* {
        EV_CHECK(i + 1 < argc, "gen-bluelm: %s needs a value", a.c_str());
        return argv[++i];
      };
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (a == "--out-dir" || a == "-o") {
        dir = val();
      } else if (a == "--seed") {
        s.seed = uint64_t(to_int(a, val()));
      } else if (a == "--llm-scheme") {
        s.llm_scheme = parse_quant_scheme(val());
      } else if (a == "--vit-scheme") {
        s.vit_scheme = parse_quant_scheme(val());
      } else if (a == "--llm-layers") {
        s.n_layer = to_int(a, val());
      } else if (a == "--vit-layers") {
        s.vit_layers = to_int(a, val());
      } else if (a == "--only") {
        only = val();
        EV_CHECK(only == "llm" || only == "mmproj", "gen-bluelm: --only takes llm or mmproj, got '%s'", only.c_str());
      } else if (a == "--vocab-from") {
        s.vocab_from = val();
      } else if (a == "--shape") {
        const std::string v = val();
        EV_CHECK(v == "bluelm-v-3b", "gen-bluelm: the only shape is bluelm-v-3b, got '%s'", v.c_str());
      } else {
        fail("gen-bluelm: unknown flag '%s' (see --help)", a.c_str());
      }
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    EV_CHECK(!ec, "gen-bluelm: cannot create %s: %s", dir.c_str(), ec.message().c_str());
    // Names say the precision, and the depth when it is not the paper's.
    const BlueLmShape full{};
    const std::string llm = dir + "/bluelm-v-3b-" +
                            (s.llm_scheme == QuantScheme::BlueLM ? "q4_0" : quant_scheme_name(s.llm_scheme)) +
                            (s.n_layer != full.n_layer ? "-L" + std::to_string(s.n_layer) : "") + ".gguf";
    const std::string mm = dir + "/bluelm-v-3b-mmproj-" +
                           (s.vit_scheme == QuantScheme::BlueLM ? "q8_0" : quant_scheme_name(s.vit_scheme)) +
                           (s.vit_layers != full.vit_layers ? "-L" + std::to_string(s.vit_layers) : "") + ".gguf";
    if (only != "mmproj") {
      std::fprintf(stderr, "gen-bluelm: writing %s\n", llm.c_str());
      const Timer t;
      write_bluelm_llm(llm, s, print_progress);
      std::fprintf(stderr, "gen-bluelm: %s done in %.1f s\n", llm.c_str(), t.elapsed_ms() / 1e3);
    }
    if (only != "llm") {
      std::fprintf(stderr, "gen-bluelm: writing %s\n", mm.c_str());
      const Timer t;
      write_bluelm_mmproj(mm, s, print_progress);
      std::fprintf(stderr, "gen-bluelm: %s done in %.1f s\n", mm.c_str(), t.elapsed_ms() / 1e3);
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace edgevlm
