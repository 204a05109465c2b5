// Mixed precision (rnnstate.mixed_precision, "mixed_bfloat16"): the LSTM time loop with bfloat16 matrix
// products and float32 accumulation, gate math and cell state, for CPUs with AVX512-BF16 (vdpbf16ps).
//
// One fused pass per step: the gate pre-activations of a register tile (4 batch rows x 16 units x the 4
// gates i, f, g, o) are accumulated in float32 registers, from the bias, over x_t @ W_ih^T and
// h_{t-1} @ W_hh^T (both products in bfloat16), and the LSTM's pointwise equations run on them right
// there (float32):
//     z = b + x_t @ W_ih^T + h_{t-1} @ W_hh^T;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
//     c_t = f * c_{t-1} + i * g  (float32, kept);  h_t = o * tanh(c_t)
// h_t is rounded to bfloat16 once: into the output sequence and into the copy the next step's product
// reads; h_T and c_T are returned in float32. No gate pre-activations are written to memory.
//
// Weights are packed once per weight version (pack_lstm_bf16, cached by the caller) with the gates of 16
// units side by side: block 4*ub + q holds gate q of units 16*ub .. 16*ub + 15, as (K/2 pairs, 16 lanes,
// 2), so that one 64-byte load holds 16 output columns x 2 k's, multiplied by a broadcast pair of the
// input row. Units are padded to a multiple of 16, K to even (zeros).
// Everything here is compiled for AVX512-BF16 by function attribute only; callers check
// bf16_supported() (the CPU's cpuid) first, and the layer runs float32 where it is false.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <tuple>

#include "loops.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define RS_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define RS_HAVE_BF16_BUILD 1
#endif

namespace rnnstate_ext {

bool bf16_supported() {
#ifdef RS_HAVE_BF16_BUILD
  static const bool ok = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
  return ok;
#else
  return false;
#endif
}

namespace {

// float32 -> bfloat16 bits, round to nearest even (NaN kept quiet).
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

#ifdef RS_HAVE_BF16_BUILD
// ---- the step's pointwise pass, vectorised for AVX512 (the same equations as lstm_step_f32) ------------
// exp: the Cody-Waite reduction and Cephes polynomial of pointwise.cpp's exp_f, 2^k by vscalefps;
// 1 / (1 + e) by vrcp14ps and one Newton step (relative error ~1e-7, as a division).
RS_BF16_TARGET inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, k);
}
RS_BF16_TARGET inline __m512 inv1p(__m512 e) {              // 1 / (1 + e), e >= 0
  const __m512 d = _mm512_add_ps(e, _mm512_set1_ps(1.0f));
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}
RS_BF16_TARGET inline __m512 sigmoid16(__m512 x) { return inv1p(exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))); }
RS_BF16_TARGET inline __m512 tanh16(__m512 x) {              // 2 / (1 + exp(-2x)) - 1
  const __m512 s = inv1p(exp16(_mm512_mul_ps(x, _mm512_set1_ps(-2.0f))));
  return _mm512_fmsub_ps(s, _mm512_set1_ps(2.0f), _mm512_set1_ps(1.0f));
}

inline __mmask16 lanes(int64_t n) { return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u); }

// acc (MR rows x the 4 gate blocks) += a (MR rows of K2 bf16 pairs, stride lda) @ the 4 packed blocks at w.
template <int MR>
RS_BF16_TARGET inline void tile_product(__m512 (&acc)[MR][4], const uint16_t* a, int64_t lda, const uint16_t* w,
                                        int64_t K2) {
  const int64_t bs = K2 * 32;
  for (int64_t k2 = 0; k2 < K2; ++k2) {
    __m512i wv[4];
    for (int j = 0; j < 4; ++j) wv[j] = _mm512_loadu_si512(w + j * bs + k2 * 32);
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, a + i * lda + 2 * k2, sizeof pair);
      const __m512i av = _mm512_set1_epi32(pair);
      for (int j = 0; j < 4; ++j)
        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], reinterpret_cast<const __m512bh&>(av),
                                     reinterpret_cast<const __m512bh&>(wv[j]));
    }
  }
}

// One register tile of one step: MR batch rows x 16 units (u0 .. u0 + n - 1). x rows (stride ldx) hold
// F2 bf16 pairs of x_t, h rows (stride ldh) U2 pairs of h_{t-1}; wx, wh the unit block's 4 packed gate
// blocks (block strides F2*32, U2*32); bias the block's (4, 16) float32 bias. Reads c_{t-1} (cp) and
// writes c_t (c), h_t in float32 (hf) and in bf16 (ho: the output row, hn: the next product's row).
template <int MR>
RS_BF16_TARGET void lstm_tile(const uint16_t* x, int64_t ldx, int64_t F2, const uint16_t* h, int64_t ldh, int64_t U2,
                              const uint16_t* wx, const uint16_t* wh, const float* bias, int64_t n, const float* cp,
                              float* c, float* hf, int64_t ldc, uint16_t* ho, int64_t ldo, uint16_t* hn,
                              int64_t ldn) {
  __m512 acc[MR][4];
  for (int j = 0; j < 4; ++j) {
    const __m512 b = _mm512_loadu_ps(bias + 16 * j);
    for (int i = 0; i < MR; ++i) acc[i][j] = b;
  }
  tile_product<MR>(acc, x, ldx, wx, F2);
  tile_product<MR>(acc, h, ldh, wh, U2);
  const __mmask16 m = lanes(n);
  for (int i = 0; i < MR; ++i) {
    const __m512 ig = sigmoid16(acc[i][0]), fg = sigmoid16(acc[i][1]), gg = tanh16(acc[i][2]),
                 og = sigmoid16(acc[i][3]);
    const __m512 ct = _mm512_fmadd_ps(fg, _mm512_maskz_loadu_ps(m, cp + i * ldc), _mm512_mul_ps(ig, gg));
    const __m512 ht = _mm512_mul_ps(og, tanh16(ct));
    _mm512_mask_storeu_ps(c + i * ldc, m, ct);
    _mm512_mask_storeu_ps(hf + i * ldc, m, ht);
    __m256bh hb = _mm512_cvtneps_pbh(ht);
    _mm256_mask_storeu_epi16(ho + i * ldo, m, reinterpret_cast<__m256i&>(hb));
    _mm256_mask_storeu_epi16(hn + i * ldn, m, reinterpret_cast<__m256i&>(hb));
  }
}

// One step over all tiles (unit block outer: its weights stay in cache across the row blocks).
void lstm_step_tiles(int64_t B, int64_t U, const uint16_t* x, int64_t F2, const uint16_t* h, int64_t U2,
                     const uint16_t* wx, const uint16_t* wh, const float* bias, const float* cp, float* c, float* hf,
                     uint16_t* ho, uint16_t* hn, bool parallel) {
  const int64_t ublocks = (U + 15) / 16, rblocks = (B + 3) / 4;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t ub = item / rblocks, r0 = (item % rblocks) * 4, u0 = ub * 16;
      const int64_t n = std::min<int64_t>(16, U - u0);
      const uint16_t* wxb = wx + ub * 4 * F2 * 32;
      const uint16_t* whb = wh + ub * 4 * U2 * 32;
      const float* bb = bias + ub * 64;
      const uint16_t* xr = x + r0 * 2 * F2;
      const uint16_t* hr = h + r0 * 2 * U2;
      const int64_t o = r0 * U + u0;
      switch (std::min<int64_t>(4, B - r0)) {
#define RS_TILE(MR) lstm_tile<MR>(xr, 2 * F2, F2, hr, 2 * U2, U2, wxb, whb, bb, n, cp + o, c + o, hf + o, U, ho + o, U, \
                                  hn + r0 * 2 * U2 + u0, 2 * U2)
        case 4: RS_TILE(4); break;
        case 3: RS_TILE(3); break;
        case 2: RS_TILE(2); break;
        default: RS_TILE(1); break;
#undef RS_TILE
      }
    }
  };
  const int64_t items = ublocks * rblocks;
  if (parallel && items > 1) at::parallel_for(0, items, 1, body);
  else body(0, items);
}
#endif

}  // namespace

// W (4U, K) float32 (or bfloat16) -> packed bf16 (4 * ceil(U/16), ceil(K/2), 16, 2): block 4*ub + q holds
// gate q of units 16*ub .. 16*ub + 15 (zeros beyond U and K). Returned as a bfloat16 tensor.
at::Tensor pack_lstm_bf16(const at::Tensor& w_) {
  TORCH_CHECK(w_.dim() == 2 && w_.size(0) % 4 == 0, "pack_lstm_bf16: a (4U, K) weight");
  const at::Tensor w = w_.to(at::kFloat).contiguous();
  const int64_t U = w.size(0) / 4, K = w.size(1), Ub = (U + 15) / 16, K2 = (K + 1) / 2;
  at::Tensor out = at::zeros({4 * Ub, K2, 16, 2}, w.options().dtype(at::kBFloat16));
  const float* src = w.data_ptr<float>();
  uint16_t* dst = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  for (int64_t blk = 0; blk < 4 * Ub; ++blk) {             // the destination in order: sequential writes
    const int64_t q = blk % 4, u0 = (blk / 4) * 16, n = std::min<int64_t>(16, U - u0);
    const float* rows = src + (q * U + u0) * K;
    uint16_t* d = dst + blk * K2 * 32;
    for (int64_t k2 = 0; k2 < K2; ++k2, d += 32) {
      const int64_t k = 2 * k2;
      for (int64_t lane = 0; lane < n; ++lane) {
        d[2 * lane] = to_bf16(rows[lane * K + k]);
        d[2 * lane + 1] = k + 1 < K ? to_bf16(rows[lane * K + k + 1]) : 0;
      }
    }
  }
  return out;
}

// The LSTM over x (B, T, F) float32 or bfloat16 from h0, c0 (B, U) float32, with packed weights
// (pack_lstm_bf16 of W_ih (4U, F) and W_hh (4U, U)) and b_ih (4U,) or None.
// Returns (outputs (B, T, U) bfloat16 (a transposed view of time-major storage), h_T, c_T float32).
std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_sequence_bf16(const at::Tensor& x, const at::Tensor& h0_,
                                                                  const at::Tensor& c0_, const at::Tensor& wp_ih,
                                                                  const at::Tensor& wp_hh,
                                                                  const c10::optional<at::Tensor>& b_ih) {
  TORCH_CHECK(bf16_supported(), "rnnstate: this CPU has no AVX512-BF16 units (the layer runs float32 there)");
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu(), "x must be a (B, T, F) CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, "x: float32 or bfloat16");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = h0_.size(1), G = 4 * U;
  const int64_t Ub = (U + 15) / 16, F2 = (F + 1) / 2, U2 = (U + 1) / 2;
  TORCH_CHECK(wp_ih.scalar_type() == at::kBFloat16 && wp_ih.dim() == 4 && wp_ih.size(0) == 4 * Ub &&
              wp_ih.size(1) == F2, "wp_ih: pack_lstm_bf16(W_ih)");
  TORCH_CHECK(wp_hh.scalar_type() == at::kBFloat16 && wp_hh.dim() == 4 && wp_hh.size(0) == 4 * Ub &&
              wp_hh.size(1) == U2, "wp_hh: pack_lstm_bf16(W_hh)");
  TORCH_CHECK(h0_.sizes() == at::IntArrayRef({B, U}) && c0_.sizes() == at::IntArrayRef({B, U}), "state shapes");
  const bool bias = b_ih.has_value() && b_ih->defined();
  if (bias) TORCH_CHECK(b_ih->numel() == G, "bias");
  const auto f32 = x.options().dtype(at::kFloat), bf = x.options().dtype(at::kBFloat16);
  at::Tensor out = at::empty({Tn, B, U}, bf);
  at::Tensor hT = h0_.to(at::kFloat).contiguous().clone(), cT = c0_.to(at::kFloat).contiguous().clone();
  if (Tn == 0 || B == 0) return {out.transpose(0, 1), hT, cT};
#ifdef RS_HAVE_BF16_BUILD
  // inputs time-major, bf16, K padded to even: (T, B, 2*F2)
  at::Tensor xa = x.transpose(0, 1).to(at::kBFloat16);
  if (F % 2) xa = at::constant_pad_nd(xa, {0, 1}, 0);
  xa = xa.contiguous();
  // h_{t-1} in bf16 for the product: two (B, 2*U2) buffers (the padding stays zero)
  at::Tensor hb = at::zeros({2, B, 2 * U2}, bf);
  at::slice(hb.select(0, 0), 1, 0, U).copy_(hT);
  // the bias as (Ub, 4, 16), gate blocks of 16 units (zeros beyond U)
  at::Tensor bp = at::zeros({Ub, 4, 16}, f32);
  if (bias) {
    const at::Tensor b = b_ih->to(at::kFloat).contiguous();
    const float* src = b.data_ptr<float>();
    float* dst = bp.data_ptr<float>();
    for (int64_t q = 0; q < 4; ++q)
      for (int64_t u = 0; u < U; ++u) dst[((u / 16) * 4 + q) * 16 + u % 16] = src[q * U + u];
  }
  at::Tensor cbuf = at::empty({2, B, U}, f32);
  const uint16_t* xa_p = reinterpret_cast<const uint16_t*>(xa.data_ptr<at::BFloat16>());
  uint16_t* hb_p = reinterpret_cast<uint16_t*>(hb.data_ptr<at::BFloat16>());
  uint16_t* out_p = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const uint16_t* wx = reinterpret_cast<const uint16_t*>(wp_ih.data_ptr<at::BFloat16>());
  const uint16_t* wh = reinterpret_cast<const uint16_t*>(wp_hh.data_ptr<at::BFloat16>());
  const float* bias_p = bp.data_ptr<float>();
  const float* c0_p = cT.data_ptr<float>();
  float* cb = cbuf.data_ptr<float>();
  float* hf = hT.data_ptr<float>();          // h_t in float32: after the last step, h_T
  const int64_t macs = B * G * (U + F);
  const bool parallel = macs >= kParallelStepMacs;
  rnnstate_ext::StepThreads threads(macs);
  for (int64_t t = 0; t < Tn; ++t) {
    const float* cp = t == 0 ? c0_p : cb + ((t - 1) & 1) * B * U;
    lstm_step_tiles(B, U, xa_p + t * B * 2 * F2, F2, hb_p + (t & 1) * B * 2 * U2, U2, wx, wh, bias_p, cp,
                    cb + (t & 1) * B * U, hf, out_p + t * B * U, hb_p + ((t + 1) & 1) * B * 2 * U2, parallel);
  }
  cT.copy_(cbuf.select(0, (Tn - 1) & 1));
#endif
  return {out.transpose(0, 1), hT, cT};
}

}  // namespace rnnstate_ext

TORCH_LIBRARY_FRAGMENT(rnnstate, m) {
  // W (4U, K) -> packed bf16 (4 * ceil(U/16), ceil(K/2), 16, 2), gate blocks of 16 units side by side
  m.def("pack_lstm_bf16(Tensor w) -> Tensor");
  // whether this CPU has the AVX512-BF16 units the kernel below needs
  m.def("bf16_supported() -> bool");
  // outputs (B, T, U) bfloat16, h_T, c_T float32
  m.def("lstm_sequence_bf16(Tensor x, Tensor h0, Tensor c0, Tensor wp_ih, Tensor wp_hh, Tensor? b_ih) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rnnstate, CompositeExplicitAutograd, m) {
  m.impl("bf16_supported", []() { return rnnstate_ext::bf16_supported(); });
}

TORCH_LIBRARY_IMPL(rnnstate, CPU, m) {
  m.impl("pack_lstm_bf16", &rnnstate_ext::pack_lstm_bf16);
  m.impl("lstm_sequence_bf16", &rnnstate_ext::lstm_sequence_bf16);
}
