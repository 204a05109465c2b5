// Pointwise parts of rnnstate._ext._C's loops, in a translation unit of their own: without torch's
// headers around them GCC reliably vectorises these loops (with them it sometimes does not).
// Float32 activations are branch-free polynomials so that the loops vectorise; float64 uses libm.
#include "pointwise.h"
#include "fastmath.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
// One binary, the widest vector unit of the CPU it runs on (chosen once, at load, by the loader).
#define RS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RS_CLONES
#endif

namespace {

using rnnstate_ext::fastmath::exp_f;       // fastmath.h: shared with small_batch.cpp
using rnnstate_ext::fastmath::sigmoid_f;
using rnnstate_ext::fastmath::tanh_f;

inline double sigmoid_d(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

namespace rnnstate_ext {

RS_CLONES void lstm_step_f32(const float* __restrict z, int64_t U, const float* __restrict c_prev,
                        float* __restrict h, float* __restrict c, float* __restrict gi,
                        float* __restrict gf, float* __restrict gg, float* __restrict go, int64_t n) {
  const float* __restrict zi = z;
  const float* __restrict zf = z + U;
  const float* __restrict zg = z + 2 * U;
  const float* __restrict zo = z + 3 * U;
  if (gi == nullptr) {
    for (int64_t k = 0; k < n; ++k) {
      const float i = sigmoid_f(zi[k]), f = sigmoid_f(zf[k]), g = tanh_f(zg[k]), o = sigmoid_f(zo[k]);
      const float ct = f * c_prev[k] + i * g;
      c[k] = ct;
      h[k] = o * tanh_f(ct);
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      const float i = sigmoid_f(zi[k]), f = sigmoid_f(zf[k]), g = tanh_f(zg[k]), o = sigmoid_f(zo[k]);
      const float ct = f * c_prev[k] + i * g;
      c[k] = ct;
      h[k] = o * tanh_f(ct);
      gi[k] = i; gf[k] = f; gg[k] = g; go[k] = o;
    }
  }
}

void lstm_step_f64(const double* __restrict z, int64_t U, const double* __restrict c_prev,
              double* __restrict h, double* __restrict c, double* __restrict gi, double* __restrict gf,
              double* __restrict gg, double* __restrict go, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const double i = sigmoid_d(z[k]), f = sigmoid_d(z[U + k]), g = std::tanh(z[2 * U + k]),
                 o = sigmoid_d(z[3 * U + k]);
    const double ct = f * c_prev[k] + i * g;
    c[k] = ct;
    h[k] = o * std::tanh(ct);
    if (gi != nullptr) { gi[k] = i; gf[k] = f; gg[k] = g; go[k] = o; }
  }
}

// GRU, reset_after=True (GRUCell.recurrent_step):
//     r = sigmoid(xr + hr);  z = sigmoid(xz + hz);  n = tanh(xn + r * hn);  h_t = z * h_{t-1} + (1 - z) * n
// with (hr, hz, hn) = h_{t-1} @ W_hh^T + b_hh.
RS_CLONES void gru_step_f32(const float* __restrict xw, const float* __restrict gh, const float* __restrict bhh,
                            int64_t U, const float* __restrict h_prev, float* __restrict h,
                            float* __restrict gz, float* __restrict gr, float* __restrict gn, int64_t n) {
  const float* __restrict xr = xw;
  const float* __restrict xz = xw + U;
  const float* __restrict xn = xw + 2 * U;
  const float* __restrict hr = gh;
  const float* __restrict hz = gh + U;
  const float* __restrict hn = gh + 2 * U;
  const float* __restrict br = bhh;
  const float* __restrict bz = bhh + U;
  const float* __restrict bn = bhh + 2 * U;
  if (gz == nullptr) {
    for (int64_t k = 0; k < n; ++k) {
      const float r = sigmoid_f(xr[k] + (hr[k] + br[k])), z = sigmoid_f(xz[k] + (hz[k] + bz[k]));
      const float nn = tanh_f(xn[k] + r * (hn[k] + bn[k]));
      h[k] = z * h_prev[k] + (1.0f - z) * nn;
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      const float r = sigmoid_f(xr[k] + (hr[k] + br[k])), z = sigmoid_f(xz[k] + (hz[k] + bz[k]));
      const float nn = tanh_f(xn[k] + r * (hn[k] + bn[k]));
      h[k] = z * h_prev[k] + (1.0f - z) * nn;
      gz[k] = z; gr[k] = r; gn[k] = nn;
    }
  }
}

void gru_step_f64(const double* __restrict xw, const double* __restrict gh, const double* __restrict bhh,
                  int64_t U, const double* __restrict h_prev, double* __restrict h, double* __restrict gz,
                  double* __restrict gr, double* __restrict gn, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const double r = sigmoid_d(xw[k] + (gh[k] + bhh[k])), z = sigmoid_d(xw[U + k] + (gh[U + k] + bhh[U + k]));
    const double nn = std::tanh(xw[2 * U + k] + r * (gh[2 * U + k] + bhh[2 * U + k]));
    h[k] = z * h_prev[k] + (1.0 - z) * nn;
    if (gz != nullptr) { gz[k] = z; gr[k] = r; gn[k] = nn; }
  }
}

}  // namespace rnnstate_ext

namespace rnnstate_ext {

// z (G,) += W (G, U) row-major @ h (U,): four rows at a time, 16 independent partial sums per row
// (fixed-length inner loops the compiler turns into vector FMAs; no reassociation needed).
RS_CLONES void matvec_add_f32(const float* __restrict w, int64_t G, int64_t U, const float* __restrict h,
                              float* __restrict z) {
  constexpr int L = 16;
  const int64_t Uv = U - U % L;
  int64_t j = 0;
  for (; j + 4 <= G; j += 4) {
    const float* __restrict w0 = w + j * U;
    const float* __restrict w1 = w0 + U;
    const float* __restrict w2 = w1 + U;
    const float* __restrict w3 = w2 + U;
    float a0[L] = {}, a1[L] = {}, a2[L] = {}, a3[L] = {};
    for (int64_t k = 0; k < Uv; k += L) {
      for (int l = 0; l < L; ++l) {
        const float hk = h[k + l];
        a0[l] += w0[k + l] * hk;
        a1[l] += w1[k + l] * hk;
        a2[l] += w2[k + l] * hk;
        a3[l] += w3[k + l] * hk;
      }
    }
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int l = 0; l < L; ++l) { s0 += a0[l]; s1 += a1[l]; s2 += a2[l]; s3 += a3[l]; }
    for (int64_t k = Uv; k < U; ++k) {
      s0 += w0[k] * h[k]; s1 += w1[k] * h[k]; s2 += w2[k] * h[k]; s3 += w3[k] * h[k];
    }
    z[j] += s0; z[j + 1] += s1; z[j + 2] += s2; z[j + 3] += s3;
  }
  for (; j < G; ++j) {
    float s = 0;
    for (int64_t k = 0; k < U; ++k) s += w[j * U + k] * h[k];
    z[j] += s;
  }
}

}  // namespace rnnstate_ext

namespace rnnstate_ext {

// LSTM backward, one step (the forward: c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t)):
//     dc_t  = dc + dh * o * (1 - tanh(c_t)^2)
//     dz_i = dc_t * g * i(1-i);   dz_f = dc_t * c_{t-1} * f(1-f);   dz_g = dc_t * i * (1-g^2)
//     dz_o = dh * tanh(c_t) * o(1-o);   dc_{t-1} = dc_t * f
// tanh(c_t) is recomputed with the forward's own tanh_f, so it is the forward's value bit for bit.
template <bool WithOut, typename T, typename Tanh>
inline void lstm_bwd_body(const T* __restrict gi, const T* __restrict gf, const T* __restrict gg,
                          const T* __restrict go, const T* __restrict c, const T* __restrict c_prev,
                          const T* __restrict dh_rec, const T* __restrict dout, T* __restrict dc,
                          T* __restrict dz, int64_t U, int64_t n, Tanh tanh_fn) {
  T* __restrict dzi = dz;
  T* __restrict dzf = dz + U;
  T* __restrict dzg = dz + 2 * U;
  T* __restrict dzo = dz + 3 * U;
  for (int64_t k = 0; k < n; ++k) {
    const T i = gi[k], f = gf[k], g = gg[k], o = go[k];
    const T tc = tanh_fn(c[k]);
    const T dh = WithOut ? dh_rec[k] + dout[k] : dh_rec[k];
    const T dct = dc[k] + dh * o * (T(1) - tc * tc);
    dzi[k] = dct * g * (i * (T(1) - i));
    dzf[k] = dct * c_prev[k] * (f * (T(1) - f));
    dzg[k] = dct * i * (T(1) - g * g);
    dzo[k] = dh * tc * (o * (T(1) - o));
    dc[k] = dct * f;
  }
}

RS_CLONES void lstm_step_bwd_f32(const float* gi, const float* gf, const float* gg, const float* go,
                                 const float* c, const float* c_prev, const float* dh_rec, const float* dout,
                                 float* dc, float* dz, int64_t U, int64_t n) {
  auto th = [](float v) { return tanh_f(v); };
  if (dout != nullptr) lstm_bwd_body<true>(gi, gf, gg, go, c, c_prev, dh_rec, dout, dc, dz, U, n, th);
  else lstm_bwd_body<false>(gi, gf, gg, go, c, c_prev, dh_rec, dout, dc, dz, U, n, th);
}

void lstm_step_bwd_f64(const double* gi, const double* gf, const double* gg, const double* go, const double* c,
                       const double* c_prev, const double* dh_rec, const double* dout, double* dc, double* dz,
                       int64_t U, int64_t n) {
  auto th = [](double v) { return std::tanh(v); };
  if (dout != nullptr) lstm_bwd_body<true>(gi, gf, gg, go, c, c_prev, dh_rec, dout, dc, dz, U, n, th);
  else lstm_bwd_body<false>(gi, gf, gg, go, c, c_prev, dh_rec, dout, dc, dz, U, n, th);
}

}  // namespace rnnstate_ext

namespace rnnstate_ext {

RS_CLONES void rnn_step_f32(float* __restrict z, const float* __restrict bhh, int64_t n, bool relu) {
  if (bhh != nullptr)
    for (int64_t k = 0; k < n; ++k) z[k] += bhh[k];
  if (relu) {
    for (int64_t k = 0; k < n; ++k) z[k] = std::max(z[k], 0.0f);
  } else {
    for (int64_t k = 0; k < n; ++k) z[k] = tanh_f(z[k]);
  }
}

void rnn_step_f64(double* __restrict z, const double* __restrict bhh, int64_t n, bool relu) {
  for (int64_t k = 0; k < n; ++k) {
    const double v = bhh != nullptr ? z[k] + bhh[k] : z[k];
    z[k] = relu ? std::max(v, 0.0) : std::tanh(v);
  }
}

}  // namespace rnnstate_ext

namespace rnnstate_ext {

// GRU backward, one step (forward: r = s(xr + hr), z = s(xz + hz), n = tanh(xn + r * hn),
// h_t = z * h_{t-1} + (1 - z) * n):
//     dz = dh (h_{t-1} - n);  dn = dh (1 - z);  da_n = dn (1 - n^2);  dr = da_n hn
//     dgx = [dr r(1-r), dz z(1-z), da_n];  dgh = [dr r(1-r), dz z(1-z), da_n r];  dh_{t-1} (direct) = dh z
template <bool WithOut, typename T>
inline void gru_bwd_body(const T* __restrict gz, const T* __restrict gr, const T* __restrict gn,
                         const T* __restrict hn, const T* __restrict hp, const T* __restrict dout,
                         T* __restrict dh, T* __restrict dgx, T* __restrict dgh, int64_t U, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const T z = gz[k], r = gr[k], nn = gn[k];
    const T d = WithOut ? dh[k] + dout[k] : dh[k];
    const T da_n = d * (T(1) - z) * (T(1) - nn * nn);
    const T da_r = da_n * hn[k] * (r * (T(1) - r));
    const T da_z = d * (hp[k] - nn) * (z * (T(1) - z));
    dgx[k] = da_r; dgx[U + k] = da_z; dgx[2 * U + k] = da_n;
    dgh[k] = da_r; dgh[U + k] = da_z; dgh[2 * U + k] = da_n * r;
    dh[k] = d * z;
  }
}

RS_CLONES void gru_step_bwd_f32(const float* gz, const float* gr, const float* gn, const float* hn, const float* hp,
                                const float* dout, float* dh, float* dgx, float* dgh, int64_t U, int64_t n) {
  if (dout != nullptr) gru_bwd_body<true>(gz, gr, gn, hn, hp, dout, dh, dgx, dgh, U, n);
  else gru_bwd_body<false>(gz, gr, gn, hn, hp, dout, dh, dgx, dgh, U, n);
}

void gru_step_bwd_f64(const double* gz, const double* gr, const double* gn, const double* hn, const double* hp,
                      const double* dout, double* dh, double* dgx, double* dgh, int64_t U, int64_t n) {
  if (dout != nullptr) gru_bwd_body<true>(gz, gr, gn, hn, hp, dout, dh, dgx, dgh, U, n);
  else gru_bwd_body<false>(gz, gr, gn, hn, hp, dout, dh, dgx, dgh, U, n);
}

}  // namespace rnnstate_ext

namespace rnnstate_ext {

template <typename T>
inline void rnn_bwd_body(const T* __restrict h, const T* __restrict dh, const T* __restrict dout, T* __restrict da,
                         int64_t n, bool relu) {
  if (relu) {
    if (dout != nullptr) for (int64_t k = 0; k < n; ++k) da[k] = h[k] > T(0) ? dh[k] + dout[k] : T(0);
    else for (int64_t k = 0; k < n; ++k) da[k] = h[k] > T(0) ? dh[k] : T(0);
  } else {
    if (dout != nullptr) for (int64_t k = 0; k < n; ++k) da[k] = (dh[k] + dout[k]) * (T(1) - h[k] * h[k]);
    else for (int64_t k = 0; k < n; ++k) da[k] = dh[k] * (T(1) - h[k] * h[k]);
  }
}

RS_CLONES void rnn_step_bwd_f32(const float* h, const float* dh, const float* dout, float* da, int64_t n, bool relu) {
  rnn_bwd_body(h, dh, dout, da, n, relu);
}

void rnn_step_bwd_f64(const double* h, const double* dh, const double* dout, double* da, int64_t n, bool relu) {
  rnn_bwd_body(h, dh, dout, da, n, relu);
}

}  // namespace rnnstate_ext
