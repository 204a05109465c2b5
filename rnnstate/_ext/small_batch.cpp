// The small-batch LSTM and GRU loops (small_batch.h): per step, ONE pass over the packed weights (W_hh,
// then W_ih, then the bias, 16 units per block) gives the gate pre-activations of 16 units for up to 4
// batch rows in registers (LSTM: 16 vector accumulators, 4 weight vectors, 4 broadcasts of h_{t-1} or
// x_t), and the gate math of those units follows at once. No BLAS call per step (its set-up is most of a
// step at B <= 8), no separate input projection (MKL's sgemm takes its generic path on AMD CPUs: it was
// a third of the call at B=8), no pre-activation pass through memory, no thread fork/join
// (single-threaded by design).
//
// Where the time goes at U=128, F=32 (LSTM: 512 x 160 weights, 320 KB, read once per step from L2 and,
// for a second group of rows, from L1; measured with perf on the dev CPU): B=1 (about 2.5-3 us per step)
// is bound by L2 bandwidth, two accumulator sets (even/odd k) keep 8 FMA chains in flight; B=8 (about
// 7 us per step) runs two groups of 4 rows: 60% the FMAs (40960 16-wide FMAs per step), 40% the gate
// math (5 exp + 5 divisions per 16 units and row; neither vrcp14ps+Newton nor vscalefps/vrndscaleps
// in the exp measured faster).
//
// Portable: GCC/Clang vector extensions (16 floats), which the compiler lowers to one AVX-512
// register, two AVX2 registers, four SSE/NEON registers or scalars; on x86-64 Linux GCC builds a clone
// per vector width and the loader picks the CPU's (target_clones, as pointwise.cpp). Compilers
// without vector extensions get plain 16-float arrays.
#include "small_batch.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "fastmath.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"   // 64-byte vectors in always-inlined helpers: no ABI crossing
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define RS_SB_X86_DISPATCH 1    // an AVX-512 build and a generic one (AVX2 / baseline clones), chosen at run time
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RS_SB_INLINE inline __attribute__((always_inline))   // compiled into each clone
#else
#define RS_SB_INLINE inline
#endif

namespace {

constexpr int L = 16;            // units per block (one vector)
constexpr int NG = 4;            // gates
constexpr int kRowsPerGroup = 4; // batch rows per pass over a weight block

#if defined(__GNUC__) || defined(__clang__)
typedef float vf __attribute__((vector_size(L * sizeof(float))));
RS_SB_INLINE vf vzero() { return vf{}; }
RS_SB_INLINE vf vload(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
RS_SB_INLINE void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
RS_SB_INLINE vf vfma(vf a, float b, vf c) { return c + a * b; }   // contracted to an FMA where the CPU has one
#else
struct vf { float v[L]; };
RS_SB_INLINE vf vzero() { return vf{}; }
RS_SB_INLINE vf vload(const float* p) { vf r; std::memcpy(r.v, p, sizeof r.v); return r; }
RS_SB_INLINE void vstore(float* p, vf a) { std::memcpy(p, a.v, sizeof a.v); }
RS_SB_INLINE vf vfma(vf a, float b, vf c) { for (int l = 0; l < L; ++l) c.v[l] += a.v[l] * b; return c; }
RS_SB_INLINE vf operator+(vf a, vf b) { for (int l = 0; l < L; ++l) a.v[l] += b.v[l]; return a; }
#endif

// a[s][g][r] += sum_k wp[k][g][:] * src_r[k] over k < K, wp packed (K x 4 x 16), rows of src ld apart;
// with S = 2 sets the even k go to set 0 and the odd ones to set 1 (more FMA chains in flight).
// Pin (the AVX-512 build): keep each weight vector in a register for its NB FMAs. Left alone, GCC folds
// the load into every FMA at NB <= 3 (NB loads of the same line, the first one from L2), measured
// 1.5-2x slower per step at B=2, 3.
template <int NB, int S, bool Pin>
RS_SB_INLINE void accumulate(vf (&a)[S][NG][NB], const float* __restrict wp, const float* __restrict src, int64_t ld,
                             int64_t K) {
  int64_t k = 0;
  for (; k + S <= K; k += S) {
    for (int s = 0; s < S; ++s) {
      const float* w = wp + (k + s) * (NG * L);
      vf w0 = vload(w), w1 = vload(w + L), w2 = vload(w + 2 * L), w3 = vload(w + 3 * L);
#ifdef RS_SB_X86_DISPATCH
      if constexpr (Pin) asm("" : "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3));
#endif
      for (int r = 0; r < NB; ++r) {
        const float hk = src[r * ld + k + s];
        a[s][0][r] = vfma(w0, hk, a[s][0][r]);
        a[s][1][r] = vfma(w1, hk, a[s][1][r]);
        a[s][2][r] = vfma(w2, hk, a[s][2][r]);
        a[s][3][r] = vfma(w3, hk, a[s][3][r]);
      }
    }
  }
  for (; k < K; ++k) {                                    // odd K with two sets: the last k
    const float* w = wp + k * (NG * L);
    for (int g = 0; g < NG; ++g) {
      const vf wg = vload(w + g * L);
      for (int r = 0; r < NB; ++r) a[0][g][r] = vfma(wg, src[r * ld + k], a[0][g][r]);
    }
  }
}

// Activations on whole vectors, the same formulas as fastmath.h (so the same values up to FMA
// contraction): written on vectors rather than left to the auto-vectoriser, which does not always
// inline fastmath's scalar functions here.
#if defined(__GNUC__) || defined(__clang__)
typedef int32_t vi __attribute__((vector_size(L * sizeof(int32_t))));
RS_SB_INLINE vf vexp(vf x) {
  const vf lo = vzero() - 87.0f, hi = vzero() + 88.0f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const vf k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round(x / ln 2)
  vf r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  vf p = vzero() + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const vi bits = (__builtin_convertvector(k, vi) + 127) << 23;          // 2^k
  vf scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
RS_SB_INLINE vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }
RS_SB_INLINE vf vtanh(vf x) { return 2.0f / (1.0f + vexp(-2.0f * x)) - 1.0f; }
RS_SB_INLINE vf vmul(vf a, vf b) { return a * b; }
RS_SB_INLINE vf vmuladd(vf a, vf b, vf c) { return a * b + c; }
#else
RS_SB_INLINE vf vsigmoid(vf x) { for (int l = 0; l < L; ++l) x.v[l] = rnnstate_ext::fastmath::sigmoid_f(x.v[l]); return x; }
RS_SB_INLINE vf vtanh(vf x) { for (int l = 0; l < L; ++l) x.v[l] = rnnstate_ext::fastmath::tanh_f(x.v[l]); return x; }
RS_SB_INLINE vf vmul(vf a, vf b) { for (int l = 0; l < L; ++l) a.v[l] *= b.v[l]; return a; }
RS_SB_INLINE vf vmuladd(vf a, vf b, vf c) { for (int l = 0; l < L; ++l) c.v[l] += a.v[l] * b.v[l]; return c; }
#endif

// n floats (n <= L) into a vector, zeros past n; and back.
RS_SB_INLINE vf vload_n(const float* p, int n) {
  if (n == L) return vload(p);
  alignas(64) float buf[L] = {};
  std::memcpy(buf, p, sizeof(float) * n);
  return vload(buf);
}
RS_SB_INLINE void vstore_n(float* p, vf v, int n) {
  if (n == L) { vstore(p, v); return; }
  alignas(64) float buf[L];
  vstore(buf, v);
  std::memcpy(p, buf, sizeof(float) * n);
}

// One step of units u0 .. u0+n-1 (one packed block) for batch rows b0 .. b0+NB-1:
//     z = b + x_t @ W_ih^T + h_{t-1} @ W_hh^T  (in registers; the block's weights once for all NB rows)
//     i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g);  c = f * c_prev + i * g;  h = o * tanh(c)
// the same equations as pointwise.cpp's lstm_step_f32, each stage over all NB rows before the next
// (independent activations side by side rather than one row's dependent chain after another).
// x rows: x + b * xs_b (x_t of row b), F floats each; h_{t-1} rows U apart from hprev.
template <int NB, bool Pin>
RS_SB_INLINE void block_step(const float* wp, const float* bias, const float* x, int64_t xs_b, int64_t F,
                             const float* hprev, const float* cp, float* h, float* c, float* const* gates,
                             int64_t gofs, int64_t b0, int64_t U, int64_t u0, int n) {
  constexpr int S = NB <= 2 ? 2 : 1;
  vf a[S][NG][NB];
  for (int g = 0; g < NG; ++g)
    for (int r = 0; r < NB; ++r) {
      a[0][g][r] = vload(bias + g * L);
      if (S == 2) a[S - 1][g][r] = vzero();
    }
  accumulate<NB, S, Pin>(a, wp, hprev + b0 * U, U, U);               // h_{t-1} @ W_hh^T
  accumulate<NB, S, Pin>(a, wp + U * NG * L, x + b0 * xs_b, xs_b, F); // x_t @ W_ih^T
  if (S == 2)
    for (int g = 0; g < NG; ++g)
      for (int r = 0; r < NB; ++r) a[0][g][r] = a[0][g][r] + a[S - 1][g][r];
  vf gi[NB], gf[NB], gg[NB], go[NB], ct[NB];
  for (int r = 0; r < NB; ++r) {
    gi[r] = vsigmoid(a[0][0][r]);
    gf[r] = vsigmoid(a[0][1][r]);
    gg[r] = vtanh(a[0][2][r]);
    go[r] = vsigmoid(a[0][3][r]);
  }
  for (int r = 0; r < NB; ++r) {
    const int64_t o = (b0 + r) * U + u0;
    ct[r] = vmuladd(gf[r], vload_n(cp + o, n), vmul(gi[r], gg[r]));
    vstore_n(c + o, ct[r], n);
  }
  for (int r = 0; r < NB; ++r) vstore_n(h + (b0 + r) * U + u0, vmul(go[r], vtanh(ct[r])), n);
  if (gates != nullptr)
    for (int r = 0; r < NB; ++r) {
      const int64_t o = gofs + (b0 + r) * U + u0;
      vstore_n(gates[0] + o, gi[r], n); vstore_n(gates[1] + o, gf[r], n);
      vstore_n(gates[2] + o, gg[r], n); vstore_n(gates[3] + o, go[r], n);
    }
}

// ---- GRU (reset_after=True; torch's gate order r, z, n) ----------------------------------------------------
// A packed GRU block: for k < U the 3 gates' 16 weights of W_hh (r, z, n), for k < F those of W_ih, then 4
// bias vectors: b_ir + b_hr, b_iz + b_hz, b_in, b_hn.
constexpr int GG = 3;

// a[s][slot][r] += sum_k wp[k][g][:] * src_r[k], gate g (r, z, n) into slot g, except n into slot Sn (the
// x part of n and the h part stay apart: n = tanh(x_n + r * (h_n + b_hn))). Pin: as accumulate's.
template <int NB, int S, bool Pin, int Sn>
RS_SB_INLINE void accumulate_gru(vf (&a)[S][4][NB], const float* __restrict wp, const float* __restrict src,
                                 int64_t ld, int64_t K) {
  int64_t k = 0;
  for (; k + S <= K; k += S) {
    for (int s = 0; s < S; ++s) {
      const float* w = wp + (k + s) * (GG * L);
      vf w0 = vload(w), w1 = vload(w + L), w2 = vload(w + 2 * L);
#ifdef RS_SB_X86_DISPATCH
      if constexpr (Pin) asm("" : "+v"(w0), "+v"(w1), "+v"(w2));
#endif
      for (int r = 0; r < NB; ++r) {
        const float hk = src[r * ld + k + s];
        a[s][0][r] = vfma(w0, hk, a[s][0][r]);
        a[s][1][r] = vfma(w1, hk, a[s][1][r]);
        a[s][Sn][r] = vfma(w2, hk, a[s][Sn][r]);
      }
    }
  }
  for (; k < K; ++k) {
    const float* w = wp + k * (GG * L);
    for (int r = 0; r < NB; ++r) {
      const float hk = src[r * ld + k];
      a[0][0][r] = vfma(vload(w), hk, a[0][0][r]);
      a[0][1][r] = vfma(vload(w + L), hk, a[0][1][r]);
      a[0][Sn][r] = vfma(vload(w + 2 * L), hk, a[0][Sn][r]);
    }
  }
}

// One GRU step of units u0 .. u0+n-1 for rows b0 .. b0+NB-1 (GRUCell.recurrent_step, reset_after=True):
//     r = sigmoid(x_r + h_r);  z = sigmoid(x_z + h_z);  n = tanh(x_n + r * (h_n + b_hn))
//     h_t = z * h_{t-1} + (1 - z) * n
// with x_* = x_t @ W_i*^T + b_i* and h_* = h_{t-1} @ W_h*^T (+ b_h* for r, z). Writes the gates z, r, n
// (gates[0..2]) and h_{t-1} @ W_hn^T (ghn, training) when not null.
template <int NB, bool Pin>
RS_SB_INLINE void gru_block_step(const float* wp, const float* bias, const float* x, int64_t xs_b, int64_t F,
                                 const float* hprev, float* h, float* const* gates, float* ghn, int64_t gofs,
                                 int64_t b0, int64_t U, int64_t u0, int n) {
  constexpr int S = NB <= 2 ? 2 : 1;
  vf a[S][4][NB];
  for (int g = 0; g < 4; ++g)
    for (int r = 0; r < NB; ++r) {
      a[0][g][r] = g < 3 ? vload(bias + g * L) : vzero();
      if (S == 2) a[S - 1][g][r] = vzero();
    }
  accumulate_gru<NB, S, Pin, 3>(a, wp, hprev + b0 * U, U, U);                 // h_{t-1} @ W_hh^T
  accumulate_gru<NB, S, Pin, 2>(a, wp + U * GG * L, x + b0 * xs_b, xs_b, F);  // x_t @ W_ih^T
  if (S == 2)
    for (int g = 0; g < 4; ++g)
      for (int r = 0; r < NB; ++r) a[0][g][r] = a[0][g][r] + a[S - 1][g][r];
  const vf bhn = vload(bias + 3 * L);
  vf gr[NB], gz[NB], gn[NB];
  for (int r = 0; r < NB; ++r) {
    gr[r] = vsigmoid(a[0][0][r]);
    gz[r] = vsigmoid(a[0][1][r]);
  }
  for (int r = 0; r < NB; ++r) gn[r] = vtanh(a[0][2][r] + vmul(gr[r], a[0][3][r] + bhn));
  for (int r = 0; r < NB; ++r) {
    const int64_t o = (b0 + r) * U + u0;
    const vf hp = vload_n(hprev + o, n);
    vstore_n(h + o, vmuladd(gz[r], hp, vmul(1.0f - gz[r], gn[r])), n);
  }
  if (gates != nullptr)
    for (int r = 0; r < NB; ++r) {
      const int64_t o = gofs + (b0 + r) * U + u0;
      vstore_n(gates[0] + o, gz[r], n); vstore_n(gates[1] + o, gr[r], n); vstore_n(gates[2] + o, gn[r], n);
    }
  if (ghn != nullptr)
    for (int r = 0; r < NB; ++r) vstore_n(ghn + gofs + (b0 + r) * U + u0, a[0][3][r], n);
}

}  // namespace

namespace rnnstate_ext {

int64_t lstm_small_packed_floats(int64_t U, int64_t F) { return (U + L - 1) / L * (U + F + 1) * NG * L; }

void lstm_small_pack_f32(const float* w_ih, const float* w_hh, const float* b, int64_t U, int64_t F,
                         float* packed) {
  const int64_t nblk = (U + L - 1) / L, K = U + F;
  std::memset(packed, 0, sizeof(float) * lstm_small_packed_floats(U, F));   // the units past U stay zero
  for (int64_t j = 0; j < nblk; ++j) {
    float* blk = packed + j * (K + 1) * NG * L;
    const int n = static_cast<int>(std::min<int64_t>(L, U - j * L));
    for (int g = 0; g < NG; ++g)
      for (int l = 0; l < n; ++l) {            // one weight row (unit j*L + l of gate g): k < U, then U <= k < K
        const int64_t row = g * U + j * L + l;
        float* dst = blk + g * L + l;
        const float* wh = w_hh + row * U;
        const float* wi = w_ih + row * F;
        for (int64_t k = 0; k < U; ++k) dst[k * NG * L] = wh[k];
        for (int64_t k = 0; k < F; ++k) dst[(U + k) * NG * L] = wi[k];
        if (b != nullptr) dst[K * NG * L] = b[row];
      }
  }
}

}  // namespace rnnstate_ext

namespace {

template <bool Pin>
RS_SB_INLINE void steps_impl(const float* packed, const float* x, int64_t xs_b, int64_t xs_t, const float* h0,
                             const float* c0, int64_t T, int64_t B, int64_t U, int64_t F, float* out, float* cseq,
                             float* cbuf, float* const* gates) {
  const int64_t BU = B * U, nblk = (U + L - 1) / L, blk = (U + F + 1) * NG * L;
  // batch rows in groups of at most kRowsPerGroup, as even as possible (B=6: 3+3, B=5: 3+2)
  const int64_t ngroups = (B + kRowsPerGroup - 1) / kRowsPerGroup;
  for (int64_t t = 0; t < T; ++t) {
    const float* hprev = t == 0 ? h0 : out + (t - 1) * BU;
    const float* cp = t == 0 ? c0 : (cseq ? cseq + (t - 1) * BU : cbuf + ((t - 1) & 1) * BU);
    float* c = cseq ? cseq + t * BU : cbuf + (t & 1) * BU;
    float* h = out + t * BU;
    const float* xt = x + t * xs_t;
    for (int64_t j = 0; j < nblk; ++j) {
      const float* wp = packed + j * blk;
      const float* bias = wp + (U + F) * NG * L;
      const int64_t u0 = j * L;
      const int n = static_cast<int>(std::min<int64_t>(L, U - u0));
      for (int64_t q = 0, b0 = 0; q < ngroups; ++q) {
        const int64_t nb = (B - b0) / (ngroups - q) + ((B - b0) % (ngroups - q) != 0);
        switch (nb) {
#define RS_SB_CASE(NB) block_step<NB, Pin>(wp, bias, xt, xs_b, F, hprev, cp, h, c, gates, t * BU, b0, U, u0, n); break;
          case 1: RS_SB_CASE(1)
          case 2: RS_SB_CASE(2)
          case 3: RS_SB_CASE(3)
          default: RS_SB_CASE(4)
#undef RS_SB_CASE
        }
        b0 += nb;
      }
    }
  }
}

template <bool Pin>
RS_SB_INLINE void gru_steps_impl(const float* packed, const float* x, int64_t xs_b, int64_t xs_t, const float* h0,
                                 int64_t T, int64_t B, int64_t U, int64_t F, float* out, float* const* gates,
                                 float* ghn) {
  const int64_t BU = B * U, nblk = (U + L - 1) / L, blk = (U + F) * GG * L + 4 * L;
  const int64_t ngroups = (B + kRowsPerGroup - 1) / kRowsPerGroup;
  for (int64_t t = 0; t < T; ++t) {
    const float* hprev = t == 0 ? h0 : out + (t - 1) * BU;
    float* h = out + t * BU;
    const float* xt = x + t * xs_t;
    for (int64_t j = 0; j < nblk; ++j) {
      const float* wp = packed + j * blk;
      const float* bias = wp + (U + F) * GG * L;
      const int64_t u0 = j * L;
      const int n = static_cast<int>(std::min<int64_t>(L, U - u0));
      for (int64_t q = 0, b0 = 0; q < ngroups; ++q) {
        const int64_t nb = (B - b0) / (ngroups - q) + ((B - b0) % (ngroups - q) != 0);
        switch (nb) {
#define RS_SB_CASE(NB) gru_block_step<NB, Pin>(wp, bias, xt, xs_b, F, hprev, h, gates, ghn, t * BU, b0, U, u0, n); break;
          case 1: RS_SB_CASE(1)
          case 2: RS_SB_CASE(2)
          case 3: RS_SB_CASE(3)
          default: RS_SB_CASE(4)
#undef RS_SB_CASE
        }
        b0 += nb;
      }
    }
  }
}

#define RS_SB_GRU_ARGS packed, x, xs_b, xs_t, h0, T, B, U, F, out, gates, ghn
#define RS_SB_GRU_PARAMS                                                                                        \
  const float *packed, const float *x, int64_t xs_b, int64_t xs_t, const float *h0, int64_t T, int64_t B,     \
      int64_t U, int64_t F, float *out, float *const *gates, float *ghn

#define RS_SB_ARGS packed, x, xs_b, xs_t, h0, c0, T, B, U, F, out, cseq, cbuf, gates
#define RS_SB_PARAMS                                                                                            \
  const float *packed, const float *x, int64_t xs_b, int64_t xs_t, const float *h0, const float *c0, int64_t T, \
      int64_t B, int64_t U, int64_t F, float *out, float *cseq, float *cbuf, float *const *gates

#ifdef RS_SB_X86_DISPATCH
__attribute__((target("arch=x86-64-v4"))) void steps_avx512(RS_SB_PARAMS) { steps_impl<true>(RS_SB_ARGS); }
__attribute__((target_clones("arch=x86-64-v3", "default"))) void steps_generic(RS_SB_PARAMS) {
  steps_impl<false>(RS_SB_ARGS);
}
__attribute__((target("arch=x86-64-v4"))) void gru_steps_avx512(RS_SB_GRU_PARAMS) {
  gru_steps_impl<true>(RS_SB_GRU_ARGS);
}
__attribute__((target_clones("arch=x86-64-v3", "default"))) void gru_steps_generic(RS_SB_GRU_PARAMS) {
  gru_steps_impl<false>(RS_SB_GRU_ARGS);
}
// What the AVX-512 build needs (x86-64-v4: AVX-512 F, BW, CD, DQ, VL).
bool cpu_has_v4() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}
// RNNSTATE_SMALL_BATCH=generic: the portable build even here (tests of that build on an AVX-512 CPU).
bool use_v4() {
  const char* env = std::getenv("RNNSTATE_SMALL_BATCH");
  return cpu_has_v4() && !(env != nullptr && std::strcmp(env, "generic") == 0);
}
const bool kHasV4 = use_v4();
#endif

}  // namespace

namespace rnnstate_ext {

const char* small_batch_isa() {
#ifdef RS_SB_X86_DISPATCH
  if (kHasV4) return "avx512";
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "avx2" : "generic";
#else
  return "generic";
#endif
}

void lstm_small_steps_f32(RS_SB_PARAMS) {
#ifdef RS_SB_X86_DISPATCH
  if (kHasV4) return steps_avx512(RS_SB_ARGS);
  return steps_generic(RS_SB_ARGS);
#else
  steps_impl<false>(RS_SB_ARGS);
#endif
}

int64_t gru_small_packed_floats(int64_t U, int64_t F) { return (U + L - 1) / L * ((U + F) * GG * L + 4 * L); }

void gru_small_pack_f32(const float* w_ih, const float* w_hh, const float* b_ih, const float* b_hh, int64_t U,
                        int64_t F, float* packed) {
  const int64_t nblk = (U + L - 1) / L, K = U + F, blk = K * GG * L + 4 * L;
  std::memset(packed, 0, sizeof(float) * gru_small_packed_floats(U, F));   // the units past U stay zero
  for (int64_t j = 0; j < nblk; ++j) {
    float* wb = packed + j * blk;
    const int n = static_cast<int>(std::min<int64_t>(L, U - j * L));
    for (int g = 0; g < GG; ++g)
      for (int l = 0; l < n; ++l) {
        const int64_t row = g * U + j * L + l;
        float* dst = wb + g * L + l;
        for (int64_t k = 0; k < U; ++k) dst[k * GG * L] = w_hh[row * U + k];
        for (int64_t k = 0; k < F; ++k) dst[(U + k) * GG * L] = w_ih[row * F + k];
        float* bias = wb + K * GG * L;         // b_ir + b_hr, b_iz + b_hz, b_in, b_hn
        const float bi = b_ih ? b_ih[row] : 0.0f, bh = b_hh ? b_hh[row] : 0.0f;
        if (g < 2) bias[g * L + l] = bi + bh;
        else { bias[2 * L + l] = bi; bias[3 * L + l] = bh; }
      }
  }
}

void gru_small_steps_f32(RS_SB_GRU_PARAMS) {
#ifdef RS_SB_X86_DISPATCH
  if (kHasV4) return gru_steps_avx512(RS_SB_GRU_ARGS);
  return gru_steps_generic(RS_SB_GRU_ARGS);
#else
  gru_steps_impl<false>(RS_SB_GRU_ARGS);
#endif
}

}  // namespace rnnstate_ext
