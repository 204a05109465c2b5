// Float32 activations shared by the compiled loops' pointwise passes (pointwise.cpp, small_batch.cpp):
// branch-free, so that the loops calling them vectorise. Both files use these very functions, so every
// compiled LSTM/GRU path computes the same gate values.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace rnnstate_ext {
namespace fastmath {

// exp: Cody-Waite range reduction and the Cephes minimax polynomial (about 1 ulp on the clamped range).
inline float exp_f(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round(x / ln 2)
  float r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;                // 2^k
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }
inline float tanh_f(float x) { return 2.0f / (1.0f + exp_f(-2.0f * x)) - 1.0f; }

}  // namespace fastmath
}  // namespace rnnstate_ext
