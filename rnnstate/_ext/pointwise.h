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

namespace rnnstate_ext {
// The per-step pointwise pass of the GRU loop (reset_after=True), over n consecutive units of one batch
// row. xw points at the row's input projections (r at xw[k], z at xw[U+k], n at xw[2U+k]), gh at the
// row's recurrent products h_{t-1} @ W_hh^T (same layout, no bias) and bhh at b_hh (3U,; zeros without
// bias). Writes h[k] = z*h_prev[k] + (1-z)*n; and the gates when gz is not null.
void gru_step_f32(const float* xw, const float* gh, const float* bhh, int64_t U, const float* h_prev, float* h,
                  float* gz, float* gr, float* gn, int64_t n);
void gru_step_f64(const double* xw, const double* gh, const double* bhh, int64_t U, const double* h_prev,
                  double* h, double* gz, double* gr, double* gn, int64_t n);
}  // namespace rnnstate_ext

namespace rnnstate_ext {
// The per-step pointwise pass of the LSTM backward (backward.cpp), over n consecutive units of one batch
// row at step t. Reads the forward's gates i, f, g, o and c_t, c_{t-1} at [k]; dh = dh_rec[k] (+ dout[k]
// when dout is not null) is dL/dh_t; dc[k] holds dL/dc_t from step t+1 and is overwritten with
// dL/dc_{t-1}. Writes dL/dz_t (the gate pre-activations) into dz: i at dz[k], f at dz[U+k], g at
// dz[2U+k], o at dz[3U+k].
void lstm_step_bwd_f32(const float* gi, const float* gf, const float* gg, const float* go, const float* c,
                       const float* c_prev, const float* dh_rec, const float* dout, float* dc, float* dz,
                       int64_t U, int64_t n);
void lstm_step_bwd_f64(const double* gi, const double* gf, const double* gg, const double* go, const double* c,
                       const double* c_prev, const double* dh_rec, const double* dout, double* dc, double* dz,
                       int64_t U, int64_t n);
}  // namespace rnnstate_ext

namespace rnnstate_ext {
// The per-step pointwise pass of the SimpleRNN loop: z[k] = act(z[k] + bhh[k]) in place, k < n (bhh may be
// null); act is tanh, or relu when `relu`.
void rnn_step_f32(float* z, const float* bhh, int64_t n, bool relu);
void rnn_step_f64(double* z, const double* bhh, int64_t n, bool relu);
}  // namespace rnnstate_ext

namespace rnnstate_ext {
// The per-step pointwise pass of the GRU backward (reset_after=True; backward.cpp), n units of one batch row.
// Reads z, r, n, hn (= h_{t-1} @ W_hn^T + b_hn) and h_{t-1} at [k]; dh[k] holds dL/dh_t (plus dout[k] when
// dout is not null) and is overwritten with the direct part of dL/dh_{t-1} (dh * z; the caller adds the
// product through W_hh). Writes the pre-activation gradients in torch's gate order r, z, n: for the input
// projection into dgx (r at dgx[k], z at dgx[U+k], n at dgx[2U+k]) and for the recurrent one into dgh
// (the same, but n scaled by r).
void gru_step_bwd_f32(const float* gz, const float* gr, const float* gn, const float* hn, const float* hp,
                      const float* dout, float* dh, float* dgx, float* dgh, int64_t U, int64_t n);
void gru_step_bwd_f64(const double* gz, const double* gr, const double* gn, const double* hn, const double* hp,
                      const double* dout, double* dh, double* dgx, double* dgh, int64_t U, int64_t n);
}  // namespace rnnstate_ext

namespace rnnstate_ext {
// The per-step pointwise pass of the SimpleRNN backward: da[k] = (dh[k] (+ dout[k])) * act'(h[k]) with h the
// step's output (tanh: 1 - h^2; relu: h > 0).
void rnn_step_bwd_f32(const float* h, const float* dh, const float* dout, float* da, int64_t n, bool relu);
void rnn_step_bwd_f64(const double* h, const double* dh, const double* dout, double* da, int64_t n, bool relu);
}  // namespace rnnstate_ext
