// `edgevlm chat`: an interactive conversation over stdin (a terminal or a script). `/image PATH`
// checks the image at once and starts encoding it in the background, so it is ready (or nearly) by
// the time the question is typed; a plain line is a question, answered with streaming; the KV
// cache keeps the conversation; `/reset` starts a new one; `/quit` (or end of input) leaves.
// On a terminal, lines are edited with libedit (history included); Ctrl-C stops an answer, and
// at the prompt, leaves.
#include <CLI/CLI.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#ifdef EDGEVLM_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#include "core/error.h"
#include "engine/engine.h"
#include "engine/session.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace edgevlm {
namespace {

std::atomic<int> g_interrupts{0};
void on_sigint(int) { g_interrupts.fetch_add(1); }

std::string strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// One line of input, edited on a terminal; false at end of input.
bool read_line(bool tty, std::string& line) {
#ifdef EDGEVLM_HAVE_LIBEDIT
  if (tty) {
    char* s = readline("> ");
    if (!s) return false;
    line = s;
    std::free(s);
    if (!strip(line).empty()) add_history(line.c_str());
    return true;
  }
#endif
  if (tty) {
    std::fputs("> ", stderr);
    std::fflush(stderr);
  }
  return bool(std::getline(std::cin, line));
}

// While an answer streams, turns Ctrl-C into Session::cancel() (which is not async-signal-safe,
// so the handler only counts and this thread calls it).
class CancelOnInterrupt {
 public:
  explicit CancelOnInterrupt(Session& s) : seen_(g_interrupts.load()) {
    thread_ = std::thread([this, &s] {
      while (!done_.load()) {
        if (g_interrupts.load() != seen_) {
          seen_ = g_interrupts.load();
          s.cancel();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  ~CancelOnInterrupt() {
    done_.store(true);
    thread_.join();
    g_interrupts.store(seen_);  // an interrupt that stopped this answer does not end the chat
  }

 private:
  int seen_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int chat_main(int argc, char** argv) {
  CLI::App app{"Chat about images with a GGUF vision-language model pair. Reads lines from stdin:\n"
               "  /image PATH   attach an image (checked at once; encoding starts while you type)\n"
               "  /reset        start a new conversation\n"
               "  /quit         leave (so does end of input)\n"
               "  anything else is a question about the images attached so far.\n"
               "Ctrl-C stops an answer.",
               "edgevlm chat"};
  EngineFlags ef;
  AnswerFlags af(256);
  std::string system_prompt;
  bool timing = false;
  add_engine_options(app, ef, VisionFlags::Optional);
  add_answer_options(app, af);
  app.add_option("--system", system_prompt, "System message");
  app.add_flag("--timing", timing, "After each answer, print a [timing] line to stderr");
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;

  auto engine = Engine::load(finish_engine_options(ef));
  SessionOptions so;
  so.system_prompt = system_prompt;
  Session s(engine, so);
  const GenerateParams gp = af.params();
  const bool tty = isatty(STDIN_FILENO);
  if (tty) std::fprintf(stderr, "edgevlm chat: /image PATH, /reset, /quit; anything else is a question. Ctrl-C stops an answer.\n");

  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: Ctrl-C at the prompt ends the read

  std::string line;
  int status = 0;
  for (;;) {
    const int before = g_interrupts.load();
    if (!read_line(tty, line) || g_interrupts.load() != before) break;
    const std::string cmd = strip(line);
    if (cmd.empty()) continue;
    if (cmd == "/quit" || cmd == "/exit") break;
    if (cmd == "/reset") {
      s.reset();
      std::fprintf(stderr, "[reset]\n");
      continue;
    }
    if (cmd.rfind("/image", 0) == 0 && (cmd.size() == 6 || cmd[6] == ' ' || cmd[6] == '\t')) {
      const std::string path = strip(cmd.substr(6));
      try {
        EV_CHECK(!path.empty(), "/image needs a path");
        s.attach_image(path);
        std::fprintf(stderr, "[image] %s: encoding (%d image%s attached)\n", path.c_str(), s.pending_images(),
                     s.pending_images() == 1 ? "" : "s");
      } catch (const Error& e) {
        // Refused at once; the images attached before stay attached.
        std::fprintf(stderr, "error: %s\n", e.what());
        status = 1;
      }
      continue;
    }
    if (cmd[0] == '/' && cmd.find(' ') == std::string::npos && cmd.size() > 1 && cmd.find('/', 1) == std::string::npos) {
      std::fprintf(stderr, "error: unknown command %s (/image PATH, /reset, /quit)\n", cmd.c_str());
      status = 1;
      continue;
    }
    try {
      SessionAnswer a;
      {
        CancelOnInterrupt guard(s);
        a = s.ask(line, gp, print_piece);
      }
      for (const std::string& e : a.image_errors) std::fprintf(stderr, "error: %s (left out of this question)\n", e.c_str());
      if (a.image_errors.size()) status = 1;
      if (a.result.text.empty() || a.result.text.back() != '\n') std::fputc('\n', stdout);
      std::fflush(stdout);
      if (a.result.stop_reason == StopReason::Cancelled)
        std::fprintf(stderr, a.result.cancelled_in_prefill ? "[stopped before answering: the question was dropped]\n"
                                                          : "[stopped]\n");
      if (timing) print_timing(a.result, 0, a.n_images, a.n_tiles, a.vit_ms, a.wait_ms);
    } catch (const Error& e) {
      // A full context ends this turn, not the conversation.
      std::fprintf(stderr, "error: %s\n", e.what());
      status = 1;
    }
  }
  return status;
}

}  // namespace

EDGEVLM_COMMAND(chat, "chat", "Interactive chat about images; encodes an image as soon as it is attached",
                chat_main);

}  // namespace edgevlm
