// A small float32 GEMM for the time loops: C (M, N) = / += A (M, K) @ op(W), where op(W) is the same for
// every step of a sequence and is packed once per call (pack_right) into panels of 32 columns, K rows
// each, 64-byte aligned: panel p holds op(W)[:, 32p : 32p + 32] row by row (zero-padded past N).
//
// Why: a step's recurrent product is small (B x U times U x 4U) and repeated T times with the same right
// operand. sgemm re-packs that operand on every call, and on some CPUs (measured: MKL on AMD EPYC Zen 4,
// 38 GMAC/s at B = 32, U = 128) its kernel is not the machine's best; this one keeps 8 rows x 32
// columns of C in AVX-512 registers and streams the packed panel (L1-resident), ~1.4x faster there.
// It runs where the CPU has AVX-512F (checked at run time); elsewhere fast_gemm_available() is false and
// the loops use BLAS as before. Same sums as BLAS up to float rounding order (tests: 1e-5 vs nn.LSTM).
#pragma once
#include <cstdint>

namespace rnnstate_ext {

constexpr int64_t kPanel = 32;

// Whether gemm_packed can run here (x86-64 with AVX-512F, GCC or Clang build).
bool fast_gemm_available();

// Floats needed by pack_right for op(W) of K rows and N columns.
inline int64_t packed_size(int64_t N, int64_t K) { return ((N + kPanel - 1) / kPanel) * K * kPanel; }

// trans: W is (N, K) row-major (op(W) = W^T: the forward's h @ W_hh^T); else W is (K, N) row-major
// (the backward's dz @ W_hh). out: packed_size(N, K) floats, 64-byte aligned. Not trans, with w2: rows
// k >= k2 come from w2 (row k - k2), e.g. [h_0; h_1 .. h_{T-2}] without concatenating them.
void pack_right(const float* w, int64_t N, int64_t K, bool trans, float* out, const float* w2 = nullptr,
                int64_t k2 = 0);

// C (M, N; row stride ldc) = A (M, K; row stride lda) @ packed (acc: C += ...). Panels are split across
// torch's threads when M * N * K >= parallel_macs (the caller's StepThreads decides how many there are).
void gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed, float* C,
                 int64_t ldc, bool acc, int64_t parallel_macs);

// The same with A given transposed: At (K, M) row-major, row stride ldat (C = At^T @ packed: the weight
// gradients dz^T @ h of the backward, without transposing dz).
void gemm_packed_at(int64_t M, int64_t N, int64_t K, const float* At, int64_t ldat, const float* packed, float* C,
                    int64_t ldc, bool acc, int64_t parallel_macs);

}  // namespace rnnstate_ext
