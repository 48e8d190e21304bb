#include "core/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace edgevlm {

// The test vectors of FIPS 180-4's examples (NIST CSRC) and the one-million-'a' message.
TEST(Sha256, KnownVectors) {
  auto hex = [](std::string_view s) {
    Sha256 h;
    h.update(s);
    return h.hex_digest();
  };
  EXPECT_EQ(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;
  const std::string chunk(1001, 'a');
  for (int i = 0; i < 1000; ++i) h.update(chunk.data(), i % 2 ? 999 : 1001);  // uneven pieces
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace edgevlm
