// The server in-process on a free loopback port, driven by cpp-httplib's client: the protocol's
// shapes, answers equal to the engine's own, the decoupled upload, both caches and the errors.
// (The official openai npm client and the chat page in Chromium are tests/server/.)
#include "server/server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <thread>

#include "engine/session.h"
#include "model/tokenizer.h"
#include "server/openai_api.h"

namespace edgevlm {
namespace {

using json = nlohmann::json;

std::string fixture(const std::string& name) {
  return std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/" + name;
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += k[v >> 18], out += k[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8;
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += '=';
  }
  return out;
}

std::shared_ptr<Engine> fixture_engine() {
  EngineOptions o;
  o.model_path = fixture("tiny.gguf");
  o.mmproj_path = fixture("tiny-mmproj.gguf");
  o.threads = 2;
  o.n_ctx = 1024;
  return Engine::load(o);
}

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions so = {}) {
    engine_ = fixture_engine();
    so.port = 0;
    so.sampling.temperature = 0;
    server_ = std::make_unique<Server>(engine_, so);
    server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(60, 0);
  }
  void TearDown() override {
    if (server_) server_->shutdown();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Result post(const std::string& path, const json& body, httplib::Headers h = {}) {
    return client_->Post(path.c_str(), h, body.dump(), "application/json");
  }
  json chat(const json& messages, int max_tokens = 8, int expect_status = 200) {
    auto r = post("/v1/chat/completions", {{"messages", messages}, {"max_tokens", max_tokens}});
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, expect_status) << r->body;
    return json::parse(r->body);
  }
  static std::string content(const json& j) { return j["choices"][0]["message"]["content"].get<std::string>(); }
  double metric(const std::string& name) {
    auto r = client_->Get("/metrics");
    const size_t at = r->body.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::atof(r->body.c_str() + at + name.size() + 2);
  }

  std::shared_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
};

GenerateParams greedy(int n) {
  GenerateParams gp;
  gp.n_predict = n;
  gp.sampler.temperature = 0;
  return gp;
}

TEST_F(ServerTest, HealthModelsMetricsAndPage) {
  start();
  auto h = client_->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = client_->Get("/v1/models");
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"], "tiny.gguf");
  auto page = client_->Get("/");
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  EXPECT_EQ(metric("edgevlm_slots"), 1);
  auto missing = client_->Get("/nope");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["type"], "not_found_error");
}

TEST_F(ServerTest, AnswersAsTheEngineDoesWholeAndStreamed) {
  start();
  Session s(engine_);
  s.attach_image(fixture("square.png"));
  const SessionAnswer direct = s.ask("What is it?", greedy(8));

  const json msgs = json::array(
      {{{"role", "user"},
        {"content", json::array({{{"type", "text"}, {"text", "What is it?"}},
                                 {{"type", "image_url"},
                                  {"image_url", {{"url", "data:image/png;base64," + base64(file_bytes(fixture("square.png")))}}}}})}}});
  const json whole = chat(msgs);
  EXPECT_EQ(content(whole), direct.result.text);
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["usage"]["completion_tokens"], int(direct.result.tokens.size()));
  EXPECT_EQ(whole["usage"]["prompt_tokens"], direct.n_positions);

  auto r = post("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 8}, {"stream", true},
                                         {"stream_options", {{"include_usage", true}}}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  std::string streamed, finish;
  bool done = false, usage = false;
  for (size_t at = 0, end; (end = r->body.find("\n\n", at)) != std::string::npos; at = end + 2) {
    const std::string ev = r->body.substr(at, end - at);
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    if (ev == "data: [DONE]") {
      done = true;
      continue;
    }
    const json c = json::parse(ev.substr(6));
    if (c.contains("usage")) usage = true;
    if (c["choices"].empty()) continue;
    streamed += c["choices"][0]["delta"].value("content", "");
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(streamed, direct.result.text);
  EXPECT_TRUE(done);
  EXPECT_TRUE(usage);
  EXPECT_TRUE(finish == "stop" || finish == "length") << finish;
  // The second request's image came from the cache.
  EXPECT_GE(metric("edgevlm_image_cache_hits_total"), 1);
  EXPECT_EQ(metric("edgevlm_image_cache_misses_total"), 1);
}

TEST_F(ServerTest, UploadedImageIdAnswersAsTheInlineImage) {
  start();
  auto up = client_->Post("/v1/images", file_bytes(fixture("tall.png")), "image/png");
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 200) << up->body;
  const json u = json::parse(up->body);
  const std::string id = u["id"];
  EXPECT_EQ(u["width"], 37);
  EXPECT_EQ(id.size(), 36u);
  auto by_id = chat(json::array({{{"role", "user"},
                                  {"content", json::array({{{"type", "text"}, {"text", "Read it."}},
                                                           {{"type", "image_url"}, {"image_url", {{"url", id}}}}})}}}));
  auto st = client_->Get(("/v1/images/" + id).c_str());
  EXPECT_EQ(json::parse(st->body)["status"], "ready");
  Session s(engine_);
  s.attach_image(fixture("tall.png"));
  EXPECT_EQ(content(by_id), s.ask("Read it.", greedy(8)).result.text);
  // Unknown ids and bad images are the client's errors, named.
  const json bad = chat(json::array({{{"role", "user"},
                                      {"content", json::array({{{"type", "image_url"},
                                                                {"image_url", {{"url", "img-" + std::string(32, '0')}}}}})}}}),
                        8, 400);
  EXPECT_EQ(bad["error"]["code"], "image_not_found");
  auto junk = client_->Post("/v1/images", std::string("not an image at all"), "image/png");
  EXPECT_EQ(junk->status, 400);
  EXPECT_NE(json::parse(junk->body)["error"]["message"].get<std::string>().find("image"), std::string::npos);
}

TEST_F(ServerTest, FollowUpReusesTheConversationsCacheWithTheSameAnswer) {
  start();
  json msgs = json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hello?"}}});
  const json a1 = chat(msgs);
  msgs.push_back({{"role", "assistant"}, {"content", content(a1)}});
  msgs.push_back({{"role", "user"}, {"content", "And the cat?"}});
  const json hit = chat(msgs);
  EXPECT_GT(hit["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
  EXPECT_EQ(metric("edgevlm_prompt_cache_hits_total"), 1);
  // Another conversation takes the slot; the follow-up then replays from the messages.
  chat(json::array({{{"role", "user"}, {"content", "Something else."}}}));
  const json miss = chat(msgs);
  EXPECT_EQ(miss["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
  // The replay holds the answer's text re-tokenized (as llama.cpp's server would); where that gives
  // the generated tokens back, the two paths are the same prompt.
  const auto toks = engine_->tokenizer().encode(content(a1), false, false);
  if (toks.size() == size_t(a1["usage"]["completion_tokens"].get<int>())) {
    EXPECT_EQ(miss["usage"]["prompt_tokens"], hit["usage"]["prompt_tokens"]);
    EXPECT_EQ(content(miss), content(hit));
  }
}

TEST_F(ServerTest, BadRequestsGetOpenAiErrors) {
  ServerOptions so;
  so.api_key = "sekret";
  so.max_body_bytes = 1 << 20;
  start(so);
  httplib::Headers auth = {{"Authorization", "Bearer sekret"}};
  auto noauth = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}});
  EXPECT_EQ(noauth->status, 401);
  EXPECT_EQ(json::parse(noauth->body)["error"]["type"], "authentication_error");
  auto expect400 = [&](const std::string& body, const std::string& needle) {
    auto r = client_->Post("/v1/chat/completions", auth, body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body;
    const json e = json::parse(r->body);
    EXPECT_NE(e["error"]["message"].get<std::string>().find(needle), std::string::npos) << r->body;
  };
  expect400("{not json", "not valid JSON");
  expect400("{}", "messages");
  expect400(R"({"messages":[{"role":"user","content":"hi"}],"n":2})", "one choice");
  expect400(R"({"messages":[{"role":"assistant","content":"hi"}]})", "last message");
  expect400(R"({"messages":[{"role":"wizard","content":"hi"}]})", "wizard");
  expect400(R"({"messages":[{"role":"user","content":"hi"}],"temperature":9})", "temperature");
  expect400(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]})",
            "remote URLs");
  expect400(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@"}}]}]})",
            "base64");
  auto big = client_->Post("/v1/chat/completions", auth, std::string(3 << 20, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_FALSE(json::parse(big->body)["error"]["message"].get<std::string>().empty());
  auto ok = client_->Post("/v1/chat/completions", auth, R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":2})",
                          "application/json");
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST_F(ServerTest, ShutdownAnswersQueuedRequestsWith503) {
  start();
  server_->shutdown();
  auto h = client_->Get("/health");
  // Either the listener is closed already or it answers that it is shutting down.
  if (h) EXPECT_EQ(h->status, 503);
}

TEST(OpenAiApi, MergesTurnsAndReadsParameters) {
  const json body = json::parse(R"({
    "model": "m", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "seed": 42, "stop": ["x", "y"],
    "messages": [{"role": "developer", "content": "sys"},
                 {"role": "user", "content": "a"},
                 {"role": "user", "content": [{"type": "text", "text": "b"},
                                              {"type": "image_url", "image_url": {"url": "img-0123456789abcdef0123456789abcdef"}}]}]})");
  const ChatRequest r = parse_chat_request(body, SamplerParams{}, RequestLimits{});
  ASSERT_EQ(r.turns.size(), 2u);
  EXPECT_EQ(r.turns[0].role, "system");
  EXPECT_EQ(r.turns[1].text, "a\nb");
  EXPECT_EQ(r.turns[1].images.size(), 1u);
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_EQ(r.stop.size(), 2u);
}

TEST(OpenAiApi, Base64AndImageUrls) {
  EXPECT_EQ(base64_decode("aGVsbG8="), std::vector<uint8_t>({'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(base64_decode("aGVsbG8"), std::vector<uint8_t>({'h', 'e', 'l', 'l', 'o'}));
  EXPECT_THROW(base64_decode("aGV*bG8="), ApiError);
  EXPECT_THROW(base64_decode("aGVs=bG8"), ApiError);
  std::vector<uint8_t> bytes;
  EXPECT_EQ(parse_image_url("data:image/png;base64,aGk=", &bytes, 100), ImageSource::Inline);
  EXPECT_EQ(bytes.size(), 2u);
  EXPECT_THROW(parse_image_url("data:,aGk=", &bytes, 100), ApiError);
  EXPECT_THROW(parse_image_url("data:image/png;base64," + std::string(400, 'A'), &bytes, 100), ApiError);
  EXPECT_THROW(parse_image_url("img-XYZ", &bytes, 100), ApiError);
  EXPECT_THROW(parse_image_url("file:///etc/passwd", &bytes, 100), ApiError);
}

TEST(OpenAiApi, RefusesWhatItCannotHonour) {
  RequestLimits lim;
  lim.max_images = 1;
  auto parse = [&](const char* s) { return parse_chat_request(json::parse(s), SamplerParams{}, lim); };
  EXPECT_THROW(parse(R"({"messages":[]})"), ApiError);
  EXPECT_THROW(parse(R"({"messages":[{"role":"user","content":"a"}],"tools":[{}]})"), ApiError);
  EXPECT_THROW(parse(R"({"messages":[{"role":"user","content":"a"}],"max_tokens":0})"), ApiError);
  EXPECT_THROW(parse(R"({"messages":[{"role":"user","content":"a"}],"max_tokens":99999999})"), ApiError);
  EXPECT_THROW(parse(R"({"messages":[{"role":"user","content":"a"},{"role":"system","content":"b"},{"role":"user","content":"c"}]})"),
               ApiError);
  EXPECT_THROW(parse(R"({"messages":[{"role":"assistant","content":"a"},{"role":"user","content":"c"}]})"), ApiError);
  EXPECT_THROW(parse(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"a"}},
                                                               {"type":"image_url","image_url":{"url":"b"}}]}]})"),
               ApiError);
  EXPECT_THROW(parse(R"({"messages":[{"role":"user","content":"a"}],"stop":["1","2","3","4","5"]})"), ApiError);
  EXPECT_THROW(parse(R"([1,2])"), ApiError);
}

}  // namespace
}  // namespace edgevlm
