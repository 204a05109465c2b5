// The small-batch LSTM time loop (small_batch.cpp): float32, batch <= kSmallBatchMax, steps shaped like a
// matrix-vector product (the recurrent weights read once per step, from L2, for a few batch rows).
#pragma once
#include <cstdint>

namespace rnnstate_ext {

// Which batches and unit counts lstm_sequence runs on this loop (float32 only). Measured on the
// development CPU (AMD EPYC Zen 5, AVX-512, 2 cores, busy), x (B, 100, 32), thread CPU time, medians of 7,
// the op on this loop (one thread) against nn.LSTM (oneDNN, torch.set_num_threads(1)); later runs, busier:
// 1.33-1.52x at U=128, B=1..8 (the layer call, ~35 us more per call: 1.2-1.4x):
//   U=128: B=1 1.55x, 2 1.73x, 4 1.69x, 8 1.50-1.57x faster; B=16 1.37x, 32 1.26x, 64 1.19x.
//   U=64: B=1 2.6x, B=8 2.3x;  U=256: B=1 1.32x, B=8 1.17x;  U=512: B=1 1.17x, B=8 1.10x.
// So the loop wins everywhere measured against one oneDNN thread. The limits below keep it where the
// target was (B <= 8) and where it was measured (U <= 512); beyond B=8 oneDNN's threads on an idle machine
// (not measurable on the busy one) may win, and beyond U=512 the weights stream from memory either way.
constexpr int64_t kSmallBatchMax = 8;
// Packing the weights costs a fixed ~30 us per call (U=128, F=32), which short sequences don't win back:
// measured op times at T=1, B=1 57 us (this loop) against 26 us (the general loop); the per-step saving is
// ~1 us at B=1 and 5-12 us at B=2..8, so the loop runs from B * T >= 32 (B=1: T >= 32, B=8: T >= 4).
constexpr int64_t kSmallBatchMinRowSteps = 32;
constexpr int64_t kSmallBatchMaxUnits = 512;

// The build of the loop this CPU runs: "avx512" (x86-64 with AVX-512; weights pinned in registers, measured
// above), "avx2" or "generic" (the portable build: 16-float vectors of GCC/Clang, lowered to AVX2, SSE, NEON
// or scalars). Chosen once, at load, by a CPU check: one binary for every x86-64 CPU.
const char* small_batch_isa();

// Floats of lstm_small_pack_f32's output for U units and F input features.
int64_t lstm_small_packed_floats(int64_t U, int64_t F);

// Packs W_hh (4U, U), W_ih (4U, F) and the bias b (4U,; null: zeros), row-major, torch's gate order
// i, f, g, o, into blocks of 16 units: block j holds, for k < U the 4 gates' 16 weights W_hh[g*U + 16j + l, k]
// (l < 16; zero past U), then for k < F the same of W_ih, then the 4 gates' 16 biases, contiguously, so
// that one pass over a block gives all four gate pre-activations of 16 units.
void lstm_small_pack_f32(const float* w_ih, const float* w_hh, const float* b, int64_t U, int64_t F,
                         float* packed);

// The LSTM over T steps from (h0, c0) (B, U) each, contiguous: x_t of batch row b at x + b*xs_b + t*xs_t
// (F contiguous floats). Writes h_t into out (T, B, U), c_t into cseq (T, B, U) when not null (else
// alternately into cbuf (2, B, U): c_T is cbuf[(T-1) & 1]) and the gates i, f, g, o into gates[0..3]
// (each (T, B, U)) when gates is not null.
void lstm_small_steps_f32(const float* packed, const float* x, int64_t xs_b, int64_t xs_t, const float* h0,
                          const float* c0, int64_t T, int64_t B, int64_t U, int64_t F, float* out, float* cseq,
                          float* cbuf, float* const* gates);

// The GRU (reset_after=True, torch's layout and gate order r, z, n) in the same form: W_hh (3U, U), W_ih
// (3U, F), b_ih and b_hh (3U,; null: zeros) packed into 16-unit blocks (k < U: W_hh, then W_ih, then the
// biases b_ir + b_hr, b_iz + b_hz, b_in, b_hn). Steps: h_t into out (T, B, U), the gates z, r, n into
// gates[0..2] (each (T, B, U)) when gates is not null, h_{t-1} @ W_hn^T into ghn (T, B, U) when not null
// (what the compiled backward reads). Same batch and unit range as the LSTM's (measured for the LSTM).
int64_t gru_small_packed_floats(int64_t U, int64_t F);
void gru_small_pack_f32(const float* w_ih, const float* w_hh, const float* b_ih, const float* b_hh, int64_t U,
                        int64_t F, float* packed);
void gru_small_steps_f32(const float* packed, const float* x, int64_t xs_b, int64_t xs_t, const float* h0,
                         int64_t T, int64_t B, int64_t U, int64_t F, float* out, float* const* gates, float* ghn);

}  // namespace rnnstate_ext
