// The packed small GEMM of gemm.h. The AVX-512 kernels are compiled for that target only (function
// attributes); the rest of the extension stays generic x86-64, and fast_gemm_available() gates the call.
#include "gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define RS_GEMM_X86 1
#include <immintrin.h>
#endif

namespace rnnstate_ext {

void pack_right(const float* w, int64_t N, int64_t K, bool trans, float* out, const float* w2, int64_t k2) {
  const int64_t panels = (N + kPanel - 1) / kPanel;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t n0 = p * kPanel, nv = std::min(kPanel, N - n0);
    float* dst = out + p * K * kPanel;
    for (int64_t k = 0; k < K; ++k) {
      float* row = dst + k * kPanel;
      if (trans) {
        for (int64_t j = 0; j < nv; ++j) row[j] = w[(n0 + j) * K + k];
      } else {
        const float* src = (w2 != nullptr && k >= k2) ? w2 + (k - k2) * N : w + k * N;
        std::memcpy(row, src + n0, sizeof(float) * nv);
      }
      for (int64_t j = nv; j < kPanel; ++j) row[j] = 0.0f;
    }
  }
}

#ifdef RS_GEMM_X86

bool fast_gemm_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

namespace {

#define RS_AVX512 __attribute__((target("avx512f")))

RS_AVX512 inline __mmask16 lane_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// MR rows of C times NP consecutive panels: MR * NP * 2 accumulators (<= 24 of the 32 registers).
// AT: A is given transposed, (K, M) row-major with row stride lda (the backward's dz^T @ h).
template <int MR, int NP, bool AT>
RS_AVX512 void kernel(int64_t K, const float* A, int64_t lda, const float* Bp, float* C, int64_t ldc,
                      int64_t n_valid, bool acc) {
  __m512 c[MR][NP][2];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) c[r][q][0] = c[r][q][1] = _mm512_setzero_ps();
  const int64_t pstride = K * kPanel;
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NP][2];
    for (int q = 0; q < NP; ++q) {
      b[q][0] = _mm512_load_ps(Bp + q * pstride + k * kPanel);
      b[q][1] = _mm512_load_ps(Bp + q * pstride + k * kPanel + 16);
    }
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(AT ? A[k * lda + r] : A[r * lda + k]);
      for (int q = 0; q < NP; ++q) {
        c[r][q][0] = _mm512_fmadd_ps(a, b[q][0], c[r][q][0]);
        c[r][q][1] = _mm512_fmadd_ps(a, b[q][1], c[r][q][1]);
      }
    }
  }
  for (int q = 0; q < NP; ++q) {
    const int64_t nv = n_valid - q * kPanel;
    const __mmask16 m0 = lane_mask(nv), m1 = lane_mask(nv - 16);
    for (int r = 0; r < MR; ++r) {
      float* dst = C + r * ldc + q * kPanel;
      __m512 v0 = c[r][q][0], v1 = c[r][q][1];
      if (acc) {
        v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, dst), v0);
        v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, dst + 16), v1);
      }
      _mm512_mask_storeu_ps(dst, m0, v0);
      _mm512_mask_storeu_ps(dst + 16, m1, v1);
    }
  }
}

// One group of NP panels, all rows: row blocks of 8 (NP = 1) or of 2 (NP = 4, the small-M kernels).
template <int NP, bool AT>
RS_AVX512 void panel_group(int64_t M, int64_t K, const float* A, int64_t lda, const float* Bp, float* C,
                           int64_t ldc, int64_t n_left, bool acc) {
  int64_t r = 0;
  if constexpr (NP == 1) {
    for (; r + 8 <= M; r += 8) kernel<8, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc);
    switch (M - r) {
      case 7: kernel<7, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc); break;
      case 6: kernel<6, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc); break;
      case 5: kernel<5, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc); break;
      case 4: kernel<4, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc); break;
      case 3: kernel<3, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc); break;
      case 2: kernel<2, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc); break;
      case 1: kernel<1, 1, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc); break;
      default: break;
    }
  } else {
    for (; r + 2 <= M; r += 2) kernel<2, NP, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc);
    if (r < M) kernel<1, NP, AT>(K, A + (AT ? r : r * lda), lda, Bp, C + r * ldc, ldc, n_left, acc);
  }
}

template <bool AT>
RS_AVX512 void gemm_range(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed,
                          float* C, int64_t ldc, bool acc, int64_t p0, int64_t p1) {
  int64_t p = p0;
  if (M < 4) {          // few rows: four panels at once, so the FMA chains are independent enough
    for (; p + 4 <= p1; p += 4)
      panel_group<4, AT>(M, K, A, lda, packed + p * K * kPanel, C + p * kPanel, ldc, N - p * kPanel, acc);
  }
  for (; p < p1; ++p)
    panel_group<1, AT>(M, K, A, lda, packed + p * K * kPanel, C + p * kPanel, ldc, N - p * kPanel, acc);
}

}  // namespace

namespace {
template <bool AT>
void gemm_any(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed, float* C,
              int64_t ldc, bool acc, int64_t parallel_macs) {
  const int64_t panels = (N + kPanel - 1) / kPanel;
  if (M * N * K < parallel_macs || panels < 2) {
    gemm_range<AT>(M, N, K, A, lda, packed, C, ldc, acc, 0, panels);
    return;
  }
  at::parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
    gemm_range<AT>(M, N, K, A, lda, packed, C, ldc, acc, p0, p1);
  });
}
}  // namespace

void gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed, float* C,
                 int64_t ldc, bool acc, int64_t parallel_macs) {
  gemm_any<false>(M, N, K, A, lda, packed, C, ldc, acc, parallel_macs);
}

void gemm_packed_at(int64_t M, int64_t N, int64_t K, const float* At, int64_t ldat, const float* packed, float* C,
                    int64_t ldc, bool acc, int64_t parallel_macs) {
  gemm_any<true>(M, N, K, At, ldat, packed, C, ldc, acc, parallel_macs);
}

#else   // not x86-64 GCC/Clang: never called (fast_gemm_available() is false)

bool fast_gemm_available() { return false; }
void gemm_packed(int64_t, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t, bool, int64_t) {}
void gemm_packed_at(int64_t, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t, bool, int64_t) {}

#endif

}  // namespace rnnstate_ext
