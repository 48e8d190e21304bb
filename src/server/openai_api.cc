#include "server/openai_api.h"

#include <cmath>

namespace edgevlm {

using nlohmann::json;

json ApiError::to_json() const {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return json{{"error", e}};
}

void throw_api_error(int status, const std::string& type, const std::string& message, const std::string& param,
                     const std::string& code) {
  ApiError e;
  e.status = status;
  e.type = type;
  e.message = message;
  e.param = param;
  e.code = code;
  throw e;
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw_api_error(400, "invalid_request_error", message, param);
}

double number_field(const json& body, const char* name, double lo, double hi) {
  const json& v = body[name];
  if (!v.is_number()) bad(name, std::string("'") + name + "' must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad(name, std::string("'") + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return x;
}

bool has(const json& body, const char* name) { return body.contains(name) && !body[name].is_null(); }

}  // namespace

std::vector<uint8_t> base64_decode(std::string_view s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::vector<uint8_t> out;
  out.reserve(s.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] != '='; ++i) {
    const char c = s[i];
    if (c == '\n' || c == '\r' || c == ' ') continue;
    const int v = value(c);
    if (v < 0) bad("messages", "the image's data: URI is not valid base64 (character " + std::to_string(i) + ")");
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(uint8_t(acc >> bits));
    }
  }
  for (; i < s.size(); ++i)
    if (s[i] != '=' && s[i] != '\n' && s[i] != '\r')
      bad("messages", "the image's data: URI has data after its base64 padding");
  return out;
}

ImageSource parse_image_url(const std::string& url, std::vector<uint8_t>* bytes, size_t max_bytes) {
  if (url.rfind("img-", 0) == 0) {
    if (url.size() != 36 || url.find_first_not_of("0123456789abcdef", 4) != std::string::npos)
      bad("messages", "image id '" + url.substr(0, 64) + "' is not one POST /v1/images returns (img- and 32 hex digits)");
    return ImageSource::Uploaded;
  }
  if (url.rfind("data:", 0) != 0)
    bad("messages", "image_url must be a data: URI (data:image/png;base64,...) or an id from POST /v1/images; "
                    "edgevlm does not fetch remote URLs");
  const size_t comma = url.find(',');
  if (comma == std::string::npos || comma < 12 || url.compare(comma - 7, 7, ";base64") != 0)
    bad("messages", "image data: URI must be base64 (data:image/...;base64,...)");
  if ((url.size() - comma - 1) / 4 * 3 > max_bytes + 3)
    throw_api_error(413, "invalid_request_error",
                    "an image is over the limit of " + std::to_string(max_bytes >> 20) + " MiB", "messages");
  *bytes = base64_decode(std::string_view(url).substr(comma + 1));
  if (bytes->empty()) bad("messages", "an image's data: URI holds no bytes");
  return ImageSource::Inline;
}

ChatRequest parse_chat_request(const json& body, const SamplerParams& defaults, const RequestLimits& limits) {
  if (!body.is_object()) bad("", "the request body must be a JSON object");
  ChatRequest r;
  r.sampling = defaults;
  if (has(body, "model")) {
    if (!body["model"].is_string()) bad("model", "'model' must be a string");
    r.model = body["model"].get<std::string>();
  }
  if (has(body, "stream")) {
    if (!body["stream"].is_boolean()) bad("stream", "'stream' must be true or false");
    r.stream = body["stream"].get<bool>();
  }
  if (has(body, "stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object()) bad("stream_options", "'stream_options' must be an object");
    if (has(so, "include_usage")) r.include_usage = so["include_usage"].is_boolean() && so["include_usage"].get<bool>();
  }
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (!has(body, name)) continue;
    const json& v = body[name];
    if (!v.is_number_integer() || v.get<int64_t>() < 1)
      bad(name, std::string("'") + name + "' must be a positive integer");
    if (v.get<int64_t>() > limits.max_tokens)
      bad(name, std::string("'") + name + "' is " + std::to_string(v.get<int64_t>()) + ", over this server's limit of " +
                    std::to_string(limits.max_tokens));
    r.max_tokens = int(v.get<int64_t>());
  }
  if (has(body, "temperature")) r.sampling.temperature = float(number_field(body, "temperature", 0, 2));
  if (has(body, "top_p")) r.sampling.top_p = float(number_field(body, "top_p", 0, 1));
  if (has(body, "top_k")) r.sampling.top_k = int(number_field(body, "top_k", 0, 1e6));
  if (has(body, "min_p")) r.sampling.min_p = float(number_field(body, "min_p", 0, 1));
  if (has(body, "seed")) {
    if (!body["seed"].is_number_integer()) bad("seed", "'seed' must be an integer");
    r.sampling.seed = uint64_t(body["seed"].get<int64_t>());
    r.seed_given = true;
  }
  if (has(body, "n") && !(body["n"].is_number_integer() && body["n"].get<int64_t>() == 1))
    bad("n", "edgevlm generates one choice per request ('n' must be 1)");
  for (const char* name : {"tools", "functions", "tool_choice", "logprobs", "response_format"})
    if (has(body, name) && !(body[name].is_boolean() && !body[name].get<bool>()))
      bad(name, std::string("'") + name + "' is not supported by edgevlm");
  if (has(body, "stop")) {
    const json& s = body["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const json& x : s) {
        if (!x.is_string()) bad("stop", "'stop' must be a string or an array of up to 4 strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or an array of up to 4 strings");
    }
    for (const auto& x : r.stop)
      if (x.empty() || x.size() > 256) bad("stop", "each stop string must have 1 to 256 bytes");
  }

  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    bad("messages", "'messages' must be a non-empty array");
  const json& msgs = body["messages"];
  if (int(msgs.size()) > limits.max_messages)
    bad("messages", "'messages' has " + std::to_string(msgs.size()) + " entries, over the limit of " +
                        std::to_string(limits.max_messages));
  int n_images = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) bad(where, where + " needs a string 'role'");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      bad(where, where + " has role '" + role.substr(0, 32) + "'; edgevlm takes system, user and assistant");
    ChatTurn turn;
    turn.role = role;
    const json& c = m.contains("content") ? m["content"] : json();
    if (c.is_string()) {
      turn.text = c.get<std::string>();
    } else if (c.is_array()) {
      for (size_t k = 0; k < c.size(); ++k) {
        const json& part = c[k];
        const std::string pw = where + ".content[" + std::to_string(k) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
          bad(where, pw + " needs a string 'type'");
        const std::string type = part["type"].get<std::string>();
        if (type == "text") {
          if (!part.contains("text") || !part["text"].is_string()) bad(where, pw + " needs a string 'text'");
          if (!turn.text.empty()) turn.text += "\n";
          turn.text += part["text"].get<std::string>();
        } else if (type == "image_url") {
          if (role != "user") bad(where, pw + ": images go in user messages");
          const json& iu = part.contains("image_url") ? part["image_url"] : json();
          const json& url = iu.is_object() && iu.contains("url") ? iu["url"] : iu;
          if (!url.is_string()) bad(where, pw + " needs image_url.url (a data: URI or an uploaded image id)");
          turn.images.push_back(url.get<std::string>());
          if (++n_images > limits.max_images)
            bad(where, "the request has more than " + std::to_string(limits.max_images) + " images");
        } else {
          bad(where, pw + " has type '" + type.substr(0, 32) + "'; edgevlm takes text and image_url");
        }
      }
    } else if (!(c.is_null() && role == "assistant")) {
      bad(where, where + ".content must be a string or an array of parts");
    }
    if (!r.turns.empty() && r.turns.back().role == role) {
      ChatTurn& prev = r.turns.back();
      if (!turn.text.empty()) prev.text += (prev.text.empty() ? "" : "\n") + turn.text;
      for (auto& u : turn.images) prev.images.push_back(std::move(u));
    } else {
      if (role == "system" && !r.turns.empty())
        bad(where, where + ": a system message must come first (edgevlm keeps one system prompt per conversation)");
      r.turns.push_back(std::move(turn));
    }
  }
  if (r.turns.back().role != "user") bad("messages", "the last message must be the user's");
  if (r.turns[r.turns[0].role == "system" ? 1 : 0].role != "user")
    bad("messages", "the conversation must begin with a user message (after an optional system message)");
  return r;
}

const char* finish_reason(StopReason r) {
  switch (r) {
    case StopReason::MaxTokens:
    case StopReason::ContextFull:
      return "length";
    default:
      return "stop";
  }
}

}  // namespace edgevlm
