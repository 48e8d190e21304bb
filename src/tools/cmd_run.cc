// `edgevlm run`: answers a question about one or more images with a GGUF pair (language model +
// mmproj), streaming the answer to stdout, then one timing line.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/generate.h"
#include "engine/vlm.h"
#include "formats/gguf.h"
#include "model/chat_template.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "vision/image.h"
#include "vision/mmproj.h"

namespace edgevlm {
namespace {

constexpr int kDefaultMaxCtx = 4096;

int run_main(int argc, char** argv) {
  CLI::App app{"Answer a question about images with a GGUF vision-language model pair.\n"
               "Prints the answer, then one timing line: tiles, ViT ms, prefill ms, decode tokens/s.",
               "edgevlm run"};
  app.set_help_flag("-h,--help", "Print this help and exit");

  std::string model_path, mmproj_path, prompt, tiling, chat_template = "auto", system_prompt;
  std::vector<std::string> images;
  int max_tiles = 0, n_predict = 128, threads = ThreadPool::hardware_threads(), chunk = 128, ctx = 0, vit_batch = 4;
  double alpha = -1;
  SamplerParams sampling;
  bool print_ids = false, verbose = false, low_memory = false, no_pipeline = false;
  KvType kv_type = kDefaultKvType;

  app.add_option("-m,--model", model_path, "Language model GGUF file")->required();
  app.add_option("--mmproj", mmproj_path, "Vision model GGUF file (clip / mmproj)")->required();
  app.add_option("--image", images, "Image file (JPEG, PNG, BMP, GIF, PNM); repeatable, in prompt order");
  app.add_option("-p,--prompt", prompt,
                 "The question. Place images with <image> (one per --image); unplaced images go first")
      ->required();
  app.add_option("--tiling", tiling, "relaxed | llava-next | internvl | single (default: the model's)");
  app.add_option("--max-tiles", max_tiles, "Most grid tiles per image (default: the model's)")
      ->check(CLI::Range(1, 64));
  app.add_option("--alpha", alpha, "α of relaxed aspect-ratio matching (default: the model's)")
      ->check(CLI::Range(0.0, 10.0));
  app.add_option("-n,--n-predict", n_predict, "Tokens to generate at most")->capture_default_str();
  add_sampling_options(app, sampling);
  app.add_option("-t,--threads", threads, "Threads (default: hardware concurrency)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--chunk", chunk, "Prefill chunk size in tokens")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--vit-batch", vit_batch, "Tiles per ViT batch")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_flag("--no-pipeline", no_pipeline, "Prepare each ViT batch only after the previous one (no overlap)");
  app.add_option("--ctx", ctx, "KV cache size in tokens (default: the model's context length, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  add_kv_type_option(app, kv_type);
  app.add_option("--chat-template", chat_template, "chatml | llama3 | none | auto")->capture_default_str();
  app.add_option("--system", system_prompt, "System message");
  app.add_flag("--print-token-ids", print_ids, "After the answer, print the generated ids as 'ids: 4 5 6'");
  app.add_flag("--low-memory", low_memory,
               "Unmap the ViT weights once the images are encoded (peak RSS near max(ViT, LLM), not their sum)");
  app.add_flag("-v,--verbose", verbose, "Print model, tiling and prompt details to stderr");

  if (auto rc = parse_command_line(app, argc, argv)) return *rc;

  Timer load_timer;
  ThreadPool pool(threads);
  auto llm_file = GGUFFile::open(model_path);
  // Weights repacked now, except with --low-memory: then on first use, once the ViT is unmapped.
  auto model = LlmModel::load(*llm_file, low_memory ? nullptr : &pool);
  auto tokenizer = Tokenizer::from_gguf(*llm_file);
  auto mm_file = GGUFFile::open(mmproj_path);
  auto mmproj = MmprojModel::load(*mm_file);
  const LlmConfig& cfg = model->config();
  const VisionConfig vc = mmproj->config();  // a copy: --low-memory frees the model
  EV_CHECK(vc.projection_dim == cfg.n_embd, "%s projects to width %d but %s has width %d: not a matching pair",
           mmproj_path.c_str(), vc.projection_dim, model_path.c_str(), cfg.n_embd);
  TilingOverrides ov;
  ov.strategy = tiling;
  ov.max_tiles = max_tiles;
  ov.alpha = alpha;
  const TilingConfig tcfg = tiling_config_for(vc, ov);
  const double load_ms = load_timer.elapsed_ms();

  // Images: decode, tile, encode. (The paper starts this before the question is known; the CLI
  // has both at once, so it just runs the two steps in order.)
  std::vector<ImageEmbeddings> embs;
  double image_load_ms = 0, vit_ms = 0;
  int n_tiles = 0;
  std::string grids;
  for (const std::string& path : images) {
    Timer t;
    Image img = load_image(path);
    image_load_ms += t.elapsed_ms();
    embs.push_back(encode_image(*mmproj, img, tcfg, pool, VitOptions(vit_batch, !no_pipeline)));
    const ImageEmbeddings& e = embs.back();
    image_load_ms += e.preprocess_ms;
    vit_ms += e.vit_ms + e.projector_ms;
    n_tiles += e.n_tiles;
    grids += (grids.empty() ? "" : ",") + grid_str(e.grid) + (e.thumbnail_index >= 0 ? "+thumb" : "");
    if (verbose)
      std::fprintf(stderr, "[image] %s: %dx%d → grid %s (%s), %d tiles, %d positions, ViT %.1f ms, projector %.1f ms\n",
                   path.c_str(), img.width, img.height, grid_str(e.grid).c_str(), tiling_strategy_name(tcfg.strategy),
                   e.n_tiles, e.positions(), e.vit_ms, e.projector_ms);
  }

  if (low_memory) {
    // Encoding is done: unmap the mmproj before the LLM's weights are paged in by the prefill.
    mmproj.reset();
    mm_file.reset();
  }

  bool unknown = false;
  const ChatTemplate tmpl = chat_template_for(chat_template, *llm_file, &unknown);
  if (unknown)
    std::fprintf(stderr, "warning: %s: unrecognised tokenizer.chat_template, using the prompt as is "
                 "(choose one with --chat-template)\n", model_path.c_str());
  std::vector<ChatMessage> msgs;
  if (!system_prompt.empty()) msgs.push_back({"system", system_prompt});
  msgs.push_back({"user", add_image_placeholders(prompt, int(images.size()))});
  const std::string text = apply_chat_template(tmpl, msgs, true);
  std::vector<const ImageEmbeddings*> ptrs;
  for (const auto& e : embs) ptrs.push_back(&e);
  const ImageMarkers markers = image_markers(vc, *tokenizer);
  VlmPrompt vp = assemble_prompt(*model, *tokenizer, markers, text, ptrs, tokenizer->add_bos_default());

  const int n_ctx =
      ctx > 0 ? ctx : std::min(cfg.n_ctx_train > 0 ? cfg.n_ctx_train : kDefaultMaxCtx, kDefaultMaxCtx);
  EV_CHECK(vp.n_positions < n_ctx,
           "the prompt takes %d positions (%d of them image) but the context holds %d; use fewer tiles "
           "(--max-tiles) or a larger --ctx",
           vp.n_positions, vp.n_image_positions, n_ctx);
  KvCache cache(cfg, n_ctx, kv_type);
  if (verbose)
    std::fprintf(stderr, "[prompt] %d positions (%d image), chat template %s, %d threads, ctx %d, KV cache %s\n",
                 vp.n_positions, vp.n_image_positions, chat_template_name(tmpl), pool.size(), n_ctx,
                 kv_type_name(kv_type));

  GenerateParams gp;
  gp.n_predict = std::min(n_predict, n_ctx - vp.n_positions);
  gp.chunk_size = chunk;
  gp.sampler = sampling;
  gp.stop_strings = chat_template_stop_strings(tmpl);

  Generator gen(*model, *tokenizer, cache, pool);
  GenerateResult r = gen.generate_from_embeddings(
      vp.embeddings.data(), vp.n_positions, gp,
      [](std::string_view s) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
        return true;
      },
      vp.text_tokens());
  if (r.text.empty() || r.text.back() != '\n') std::fputc('\n', stdout);
  if (print_ids) {
    std::fputs("ids:", stdout);
    for (int32_t id : r.tokens) std::fprintf(stdout, " %d", id);
    std::fputc('\n', stdout);
  }
  if (verbose) std::fprintf(stderr, "[stop] %s\n", stop_reason_name(r.stop_reason));
  std::fprintf(stdout,
               "[timing] tiles %d (%s) | load %.1f ms | image %.1f ms | ViT %.1f ms | prefill %d tok %.1f ms | "
               "decode %d tok %.1f tok/s\n",
               n_tiles, grids.empty() ? "no image" : grids.c_str(), load_ms, image_load_ms, vit_ms, r.n_prompt,
               r.prefill_ms, r.n_decode, r.decode_tok_s());
  std::fflush(stdout);
  return 0;
}

}  // namespace

EDGEVLM_COMMAND(run, "run", "Answer a question about images (model + mmproj GGUF pair)", run_main);

}  // namespace edgevlm
