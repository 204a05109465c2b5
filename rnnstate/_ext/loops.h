// Pieces every time loop of _C.cpp and backward.cpp shares.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>

namespace rnnstate_ext {

// Below this many elements per step the pointwise pass runs on one thread (fork/join costs more).
constexpr int64_t kGrain = 4096;

// One step's pointwise pass over the flat (B, U) range: body(begin, end) on one thread, or split
// across threads when the step is large enough to pay for it.
template <typename Body>
inline void pointwise_pass(int64_t BU, const Body& body) {
  if (BU <= kGrain) {
    body(0, BU);
  } else {
    at::parallel_for(0, BU, kGrain / 2, body);
  }
}

// The input projections of `rows` consecutive rows of the time-major input x2 (rows of (T*B, F)),
// all at once: out = x2[row0 : row0 + rows] @ W_ih^T (+ b_ih). w_ih_t is W_ih transposed (a view).
inline void project_inputs(at::Tensor& out, const at::Tensor& x2, int64_t row0, int64_t rows,
                           const c10::optional<at::Tensor>& b_ih, const at::Tensor& w_ih_t) {
  const at::Tensor x_c = x2.narrow(0, row0, rows);
  if (b_ih.has_value() && b_ih->defined()) at::addmm_out(out, *b_ih, x_c, w_ih_t);
  else at::mm_out(out, x_c, w_ih_t);
}

}  // namespace rnnstate_ext
