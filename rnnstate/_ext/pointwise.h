// The per-step pointwise pass of the LSTM loop (pointwise.cpp), over n consecutive units of one batch
// row. z points at the row's gate pre-activations: i at z[k], f at z[U+k], g at z[2U+k], o at z[3U+k].
// Writes c[k] = f*c_prev[k] + i*g and h[k] = o*tanh(c[k]); and the gates when gi is not null.
#pragma once
#include <cstdint>

namespace rnnstate_ext {
void lstm_step_f32(const float* z, int64_t U, const float* c_prev, float* h, float* c, float* gi, float* gf,
                   float* gg, float* go, int64_t n);
void lstm_step_f64(const double* z, int64_t U, const double* c_prev, double* h, double* c, double* gi,
                   double* gf, double* gg, double* go, int64_t n);
}  // namespace rnnstate_ext

namespace rnnstate_ext {
// z (G,) += W (G, U) row-major @ h (U,). Float32; for batch 1 (a BLAS call costs more than it does).
void matvec_add_f32(const float* w, int64_t G, int64_t U, const float* h, float* z);
}  // namespace rnnstate_ext
