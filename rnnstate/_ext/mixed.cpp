// Mixed precision (rnnstate.mixed_precision, "mixed_bfloat16"): the LSTM time loop with bfloat16 matrix
// products and float32 accumulation, gate math and cell state, for CPUs with AVX512-BF16 (vdpbf16ps).
//
// Same structure as lstm_loop in _C.cpp: per chunk of steps one GEMM for the input part of every gate,
// z = b_ih + x @ W_ih^T (float32, time-major (steps, B, Gp)); per step one GEMM adds h_{t-1} @ W_hh^T into
// z_t, then one pointwise pass (the fp32 pass of the fp32 loop, lstm_step_f32) writes c_t (float32) and
// h_t, which is rounded to bfloat16 once: into the output sequence and into the bf16 copy the next step's
// product reads. h_T and c_T are returned in float32.
//
// The GEMM is in-house: weights packed once per weight version (pack_bf16, cached by the caller) as
// (G/16 blocks, K/2 pairs, 16 lanes, 2), so that one 64-byte load holds 16 output columns x 2 k's, and
// vdpbf16ps multiplies them by a broadcast pair of the input row, accumulating in float32. A 4-row x
// 64-column register tile; the output column count is padded to a multiple of 16 (Gp), K to even.
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
#include "pointwise.h"

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

#ifndef RS_HAVE_BF16_BUILD
void cvt_row(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dst[k] = to_bf16(src[k]);
}
#else
// n floats -> n bf16 (round to nearest even).
RS_BF16_TARGET void cvt_row(const float* src, uint16_t* dst, int64_t n) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + k));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), reinterpret_cast<__m256i&>(v));
  }
  if (k < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - k)) - 1u);
    __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + k));
    _mm256_mask_storeu_epi16(dst + k, m, reinterpret_cast<__m256i&>(v));
  }
}

// C (MR rows, NB*16 columns; row stride ldc) += A (MR rows of K2 bf16 pairs; row stride lda, in bf16) @
// the packed weight blocks wp[0..NB) (each K2 x 16 lanes x 2).
template <int MR, int NB>
RS_BF16_TARGET inline void tile(const uint16_t* A, int64_t lda, const uint16_t* wp, int64_t K2, float* C,
                                int64_t ldc) {
  __m512 acc[MR][NB];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_loadu_ps(C + i * ldc + j * 16);
  const int64_t bstride = K2 * 32;                  // bf16 elements per packed 16-column block
  for (int64_t k2 = 0; k2 < K2; ++k2) {
    __m512i w[NB];
    for (int j = 0; j < NB; ++j) w[j] = _mm512_loadu_si512(wp + j * bstride + k2 * 32);
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, A + i * lda + 2 * k2, sizeof pair);
      const __m512i a = _mm512_set1_epi32(pair);
      for (int j = 0; j < NB; ++j)
        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], reinterpret_cast<const __m512bh&>(a),
                                     reinterpret_cast<const __m512bh&>(w[j]));
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NB; ++j) _mm512_storeu_ps(C + i * ldc + j * 16, acc[i][j]);
}

template <int MR>
RS_BF16_TARGET void tile_nb(int nb, const uint16_t* A, int64_t lda, const uint16_t* wp, int64_t K2, float* C,
                            int64_t ldc) {
  switch (nb) {
    case 4: tile<MR, 4>(A, lda, wp, K2, C, ldc); break;
    case 3: tile<MR, 3>(A, lda, wp, K2, C, ldc); break;
    case 2: tile<MR, 2>(A, lda, wp, K2, C, ldc); break;
    default: tile<MR, 1>(A, lda, wp, K2, C, ldc); break;
  }
}

RS_BF16_TARGET void tile_any(int mr, int nb, const uint16_t* A, int64_t lda, const uint16_t* wp, int64_t K2,
                             float* C, int64_t ldc) {
  switch (mr) {
    case 4: tile_nb<4>(nb, A, lda, wp, K2, C, ldc); break;
    case 3: tile_nb<3>(nb, A, lda, wp, K2, C, ldc); break;
    case 2: tile_nb<2>(nb, A, lda, wp, K2, C, ldc); break;
    default: tile_nb<1>(nb, A, lda, wp, K2, C, ldc); break;
  }
}
#endif

constexpr int kMR = 4;   // rows per register tile
constexpr int kNB = 4;   // 16-column blocks per register tile

// C (M, Gp) float32, row stride ldc  +=  A (M, 2*K2) bf16, row stride lda  @  W^T, W packed (Gp/16, K2, 16, 2).
// Split across threads by tiles when the product is large enough (`parallel`).
void gemm_bf16(int64_t M, int64_t Gp, int64_t K2, const uint16_t* A, int64_t lda, const uint16_t* wp, float* C,
               int64_t ldc, bool parallel) {
#ifdef RS_HAVE_BF16_BUILD
  const int64_t nblocks = Gp / 16, ngroups = (nblocks + kNB - 1) / kNB, nrows = (M + kMR - 1) / kMR;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {       // column group outer: its weights stay in cache
      const int64_t g = item / nrows, r = item % nrows;
      const int64_t b0 = g * kNB, r0 = r * kMR;
      const int nb = static_cast<int>(std::min<int64_t>(kNB, nblocks - b0));
      const int mr = static_cast<int>(std::min<int64_t>(kMR, M - r0));
      tile_any(mr, nb, A + r0 * lda, lda, wp + b0 * K2 * 32, K2, C + r0 * ldc + b0 * 16, ldc);
    }
  };
  const int64_t items = ngroups * nrows;
  if (parallel && items > 1) {
    at::parallel_for(0, items, 1, body);
  } else {
    body(0, items);
  }
#else
  TORCH_CHECK(false, "rnnstate: this build has no bfloat16 kernels");
#endif
}

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

}  // namespace

// W (G, K) float32 (or bfloat16) -> packed bf16 (Gp/16, K2, 16, 2), zero-padded to Gp = 16*ceil(G/16) rows
// and 2*K2 >= K columns. Returned as a bfloat16 tensor.
at::Tensor pack_bf16(const at::Tensor& w_) {
  TORCH_CHECK(w_.dim() == 2, "pack_bf16: a (G, K) weight");
  const at::Tensor w = w_.to(at::kFloat).contiguous();
  const int64_t G = w.size(0), K = w.size(1), Gp = round_up(G, 16), K2 = (K + 1) / 2;
  at::Tensor out = at::zeros({Gp / 16, K2, 16, 2}, w.options().dtype(at::kBFloat16));
  const float* src = w.data_ptr<float>();
  uint16_t* dst = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  for (int64_t g = 0; g < G; ++g) {
    const int64_t blk = g / 16, lane = g % 16;
    for (int64_t k = 0; k < K; ++k) dst[((blk * K2 + k / 2) * 16 + lane) * 2 + (k & 1)] = to_bf16(src[g * K + k]);
  }
  return out;
}

// The LSTM over x (B, T, F) float32 or bfloat16 from h0, c0 (B, U) float32, with packed weights
// (pack_bf16 of W_ih (4U, F) and W_hh (4U, U)) and b_ih (4U,) float32 or None.
// Returns (outputs (B, T, U) bfloat16 (a transposed view of time-major storage), h_T, c_T float32).
std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_sequence_bf16(const at::Tensor& x, const at::Tensor& h0_,
                                                                  const at::Tensor& c0_, const at::Tensor& wp_ih,
                                                                  const at::Tensor& wp_hh,
                                                                  const c10::optional<at::Tensor>& b_ih) {
  TORCH_CHECK(bf16_supported(), "rnnstate: this CPU has no AVX512-BF16 units (the layer runs float32 there)");
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu(), "x must be a (B, T, F) CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, "x: float32 or bfloat16");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = h0_.size(1), G = 4 * U;
  const int64_t Gp = round_up(G, 16), F2 = (F + 1) / 2, U2 = (U + 1) / 2;
  TORCH_CHECK(wp_ih.scalar_type() == at::kBFloat16 && wp_ih.dim() == 4 && wp_ih.size(0) * 16 == Gp &&
              wp_ih.size(1) == F2, "wp_ih: pack_bf16(W_ih)");
  TORCH_CHECK(wp_hh.scalar_type() == at::kBFloat16 && wp_hh.dim() == 4 && wp_hh.size(0) * 16 == Gp &&
              wp_hh.size(1) == U2, "wp_hh: pack_bf16(W_hh)");
  TORCH_CHECK(h0_.sizes() == at::IntArrayRef({B, U}) && c0_.sizes() == at::IntArrayRef({B, U}), "state shapes");
  const bool bias = b_ih.has_value() && b_ih->defined();
  if (bias) TORCH_CHECK(b_ih->numel() == G, "bias");
  const auto f32 = x.options().dtype(at::kFloat);
  const at::Tensor h0 = h0_.to(at::kFloat).contiguous(), c0 = c0_.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({Tn, B, U}, x.options().dtype(at::kBFloat16));
  at::Tensor cbuf = at::empty({2, B, U}, f32);
  at::Tensor hT = h0.clone(), cT = c0.clone();
  if (Tn == 0 || B == 0) return {out.transpose(0, 1), hT, cT};
  // inputs time-major, bf16, K padded to even: (T*B, 2*F2)
  at::Tensor xa = x.transpose(0, 1).to(at::kBFloat16);
  if (F % 2) xa = at::constant_pad_nd(xa, {0, 1}, 0);
  xa = xa.contiguous().view({Tn * B, 2 * F2});
  const uint16_t* xa_p = reinterpret_cast<const uint16_t*>(xa.data_ptr<at::BFloat16>());
  // h_{t-1} in bf16 for the product (two buffers, zero-padded to even U)
  at::Tensor hb = at::zeros({2, B, 2 * U2}, x.options().dtype(at::kBFloat16));
  uint16_t* hb_p = reinterpret_cast<uint16_t*>(hb.data_ptr<at::BFloat16>());
  at::Tensor hf = at::empty({B, U}, f32);                      // h_t in float32 (the step's pass writes it)
  float* hf_p = hf.data_ptr<float>();
  uint16_t* out_p = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const at::Tensor b = bias ? b_ih->to(at::kFloat).contiguous() : at::Tensor();
  const float* c0_p = c0.data_ptr<float>();
  float* cb = cbuf.data_ptr<float>();
  const uint16_t* wih = reinterpret_cast<const uint16_t*>(wp_ih.data_ptr<at::BFloat16>());
  const uint16_t* whh = reinterpret_cast<const uint16_t*>(wp_hh.data_ptr<at::BFloat16>());
  {
    const float* h0_p = h0.data_ptr<float>();
    for (int64_t r = 0; r < B; ++r) cvt_row(h0_p + r * U, hb_p + r * 2 * U2, U);
  }
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(Tn, (int64_t(1) << 20) / (B * Gp)));
  at::Tensor z = at::empty({chunk * B, Gp}, f32);
  float* z_p = z.data_ptr<float>();
  const bool par_rec = B * G * U >= kParallelStepMacs;
  rnnstate_ext::StepThreads threads(B * G * U);
  for (int64_t t0 = 0; t0 < Tn; t0 += chunk) {
    const int64_t n = std::min(chunk, Tn - t0), rows = n * B;
    if (bias) {
      const float* bp = b.data_ptr<float>();
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(z_p + r * Gp, bp, sizeof(float) * G);
        if (Gp > G) std::memset(z_p + r * Gp + G, 0, sizeof(float) * (Gp - G));
      }
    } else {
      std::memset(z_p, 0, sizeof(float) * rows * Gp);
    }
    gemm_bf16(rows, Gp, F2, xa_p + t0 * B * 2 * F2, 2 * F2, wih, z_p, Gp, rows * G * F >= kParallelStepMacs);
    for (int64_t t = t0; t < t0 + n; ++t) {
      float* zt = z_p + (t - t0) * B * Gp;
      const uint16_t* hprev = hb_p + (t & 1) * B * 2 * U2;
      uint16_t* hnext = hb_p + ((t + 1) & 1) * B * 2 * U2;
      gemm_bf16(B, Gp, U2, hprev, 2 * U2, whh, zt, Gp, par_rec);      // z_t += h_{t-1} @ W_hh^T
      const float* cp = t == 0 ? c0_p : cb + ((t - 1) & 1) * B * U;
      float* cc = cb + (t & 1) * B * U;
      uint16_t* ot = out_p + t * B * U;
      auto body = [&](int64_t r0, int64_t r1) {                        // rows of the batch
        for (int64_t r = r0; r < r1; ++r) {
          lstm_step_f32(zt + r * Gp, U, cp + r * U, hf_p + r * U, cc + r * U, nullptr, nullptr, nullptr, nullptr, U);
          cvt_row(hf_p + r * U, ot + r * U, U);
          cvt_row(hf_p + r * U, hnext + r * 2 * U2, U);
        }
      };
      if (B * U > kGrain) at::parallel_for(0, B, std::max<int64_t>(1, kGrain / (2 * U)), body);
      else body(0, B);
    }
  }
  hT.copy_(hf);
  cT.copy_(cbuf.select(0, (Tn - 1) & 1));
  return {out.transpose(0, 1), hT, cT};
}

}  // namespace rnnstate_ext

TORCH_LIBRARY_FRAGMENT(rnnstate, m) {
  // W (G, K) -> packed bf16 (ceil(G/16), ceil(K/2), 16, 2)
  m.def("pack_bf16(Tensor w) -> Tensor");
  // whether this CPU has the AVX512-BF16 units the kernels below need
  m.def("bf16_supported() -> bool");
  // outputs (B, T, U) bfloat16, h_T, c_T float32
  m.def("lstm_sequence_bf16(Tensor x, Tensor h0, Tensor c0, Tensor wp_ih, Tensor wp_hh, Tensor? b_ih) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rnnstate, CompositeExplicitAutograd, m) {
  m.impl("bf16_supported", []() { return rnnstate_ext::bf16_supported(); });
}

TORCH_LIBRARY_IMPL(rnnstate, CPU, m) {
  m.impl("pack_bf16", &rnnstate_ext::pack_bf16);
  m.impl("lstm_sequence_bf16", &rnnstate_ext::lstm_sequence_bf16);
}
