// The server's request parsing: a chat-completions body (JSON, then every field edgevlm reads)
// and the image URLs in it (data: URIs through base64). Anything may be refused with ApiError;
// nothing may crash, hang or allocate without bound.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "server/openai_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgevlm;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded()) return 0;
  try {
    const ChatRequest r = parse_chat_request(body, SamplerParams{}, RequestLimits{});
    for (const auto& t : r.turns)
      for (const auto& url : t.images) {
        std::vector<uint8_t> bytes;
        try {
          parse_image_url(url, &bytes, 1 << 20);
        } catch (const ApiError&) {
        }
      }
  } catch (const ApiError&) {
  }
  return 0;
}
