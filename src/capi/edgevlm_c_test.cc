// The C API through its header only, misuse included: NULL and freed handles, a session that
// outlives its model handle, cancel from another thread, an image attached twice, concurrent
// sessions on one model. Run under ASan/UBSan by `make test` (test-asan).
#include "edgevlm.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string fixture(const std::string& name) {
  return std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/" + name;
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

edgevlm_model* load_fixture(int threads = 2) {
  edgevlm_model_params* p = edgevlm_model_params_new();
  EXPECT_EQ(edgevlm_model_params_set_string(p, "model", fixture("tiny.gguf").c_str()), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "mmproj", fixture("tiny-mmproj.gguf").c_str()), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_model_params_set_int(p, "threads", threads), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_model_params_set_int(p, "n_ctx", 1024), EDGEVLM_OK);
  edgevlm_model* m = nullptr;
  EXPECT_EQ(edgevlm_model_load(p, &m), EDGEVLM_OK) << edgevlm_last_error();
  edgevlm_model_params_free(p);
  return m;
}

edgevlm_gen_params* greedy(int n) {
  edgevlm_gen_params* g = edgevlm_gen_params_new();
  EXPECT_EQ(edgevlm_gen_params_set_double(g, "temperature", 0), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_gen_params_set_int(g, "n_predict", n), EDGEVLM_OK);
  return g;
}

int collect(const char* text, size_t len, void* user) {
  EXPECT_EQ(std::strlen(text), len);
  static_cast<std::string*>(user)->append(text, len);
  return 0;
}

TEST(CApi, VersionAndStatusNames) {
  EXPECT_STREQ(edgevlm_version(), EDGEVLM_VERSION);
  EXPECT_STREQ(edgevlm_status_name(EDGEVLM_OK), "ok");
  EXPECT_STREQ(edgevlm_status_name(EDGEVLM_ERR_INVALID_HANDLE), "invalid handle");
}

TEST(CApi, AskStreamsTheAnswerOfAnImageFromMemory) {
  edgevlm_model* m = load_fixture();
  ASSERT_NE(m, nullptr);
  int64_t has_vision = 0;
  EXPECT_EQ(edgevlm_model_get_int(m, "has_vision", &has_vision), EDGEVLM_OK);
  EXPECT_EQ(has_vision, 1);
  edgevlm_session* s = nullptr;
  ASSERT_EQ(edgevlm_session_new(m, &s), EDGEVLM_OK);
  const std::vector<uint8_t> png = file_bytes(fixture("square.png"));
  ASSERT_EQ(edgevlm_session_attach_image_bytes(s, png.data(), png.size()), EDGEVLM_OK);
  edgevlm_gen_params* g = greedy(8);
  std::string streamed;
  ASSERT_EQ(edgevlm_session_ask(s, "What is it?", g, collect, &streamed), EDGEVLM_OK) << edgevlm_session_error(s);
  EXPECT_EQ(streamed, edgevlm_session_answer(s));
  double images = 0, tokens = 0;
  EXPECT_EQ(edgevlm_session_get_double(s, "images", &images), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_session_get_double(s, "completion_tokens", &tokens), EDGEVLM_OK);
  EXPECT_EQ(images, 1);
  EXPECT_GT(tokens, 0);

  // The same answer with the image as a file and as raw pixels (a fresh conversation each time).
  const std::string first = streamed;
  ASSERT_EQ(edgevlm_session_reset(s), EDGEVLM_OK);
  ASSERT_EQ(edgevlm_session_attach_image_file(s, fixture("square.png").c_str()), EDGEVLM_OK);
  ASSERT_EQ(edgevlm_session_ask(s, "What is it?", g, nullptr, nullptr), EDGEVLM_OK);
  EXPECT_EQ(first, edgevlm_session_answer(s));
  edgevlm_gen_params_free(g);
  edgevlm_session_free(s);
  edgevlm_model_free(m);
}

TEST(CApi, NullFreedAndForeignHandlesAreErrors) {
  EXPECT_EQ(edgevlm_model_load(nullptr, nullptr), EDGEVLM_ERR_INVALID_ARGUMENT);
  edgevlm_session* s = nullptr;
  EXPECT_EQ(edgevlm_session_new(nullptr, &s), EDGEVLM_ERR_INVALID_HANDLE);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(edgevlm_session_ask(nullptr, "hi", nullptr, nullptr, nullptr), EDGEVLM_ERR_INVALID_HANDLE);
  EXPECT_EQ(edgevlm_session_cancel(nullptr), EDGEVLM_ERR_INVALID_HANDLE);
  EXPECT_EQ(edgevlm_session_reset(nullptr), EDGEVLM_ERR_INVALID_HANDLE);
  EXPECT_NE(std::string(edgevlm_last_error()).find("invalid session handle"), std::string::npos);
  int not_a_handle = 0;
  EXPECT_EQ(edgevlm_session_attach_image_file(reinterpret_cast<edgevlm_session*>(&not_a_handle), "x.png"),
            EDGEVLM_ERR_INVALID_HANDLE);
  edgevlm_session_free(nullptr);
  edgevlm_model_free(nullptr);
  edgevlm_model_params_free(nullptr);
  edgevlm_gen_params_free(nullptr);

  edgevlm_model* m = load_fixture();
  ASSERT_EQ(edgevlm_session_new(m, &s), EDGEVLM_OK);
  edgevlm_session_free(s);
  EXPECT_EQ(edgevlm_session_ask(s, "hi", nullptr, nullptr, nullptr), EDGEVLM_ERR_INVALID_HANDLE);  // freed
  edgevlm_session_free(s);  // twice: ignored
  edgevlm_model_free(m);
  int64_t v = 0;
  EXPECT_EQ(edgevlm_model_get_int(m, "n_ctx", &v), EDGEVLM_ERR_INVALID_HANDLE);
  EXPECT_EQ(edgevlm_session_new(m, &s), EDGEVLM_ERR_INVALID_HANDLE);
}

TEST(CApi, BadArgumentsAndFilesSayWhat) {
  edgevlm_model_params* p = edgevlm_model_params_new();
  EXPECT_EQ(edgevlm_model_params_set_string(p, "colour", "blue"), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(edgevlm_last_error()).find("colour"), std::string::npos);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "kv_type", "q3"), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "vit_compat", "hf"), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "vit_compat", "mtmd"), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "resample", "mtmd"), EDGEVLM_OK);  // checked at load, by family
  EXPECT_EQ(edgevlm_model_params_set_int(p, "threads", -4), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "model", "/nonexistent/model.gguf"), EDGEVLM_OK);
  edgevlm_model* m = reinterpret_cast<edgevlm_model*>(1);
  EXPECT_EQ(edgevlm_model_load(p, &m), EDGEVLM_ERR_MODEL);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(edgevlm_last_error()).find("/nonexistent/model.gguf"), std::string::npos);
  edgevlm_model_params_free(p);

  // LoRA adapters: a bad scale or mode at once, a missing adapter file at load, named.
  p = edgevlm_model_params_new();
  EXPECT_EQ(edgevlm_model_params_set_string(p, "lora", "a.gguf:inf"), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "lora_mode", "sometimes"), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "lora_mode", "on-the-fly"), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "model", fixture("tiny.gguf").c_str()), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_model_params_set_string(p, "lora", "/nonexistent/adapter.gguf:0.5"), EDGEVLM_OK);
  m = nullptr;
  EXPECT_EQ(edgevlm_model_load(p, &m), EDGEVLM_ERR_MODEL);
  EXPECT_NE(std::string(edgevlm_last_error()).find("/nonexistent/adapter.gguf"), std::string::npos)
      << edgevlm_last_error();
  edgevlm_model_params_free(p);

  edgevlm_gen_params* g = edgevlm_gen_params_new();
  EXPECT_EQ(edgevlm_gen_params_set_double(g, "top_p", 2.0), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgevlm_gen_params_set_int(g, "bogus", 1), EDGEVLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgevlm_gen_params_add_stop(g, ""), EDGEVLM_ERR_INVALID_ARGUMENT);
  edgevlm_gen_params_free(g);
}

TEST(CApi, BadImageIsRefusedAtOnceAndAttachingTwiceGivesTwoImages) {
  edgevlm_model* m = load_fixture();
  edgevlm_session* s = nullptr;
  ASSERT_EQ(edgevlm_session_new(m, &s), EDGEVLM_OK);
  const char junk[] = "not an image at all";
  EXPECT_EQ(edgevlm_session_attach_image_bytes(s, junk, sizeof junk), EDGEVLM_ERR_IMAGE);
  EXPECT_NE(std::string(edgevlm_session_error(s)).find("not a readable"), std::string::npos) << edgevlm_session_error(s);
  EXPECT_EQ(edgevlm_session_attach_image_file(s, "/nonexistent.png"), EDGEVLM_ERR_IMAGE);
  EXPECT_EQ(edgevlm_session_attach_image_rgb(s, reinterpret_cast<const uint8_t*>(junk), 0, 5, 0), EDGEVLM_ERR_IMAGE);
  const std::vector<uint8_t> png = file_bytes(fixture("square.png"));
  ASSERT_EQ(edgevlm_session_attach_image_bytes(s, png.data(), png.size()), EDGEVLM_OK);
  ASSERT_EQ(edgevlm_session_attach_image_bytes(s, png.data(), png.size()), EDGEVLM_OK);
  std::vector<uint8_t> rgb(16 * 8 * 3, 200);
  ASSERT_EQ(edgevlm_session_attach_image_rgb(s, rgb.data(), 16, 8, 0), EDGEVLM_OK);
  edgevlm_gen_params* g = greedy(4);
  ASSERT_EQ(edgevlm_session_ask(s, "Compare them.", g, nullptr, nullptr), EDGEVLM_OK) << edgevlm_session_error(s);
  double images = 0;
  edgevlm_session_get_double(s, "images", &images);
  EXPECT_EQ(images, 3);
  edgevlm_gen_params_free(g);
  edgevlm_session_free(s);
  edgevlm_model_free(m);
}

TEST(CApi, SessionOutlivesItsModelHandle) {
  edgevlm_model* m = load_fixture();
  edgevlm_session* s = nullptr;
  ASSERT_EQ(edgevlm_session_new(m, &s), EDGEVLM_OK);
  edgevlm_model_free(m);  // documented: the weights stay while the session lives
  ASSERT_EQ(edgevlm_session_attach_image_file(s, fixture("tall.png").c_str()), EDGEVLM_OK);
  edgevlm_gen_params* g = greedy(4);
  EXPECT_EQ(edgevlm_session_ask(s, "What is it?", g, nullptr, nullptr), EDGEVLM_OK) << edgevlm_session_error(s);
  edgevlm_gen_params_free(g);
  edgevlm_session_free(s);
}

struct StopAfter {
  int pieces = 0, limit = 0;
};
int stop_after(const char*, size_t, void* user) {
  auto* st = static_cast<StopAfter*>(user);
  return ++st->pieces >= st->limit ? 1 : 0;
}

TEST(CApi, CallbackStopsAndCancelFromAnotherThread) {
  edgevlm_model* m = load_fixture();
  edgevlm_session* s = nullptr;
  ASSERT_EQ(edgevlm_session_new(m, &s), EDGEVLM_OK);
  edgevlm_gen_params* g = greedy(300);
  StopAfter st;
  st.limit = 2;
  ASSERT_EQ(edgevlm_session_ask(s, "Tell a long story.", g, stop_after, &st), EDGEVLM_OK);
  double reason = -1;
  edgevlm_session_get_double(s, "stop_reason", &reason);
  if (st.pieces >= 2) {
    EXPECT_EQ(reason, 4);  // stopped by the callback (unless the model ended first)
  }

  std::atomic<bool> done{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    while (!done.load()) {
      EXPECT_EQ(edgevlm_session_cancel(s), EDGEVLM_OK);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  edgevlm_gen_params_set_int(g, "n_predict", -1);
  const edgevlm_status status = edgevlm_session_ask(s, "Go on, at length.", g, nullptr, nullptr);
  done.store(true);
  canceller.join();
  EXPECT_TRUE(status == EDGEVLM_OK || status == EDGEVLM_ERR_CANCELLED) << edgevlm_status_name(status);
  double n_past = 0, n_ctx = 0;
  edgevlm_session_get_double(s, "n_past", &n_past);
  edgevlm_session_get_double(s, "n_ctx", &n_ctx);
  EXPECT_LT(n_past, n_ctx);  // it did not run to the end of the context
  edgevlm_gen_params_free(g);
  edgevlm_session_free(s);
  edgevlm_model_free(m);
}

TEST(CApi, ConcurrentSessionsOnOneModel) {
  edgevlm_model* m = load_fixture();
  const std::vector<std::string> images = {fixture("square.png"), fixture("wide.png"), fixture("tall.png")};
  auto answer = [&](const std::string& img) {
    edgevlm_session* s = nullptr;
    EXPECT_EQ(edgevlm_session_new(m, &s), EDGEVLM_OK);
    EXPECT_EQ(edgevlm_session_attach_image_file(s, img.c_str()), EDGEVLM_OK);
    edgevlm_gen_params* g = greedy(6);
    EXPECT_EQ(edgevlm_session_ask(s, "What is it?", g, nullptr, nullptr), EDGEVLM_OK);
    std::string a = edgevlm_session_answer(s);
    edgevlm_gen_params_free(g);
    edgevlm_session_free(s);
    return a;
  };
  std::vector<std::string> alone, together(images.size());
  for (const auto& img : images) alone.push_back(answer(img));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < images.size(); ++i) threads.emplace_back([&, i] { together[i] = answer(images[i]); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(together, alone);
  edgevlm_model_free(m);
}

TEST(CApi, ContextFullIsItsOwnStatus) {
  edgevlm_model_params* p = edgevlm_model_params_new();
  edgevlm_model_params_set_string(p, "model", fixture("tiny.gguf").c_str());
  edgevlm_model_params_set_int(p, "n_ctx", 16);
  edgevlm_model* m = nullptr;
  ASSERT_EQ(edgevlm_model_load(p, &m), EDGEVLM_OK) << edgevlm_last_error();
  edgevlm_model_params_free(p);
  edgevlm_session* s = nullptr;
  ASSERT_EQ(edgevlm_session_new(m, &s), EDGEVLM_OK);
  EXPECT_EQ(edgevlm_session_attach_image_file(s, fixture("square.png").c_str()), EDGEVLM_ERR_IMAGE);  // no mmproj
  EXPECT_EQ(edgevlm_session_ask(s, std::string(200, 'a').c_str(), nullptr, nullptr, nullptr),
            EDGEVLM_ERR_CONTEXT_FULL);
  edgevlm_session_free(s);
  edgevlm_model_free(m);
}

}  // namespace
