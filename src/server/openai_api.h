// OpenAI's chat-completions protocol, as far as edgevlm serves it: the request parsed and checked
// into a ChatRequest, and the response objects (whole, streamed chunks, errors) built from the
// engine's answer. No HTTP here; server.cc moves these over the wire.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/generate.h"
#include "engine/sampler.h"

namespace edgevlm {

// An error the client caused (or the server's state), in OpenAI's shape:
// {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;  // the offending field, when one is
  std::string code;
  nlohmann::json to_json() const;
};
[[noreturn]] void throw_api_error(int status, const std::string& type, const std::string& message,
                                  const std::string& param = {}, const std::string& code = {});

struct RequestLimits {
  int max_tokens = 4096;             // most tokens one answer may ask for
  int max_images = 8;                // images in one request, all messages together
  int64_t max_image_pixels = 16'000'000;
  size_t max_image_bytes = 20u << 20;
  int max_messages = 256;
};

// One conversation turn of the request. Consecutive messages of one role are merged (their texts
// joined by a newline), which is how the chat templates would render them anyway.
struct ChatTurn {
  std::string role;  // "system", "user" or "assistant"
  std::string text;
  std::vector<std::string> images;  // image_url urls in order: data: URIs or uploaded ids
};

struct ChatRequest {
  std::string model;
  std::vector<ChatTurn> turns;  // an optional system turn, then user/assistant alternating, ending with user
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage
  int max_tokens = -1;          // -1: until the limit or the context's end
  SamplerParams sampling;
  bool seed_given = false;
  std::vector<std::string> stop;
};

// Checks every field edgevlm reads and refuses, naming it, what it cannot honour (n > 1, a
// remote image URL, tools). `defaults` holds the server's sampling settings.
ChatRequest parse_chat_request(const nlohmann::json& body, const SamplerParams& defaults, const RequestLimits& limits);

// An image_url's url: an uploaded image's id ("img-…", as POST /v1/images returns it) or a data:
// URI ("data:image/png;base64,…"), whose decoded bytes go to `bytes`. Throws ApiError otherwise.
enum class ImageSource { Uploaded, Inline };
ImageSource parse_image_url(const std::string& url, std::vector<uint8_t>* bytes, size_t max_bytes);
std::vector<uint8_t> base64_decode(std::string_view s);  // throws ApiError on bad input

// "stop" when the model ended (or a stop string), "length" at the token budget or the context's end.
const char* finish_reason(StopReason r);

}  // namespace edgevlm
