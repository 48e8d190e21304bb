// Runs the built `edgevlm` binary as a user would: flags, errors, output format, and that its
// tokens are the ones the library's Generator produces for the same prompt.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "engine/generate.h"
#include "engine/tiny_model_for_tests.h"
#include "model/chat_template.h"
#include "model/kv_cache.h"
#include "model/random_model.h"

namespace edgevlm {
namespace {

namespace fs = std::filesystem;
using namespace testing_tiny;

std::string binary_path() {
  if (const char* b = std::getenv("EDGEVLM_BUILD_DIR")) return std::string(b) + "/edgevlm";
  return (fs::read_symlink("/proc/self/exe").parent_path() / "edgevlm").string();
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct RunResult {
  int rc;
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("edgevlm_cli_test_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    model_ = make_tiny_model().release();
    std::ofstream f(*dir_ / "tiny.gguf", std::ios::binary);
    f.write(reinterpret_cast<const char*>(model_->bytes.data()), static_cast<std::streamsize>(model_->bytes.size()));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete model_;
  }
  void SetUp() override {
    if (!fs::exists(binary_path())) GTEST_SKIP() << "edgevlm binary not built at " << binary_path();
  }

  RunResult run(const std::vector<std::string>& args) {
    std::string cmd = quote(binary_path());
    for (const auto& a : args) cmd += " " + quote(a);
    const fs::path out = *dir_ / "stdout", err = *dir_ / "stderr";
    cmd += " >" + quote(out.string()) + " 2>" + quote(err.string()) + " </dev/null";
    int status = std::system(cmd.c_str());
    RunResult r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }
  std::string model() const { return (*dir_ / "tiny.gguf").string(); }

  static fs::path* dir_;
  static TinyModel* model_;
};

fs::path* CliTest::dir_ = nullptr;
TinyModel* CliTest::model_ = nullptr;

void expect_error(const RunResult& r, const std::string& fragment = "") {
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  if (!fragment.empty()) {
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, TopLevelHelpListsCommands) {
  auto r = run({"--help"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("generate"), std::string::npos);
  EXPECT_NE(r.out.find("gen-model"), std::string::npos);
  expect_error(run({"no-such-command"}), "unknown command");
  EXPECT_EQ(run({}).rc, 1);
}

TEST_F(CliTest, GenerateHelpDocumentsEveryFlag) {
  auto r = run({"generate", "--help"});
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* flag : {"--model", "--prompt", "--prompt-file", "--prompt-tokens", "--n-predict", "--temp",
                           "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n", "--seed",
                           "--chunk", "--threads", "--ctx", "--kv-type", "--chat-template", "--system", "--stop", "--raw",
                           "--ignore-eos", "--special", "--print-token-ids", "--dump-logits", "--verbose"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  // Every command that builds a KV cache takes the same flag, with the engine's default.
  for (const char* cmd : {"generate", "run", "chat"}) {
    auto h = run({cmd, "--help"});
    EXPECT_EQ(h.rc, 0) << cmd << h.err;
    EXPECT_NE(h.out.find(std::string("--kv-type TEXT:q8|f16|f32=") + kv_type_name(kDefaultKvType)), std::string::npos)
        << cmd << h.out;
  }
}

// One parser and one set of sampling flags serve every command (tools/cli_util.h).
TEST_F(CliTest, CommandsShareParsingAndSamplingFlags) {
  for (const char* cmd : {"generate", "run", "chat", "quantize"}) {
    SCOPED_TRACE(cmd);
    auto h = run({cmd, "--help"});
    EXPECT_EQ(h.rc, 0) << h.err;
    EXPECT_NE(h.out.find("--help"), std::string::npos) << h.out;
    auto bad = run({cmd, "--no-such-flag"});
    expect_error(bad);
    EXPECT_NE(bad.err.find(std::string("Run 'edgevlm ") + cmd + " --help' for the options."), std::string::npos)
        << bad.err;
    if (std::string(cmd) == "quantize") continue;
    for (const char* flag : {"--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n", "--seed"})
      EXPECT_NE(h.out.find(flag), std::string::npos) << flag;
    std::vector<std::string> args = {cmd, "-m", model(), "--top-p", "1.5"};
    if (std::string(cmd) != "generate") args.insert(args.end(), {"--mmproj", model()});
    if (std::string(cmd) != "chat") args.insert(args.end(), {"-p", "hi"});
    expect_error(run(args), "--top-p");
  }
}

TEST_F(CliTest, UserErrorsPrintErrorAndExit1) {
  expect_error(run({"generate", "-m", (*dir_ / "missing.gguf").string(), "-p", "hi"}), "missing.gguf");
  expect_error(run({"generate", "-m", model(), "-p", "hi", "--no-such-flag"}));
  expect_error(run({"generate", "-m", model(), "-p", "hi", "--temp", "warm"}));
  expect_error(run({"generate", "-m", model(), "-p", "hi", "-t", "0"}));
  expect_error(run({"generate", "-m", model()}), "prompt");
  expect_error(run({"generate", "-p", "hi"}));
  expect_error(run({"generate", "-m", model(), "-p", "hi", "--chat-template", "vicuna"}), "vicuna");
  for (const char* cmd : {"generate", "run", "chat"}) {
    std::vector<std::string> args = {cmd, "-m", model(), "--kv-type", "q4"};
    if (std::string(cmd) != "generate") args.insert(args.end(), {"--mmproj", model()});
    if (std::string(cmd) != "chat") args.insert(args.end(), {"-p", "hi"});
    expect_error(run(args), "--kv-type: unknown KV cache type 'q4' (q8, f16 or f32)");
  }
  expect_error(run({"generate", "-m", model(), "--prompt-tokens", "1,x"}), "x");
  expect_error(run({"generate", "-m", model(), "--prompt-tokens", "1,100000"}), "100000");
  expect_error(run({"generate", "-m", model(), "--prompt-file", (*dir_ / "nope.txt").string()}), "nope.txt");
  // Prompt longer than the context, and prompt + requested tokens longer than it.
  expect_error(run({"generate", "-m", model(), "--ctx", "8", "--raw", "-p", "the cat sat on the mat the cat sat"}),
               "context");
  // More tokens asked for than the context holds: generation stops when it is full.
  {
    auto r = run({"generate", "-m", model(), "--ctx", "8", "--prompt-tokens", "1,40", "-n", "70", "--ignore-eos", "-v",
                  "--print-token-ids"});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("[stop] context-full"), std::string::npos) << r.err;
    EXPECT_NE(r.out.find("ids: "), std::string::npos) << r.out;
  }
  // A file that is not GGUF.
  {
    std::ofstream f(*dir_ / "junk.gguf");
    f << "not a gguf file at all, just text that is long enough to read a header from";
  }
  expect_error(run({"generate", "-m", (*dir_ / "junk.gguf").string(), "-p", "hi"}), "junk.gguf");
}

// --lora FILE[:SCALE]: repeatable, changes the tokens, scale 0 leaves them; bad values and files are
// command-line or load errors that name them.
TEST_F(CliTest, LoraAdapters) {
  const std::string a = (*dir_ / "lora_a.gguf").string(), b = (*dir_ / "lora_b.gguf").string();
  RandomLoraSpec spec;
  spec.base = model();
  spec.strength = 1.0f;
  write_random_lora(a, spec);
  spec.seed = 2;
  spec.targets = {"attn_v", "ffn_down"};
  write_random_lora(b, spec);
  auto ids = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", "-m", model(), "--prompt-tokens", "1,40,41,9", "-n", "8", "-t", "2",
                                     "--ignore-eos", "--print-token-ids", "--kv-type", "f32", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = run(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.out.substr(r.out.find("ids:"));
  };
  const std::string plain = ids({});
  EXPECT_EQ(ids({"--lora", a + ":0"}), plain);
  const std::string adapted = ids({"--lora", a, "--lora", b + ":0.5"});
  EXPECT_NE(adapted, plain);
  EXPECT_EQ(ids({"--lora", a + ":1", "--lora", b + ":0.5", "--lora-mode", "on-the-fly"}), adapted);
  {
    RunResult r = run({"generate", "-m", model(), "--prompt-tokens", "1,40", "-n", "1", "-v", "--lora", a, "--lora", b});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("[lora] 2 adapter(s): "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("merged at load, 0 adapted on the fly"), std::string::npos) << r.err;  // an F32 model
  }
  expect_error(run({"generate", "-m", model(), "-p", "hi", "--lora", a + ":nan"}), "--lora");
  expect_error(run({"generate", "-m", model(), "-p", "hi", "--lora", a, "--lora-mode", "later"}), "--lora-mode");
  expect_error(run({"generate", "-m", model(), "-p", "hi", "--lora", (*dir_ / "no-lora.gguf").string()}),
               "no-lora.gguf");
  expect_error(run({"generate", "-m", model(), "-p", "hi", "--lora", model()}),
               "general.type is missing, not 'adapter'");
}

TEST_F(CliTest, TokensLogitsAndTimingMatchTheLibrary) {
  const std::vector<int32_t> prompt = {1, 40, 41, 9};
  const int n = 6;
  const fs::path logits_path = *dir_ / "logits.bin";
  // No flag: the engine's default cache type; --kv-type f32: the exact one.
  for (const std::string& flag : {std::string(), std::string("f32")}) {
    SCOPED_TRACE("--kv-type " + flag);
    const KvType type = flag.empty() ? kDefaultKvType : parse_kv_type(flag);
    std::vector<std::string> args = {"generate", "-m", model(), "--prompt-tokens", "1,40,41,9", "-n",
                                     std::to_string(n), "-t", "2", "--ignore-eos", "--print-token-ids",
                                     "--dump-logits", logits_path.string()};
    if (!flag.empty()) args.insert(args.end(), {"--kv-type", flag});
    auto r = run(args);
    ASSERT_EQ(r.rc, 0) << r.err;

    // The library, in process, on the same file.
    ThreadPool pool(2);
    KvCache cache(model_->model->config(), kCtx, type);
    Generator g(*model_->model, *model_->tok, cache, pool);
    GenerateParams p;
    p.n_predict = n;
    p.stop_at_eog = false;
    p.keep_first_logits = true;
    auto ref = g.generate(prompt, p);

    std::string expect_ids = "ids:";
    for (int32_t id : ref.tokens) expect_ids += " " + std::to_string(id);
    EXPECT_NE(r.out.find("\n" + expect_ids + "\n"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.rfind(ref.text, 0), 0u) << "streamed text first: " << r.out;

    // The timing line goes to stderr; stdout carries only the answer (and the ids asked for).
    std::regex timing(
        R"((^|\n)\[timing\] load [0-9.]+ ms \| prefill 4 tok, [0-9.]+ tok/s \| decode 6 tok, [0-9.]+ tok/s\n$)");
    EXPECT_TRUE(std::regex_search(r.err, timing)) << r.err;
    EXPECT_EQ(r.out.find("[timing]"), std::string::npos) << r.out;

    std::string raw = slurp(logits_path);
    ASSERT_EQ(raw.size(), ref.first_logits.size() * sizeof(float));
    std::vector<float> dumped(ref.first_logits.size());
    std::memcpy(dumped.data(), raw.data(), raw.size());
    for (size_t i = 0; i < dumped.size(); ++i) EXPECT_FLOAT_EQ(dumped[i], ref.first_logits[i]) << i;
  }
}

TEST_F(CliTest, KvTypeQ8SameGreedyTokensAsF32) {
  auto greedy_ids = [&](const char* type) {
    auto r = run({"generate", "-m", model(), "--prompt-tokens", "1,40,41,9,12,33", "-n", "24", "--ignore-eos",
                  "--print-token-ids", "--kv-type", type, "-v"});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find(std::string("KV cache ") + type), std::string::npos) << r.err;
    auto pos = r.out.find("ids:");
    return pos == std::string::npos ? std::string() : r.out.substr(pos, r.out.find('\n', pos) - pos);
  };
  const std::string f32 = greedy_ids("f32");
  ASSERT_GT(f32.size(), std::string("ids:").size() + 24);  // 24 ids were printed
  EXPECT_EQ(greedy_ids("q8"), f32);
  EXPECT_EQ(greedy_ids("f16"), f32);
}

TEST_F(CliTest, ChatTemplateFromModelRawAndOverride) {
  // The tiny model carries a ChatML template; with it the prompt is the rendered conversation
  // with one BOS in front, with --raw just BOS + the text.
  auto count = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"generate", "-m", model(), "-p", "hello world", "-n", "1", "-v", "--ignore-eos",
                                     "--ctx", "512"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    std::smatch m;
    std::regex re(R"(\[prompt\] (\d+) tokens, chat template (\w+))");
    EXPECT_TRUE(std::regex_search(r.err, m, re)) << r.err;
    return std::make_pair(m.size() > 2 ? std::stoi(m[1]) : -1, m.size() > 2 ? m[2].str() : "");
  };
  const Tokenizer& tok = *model_->tok;
  auto chatml_ids = tok.encode(apply_chat_template(ChatTemplate::ChatML, {{"user", "hello world"}}), true, true);
  auto raw_ids = tok.encode("hello world", true, true);

  auto a = count({});
  EXPECT_EQ(a.second, "chatml");
  EXPECT_EQ(a.first, static_cast<int>(chatml_ids.size()));
  auto b = count({"--raw"});
  EXPECT_EQ(b.second, "none");
  EXPECT_EQ(b.first, static_cast<int>(raw_ids.size()));
  auto c = count({"--chat-template", "none"});
  EXPECT_EQ(c.second, "none");
  auto d = count({"--chat-template", "llama3"});
  EXPECT_EQ(d.second, "llama3");
  auto e = count({"--system", "be brief"});
  EXPECT_GT(e.first, a.first);
}

TEST_F(CliTest, SeedMakesSamplingReproducible) {
  auto ids = [&](const std::string& seed) {
    auto r = run({"generate", "-m", model(), "--prompt-tokens", "1,40", "-n", "12", "--temp", "1.5", "--top-k", "0",
                  "--top-p", "1", "--min-p", "0", "--seed", seed, "--ignore-eos", "--print-token-ids"});
    EXPECT_EQ(r.rc, 0) << r.err;
    auto pos = r.out.find("ids:");
    return pos == std::string::npos ? std::string() : r.out.substr(pos, r.out.find('\n', pos) - pos);
  };
  auto a = ids("7");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, ids("7"));
  EXPECT_NE(a, ids("8"));
}

std::string vision_fixture(const std::string& name) {
  return std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/" + name;
}

TEST_F(CliTest, VersionJsonStopAndPromptFile) {
  auto v = run({"--version"});
  EXPECT_EQ(v.rc, 0);
  EXPECT_EQ(v.out, std::string("edgevlm ") + EDGEVLM_VERSION + "\n");
  auto cv = run({"run", "--version"});
  EXPECT_EQ(cv.rc, 0);
  EXPECT_NE(cv.out.find(EDGEVLM_VERSION), std::string::npos) << cv.out;

  // --json: one object on stdout, the same tokens as the streamed run.
  const std::vector<std::string> base = {"run", "-m", vision_fixture("tiny.gguf"), "--mmproj",
                                         vision_fixture("tiny-mmproj.gguf"), "--image", vision_fixture("square.png"),
                                         "-p", "What is it?", "-n", "8", "--temp", "0", "-t", "2"};
  auto plain = base;
  plain.push_back("--print-token-ids");
  auto r = run(plain);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("[timing]"), std::string::npos) << r.err;
  auto js = base;
  js.push_back("--json");
  auto j = run(js);
  ASSERT_EQ(j.rc, 0) << j.err;
  ASSERT_EQ(std::count(j.out.begin(), j.out.end(), '\n'), 1) << j.out;
  EXPECT_EQ(j.out.rfind("{\"text\":", 0), 0u) << j.out;
  const size_t ids = r.out.find("ids:");
  ASSERT_NE(ids, std::string::npos);
  std::string want = "[";
  std::istringstream in(r.out.substr(ids + 4));
  for (int id; in >> id;) want += (want.size() > 1 ? "," : "") + std::to_string(id);
  want += "]";
  EXPECT_NE(j.out.find("\"tokens\":" + want), std::string::npos) << j.out << " want " << want;
  EXPECT_NE(j.out.find("\"usage\":{\"prompt_tokens\":"), std::string::npos) << j.out;

  // --prompt-file gives the same answer as -p; -q leaves stderr empty.
  const fs::path q = *dir_ / "question.txt";
  std::ofstream(q) << "What is it?";
  auto f = base;
  f[7] = "--prompt-file";
  f[8] = q.string();
  f.insert(f.end(), {"--print-token-ids", "-q"});
  auto rf = run(f);
  ASSERT_EQ(rf.rc, 0) << rf.err;
  EXPECT_EQ(rf.out, r.out);
  EXPECT_EQ(rf.err, "");

  // --stop ends the answer before the stop string.
  auto text = r.out.substr(0, r.out.find('\n'));
  if (text.size() >= 3) {
    auto st = base;
    st.insert(st.end(), {"--stop", text.substr(1, 2)});
    auto rs = run(st);
    ASSERT_EQ(rs.rc, 0) << rs.err;
    EXPECT_EQ(rs.out, text.substr(0, 1) + "\n") << rs.out;
  }
}

TEST_F(CliTest, ChatRefusesABadImageAtOnceAndKeepsTheOthers) {
  const fs::path script = *dir_ / "chat.txt";
  std::ofstream(script) << "/image " << vision_fixture("square.png") << "\n/image " << (*dir_ / "missing.png").string()
                        << "\nWhat is it?\n/quit\n";
  std::string cmd = quote(binary_path()) + " chat -m " + quote(vision_fixture("tiny.gguf")) + " --mmproj " +
                    quote(vision_fixture("tiny-mmproj.gguf")) + " -n 4 --temp 0 --timing <" + quote(script.string()) +
                    " >" + quote((*dir_ / "chat.out").string()) + " 2>" + quote((*dir_ / "chat.err").string());
  const int status = std::system(cmd.c_str());
  const std::string out = slurp(*dir_ / "chat.out"), err = slurp(*dir_ / "chat.err");
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;  // an error was reported
  const size_t refused = err.find("error: cannot open image");
  ASSERT_NE(refused, std::string::npos) << err;
  EXPECT_NE(err.find("missing.png"), std::string::npos) << err;
  // Reported before the question was answered, which still carried the good image.
  const size_t timing = err.find("[timing] images 1 tiles");
  ASSERT_NE(timing, std::string::npos) << err;
  EXPECT_LT(refused, timing);
  EXPECT_FALSE(out.empty());
}

// Ctrl-C during an answer stops the answer, not the program: the next question is answered.
TEST_F(CliTest, ChatInterruptStopsTheAnswerNotTheProgram) {
  const std::string vocab = std::string(EDGEVLM_SOURCE_DIR) + "/../shared/testdata/tokenizer/ggml-vocab-gpt-2.gguf";
  if (!fs::exists(vocab)) GTEST_SKIP() << "no " << vocab;
  // A 50257-token vocabulary: end-of-generation is rarely sampled, so the answer runs long.
  const fs::path m = *dir_ / "long.gguf";
  ASSERT_EQ(run({"gen-model", "--out", m.string(), "--arch", "llama", "--embd", "256", "--layers", "2", "--heads", "4",
                 "--kv-heads", "2", "--ff", "512", "--ctx", "4096", "--type", "q8_0", "--seed", "3", "--vocab-from", vocab})
                .rc,
            0);
  int in[2], out[2];
  ASSERT_EQ(pipe(in), 0);
  ASSERT_EQ(pipe(out), 0);
  const fs::path err_path = *dir_ / "interrupt.err";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    FILE* e = std::fopen(err_path.c_str(), "w");
    if (e) dup2(fileno(e), 2);
    close(in[1]);
    close(out[0]);
    const std::string bin = binary_path(), model = m.string();
    execl(bin.c_str(), bin.c_str(), "chat", "-m", model.c_str(), "-n", "-1", "--temp", "1", "--seed", "1", "-t", "1",
          "--chat-template", "none", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  auto write_line = [&](const std::string& l) { ASSERT_EQ(write(in[1], l.data(), l.size()), ssize_t(l.size())); };
  // Reads what the chat printed within ms milliseconds.
  auto read_for = [&](int ms) {
    std::string got;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      const int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
      if (left <= 0) break;
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, left) <= 0) break;
      char buf[4096];
      const ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, size_t(n));
    }
    return got;
  };
  write_line("Tell a long story.\n");
  const std::string first = read_for(1500);
  EXPECT_FALSE(first.empty());
  kill(pid, SIGINT);
  read_for(500);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "the chat ended on Ctrl-C";
  write_line("And another.\n");
  const std::string second = read_for(1000);
  EXPECT_FALSE(second.empty()) << "no answer after the interrupt";
  kill(pid, SIGINT);
  read_for(300);
  write_line("/quit\n");
  close(in[1]);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  close(out[0]);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  const std::string err = slurp(err_path);
  EXPECT_NE(err.find("[stopped]"), std::string::npos) << err;
}

}  // namespace
}  // namespace edgevlm
