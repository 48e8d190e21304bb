// `edgevlm quantize IN.gguf OUT.gguf [--scheme bluelm|q8_0|q4_0|f16|f32|q4_k_m|q5_k_m|q6_k|q3_k_m|iq4_xs]
// [--allow-requantize]`: mixed-precision
// quantization of either file of a model pair (src/model/quantize.h has the rules).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/timer.h"
#include "model/quantize.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace edgevlm {
namespace {

int quantize_main(int argc, char** argv) {
  CLI::App app{"Quantize a GGUF model file (the language model or the mmproj vision file).\n"
               "Schemes: bluelm (the paper's: ViT/projector Q8_0; LLM Q4_0 with token embeddings and output\n"
               "Q8_0), q8_0, q4_0, f16, f32. Norms, biases, position embeddings and 1-D tensors stay F32; matrices\n"
               "whose rows are not multiples of 32 stay F32/F16. All metadata is copied.\n"
               "Language models also: q4_k_m, q5_k_m, q6_k, q3_k_m, iq4_xs, with llama-quantize's per-tensor choices\n"
               "(Q6_K output, attn_v/ffn_down bumps, Q4_0/Q5_0/Q5_1/Q8_0/IQ4_NL for rows not a multiple of 256).",
               "edgevlm quantize"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  std::string in, out, scheme = "bluelm";
  bool quiet = false, allow_requantize = false;
  int threads = 0;
  app.add_option("input", in, "Input GGUF (llama/qwen2 or clip)")->required();
  app.add_option("output", out, "Output GGUF")->required();
  app.add_option("-s,--scheme", scheme, "bluelm | q8_0 | q4_0 | f16 | f32 | q4_k_m | q5_k_m | q6_k | q3_k_m | iq4_xs")
      ->capture_default_str();
  app.add_flag("--allow-requantize", allow_requantize,
               "Convert tensors that are already quantized (worse than quantizing the float original)");
  app.add_flag("-q,--quiet", quiet, "No progress output");
  app.add_option("-t,--threads", threads, "Threads converting rows (default: all)")->check(CLI::Range(0, 1024));
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  const QuantScheme s = parse_quant_scheme(scheme);
  const Timer timer;
  double last = -1e9;
  auto progress = [&](const QuantizeProgress& p) {
    if (quiet) return;
    const double t = timer.elapsed_ms();
    if (p.index + 1 != p.count && t - last < 250) return;  // at most 4 lines a second
    last = t;
    std::fprintf(stderr, "[%4zu/%zu] %3.0f%%  %-36s %-5s -> %s\n", p.index + 1, p.count,
                 p.bytes_total ? 100.0 * double(p.bytes_done) / double(p.bytes_total) : 100.0,
                 p.tensor->name.c_str(), type_name(p.tensor->type).c_str(), type_name(p.to).c_str());
  };
  const QuantizeReport r = quantize_gguf(in, out, s, progress, threads, allow_requantize);
  std::string types;
  for (const auto& [t, c] : r.type_counts) types += " " + type_name(t) + "×" + std::to_string(c);
  std::fprintf(stderr, "quantize: %s (%s file, scheme %s): %.1f MB -> %.1f MB in %.1f s; tensors:%s\n",
               out.c_str(), r.kind == ModelFileKind::Llm ? "language model" : "vision", quant_scheme_name(s),
               double(r.in_bytes) / 1e6, double(r.out_bytes) / 1e6, timer.elapsed_ms() / 1e3, types.c_str());
  return 0;
}

}  // namespace

EDGEVLM_COMMAND(quantize, "quantize", "Quantize a GGUF file (either of a pair) to the paper's mixed precision",
                quantize_main);

}  // namespace edgevlm
