// rnnstate._ext._C: inference-only LSTM and GRU (reset_after=True) time loops that also write the
// cell-state and gate sequences (torch's fused RNN ops expose only the h sequence). The GRU loop
// (gru_loop, below) has the same structure as the LSTM's described here.
//
// Per chunk of steps: one GEMM for the input part of every gate of every step of the chunk,
// xw = x @ W_ih^T + b_ih, time-major (steps, B, 4U). Per step t: one BLAS call adds h_{t-1} @ W_hh^T
// into xw[t] in place (B = 1: an in-house matrix-vector product), then ONE pointwise pass (parallel
// over B*U) computes i, f, g, o, c_t, h_t and writes h_t, c_t (and the gates) straight into the
// time-major (T, B, U) outputs, returned as (B, T, U) transposed views like torch.lstm's. h_{t-1} is
// the previous block of the output sequence: no per-step copies. Same equations as
// LSTMCell.recurrent_step:
//     z = xw_t + h_{t-1} @ W_hh^T;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
//     c_t = f * c_{t-1} + i * g;    h_t = o * tanh(c_t)
// go_backwards is the caller's business (it passes x already flipped).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "pointwise.h"

#include "blas.h"
#include "gemm.h"
#include "kernels.h"
#include "loops.h"
#include "small_batch.h"

namespace {

inline void step(const float* z, int64_t U, const float* cp, float* h, float* c, float* gi, float* gf,
                 float* gg, float* go, int64_t n) { rnnstate_ext::lstm_step_f32(z, U, cp, h, c, gi, gf, gg, go, n); }
inline void step(const double* z, int64_t U, const double* cp, double* h, double* c, double* gi,
                 double* gf, double* gg, double* go, int64_t n) { rnnstate_ext::lstm_step_f64(z, U, cp, h, c, gi, gf, gg, go, n); }
inline void gru_step(const float* xw, const float* gh, const float* bhh, int64_t U, const float* hp, float* h,
                     float* gz, float* gr, float* gn, int64_t n) {
  rnnstate_ext::gru_step_f32(xw, gh, bhh, U, hp, h, gz, gr, gn, n);
}
inline void gru_step(const double* xw, const double* gh, const double* bhh, int64_t U, const double* hp,
                     double* h, double* gz, double* gr, double* gn, int64_t n) {
  rnnstate_ext::gru_step_f64(xw, gh, bhh, U, hp, h, gz, gr, gn, n);
}

// SimpleRNN pointwise over the flat (B, U) range [begin, begin + n): b_hh is indexed by unit.
inline void rnn_step(float* z, const float* bhh, int64_t n, bool relu, int64_t U, int64_t begin) {
  for (int64_t idx = begin, k = 0; k < n;) {               // row segments, so b_hh lines up with units
    const int64_t u0 = idx % U, m = std::min(U - u0, n - k);
    rnnstate_ext::rnn_step_f32(z + k, bhh ? bhh + u0 : nullptr, m, relu);
    idx += m; k += m;
  }
}
inline void rnn_step(double* z, const double* bhh, int64_t n, bool relu, int64_t U, int64_t begin) {
  for (int64_t idx = begin, k = 0; k < n;) {
    const int64_t u0 = idx % U, m = std::min(U - u0, n - k);
    rnnstate_ext::rnn_step_f64(z + k, bhh ? bhh + u0 : nullptr, m, relu);
    idx += m; k += m;
  }
}

// z (B, G) row-major, contiguous  +=  h (B, U), row stride ldh  @  W^T, W (G, U) contiguous
// (acc = false: z = h @ W^T, z's old contents ignored).
template <typename T>
struct RecurrentGemm {
  const at::Tensor& w;
  int B, G, U;
#ifndef RNNSTATE_DIRECT_BLAS
  at::Tensor w_t = w.t();
#endif
  // steps: how many times add() will run. From 2 steps (float32, AVX-512) W^T is packed once for the
  // small GEMM of gemm.h, which beats re-packing sgemm calls.
  at::Tensor packed;
  RecurrentGemm(const at::Tensor& w_, int64_t B_, int64_t steps = 1)
      : w(w_), B(B_), G(w_.size(0)), U(w_.size(1)) {
    if constexpr (std::is_same_v<T, float>) {
      if (steps > 1 && rnnstate_ext::fast_gemm_available()) {
        packed = at::empty({rnnstate_ext::packed_size(G, U)}, w.options());
        rnnstate_ext::pack_right(w.data_ptr<float>(), G, U, /*trans=*/true, packed.data_ptr<float>());
      }
    }
  }
  void add(const T* h, int64_t ldh, T* z, bool acc = true) {
    if constexpr (std::is_same_v<T, float>) {
      if (packed.defined()) {
        rnnstate_ext::gemm_packed(B, G, U, h, ldh, packed.data_ptr<float>(), z, G, acc,
                                  rnnstate_ext::kParallelStepMacs);
        return;
      }
    }
#ifdef RNNSTATE_DIRECT_BLAS
    // column-major view: z^T (G, B) += W (G, U; stored as (U, G) col-major, so "T") @ h^T (U, B)
    const T one = 1, beta = acc ? 1 : 0;
    const int ld = static_cast<int>(ldh), inc = 1;
    if (B == 1) {         // streaming / single sequence: a matrix-vector product
      if constexpr (std::is_same_v<T, float>) {
        if (!acc) std::memset(z, 0, sizeof(T) * G);
        rnnstate_ext::matvec_add_f32(w.data_ptr<T>(), G, U, h, z);
      } else {
        dgemv_("T", &U, &G, &one, w.data_ptr<T>(), &U, h, &inc, &beta, z, &inc);
      }
    } else if constexpr (std::is_same_v<T, float>) {
      sgemm_("T", "N", &G, &B, &U, &one, w.data_ptr<T>(), &U, h, &ld, &beta, z, &G);
    } else {
      dgemm_("T", "N", &G, &B, &U, &one, w.data_ptr<T>(), &U, h, &ld, &beta, z, &G);
    }
#else
    auto opt = w.options();
    at::Tensor zt = at::from_blob(z, {B, G}, opt);
    at::Tensor ht = at::from_blob(const_cast<T*>(h), {B, U}, {ldh, 1}, opt);
    if (acc) at::addmm_out(zt, zt, ht, w_t);
    else at::mm_out(zt, ht, w_t);
#endif
  }
};

using rnnstate_ext::pointwise_pass;
using rnnstate_ext::project_inputs;

// Steps per chunk of the input projection: its buffer stays small (reused from the heap rather than
// freshly mapped, and still in cache when the steps read it) while its GEMM stays large.
constexpr int64_t kChunkElems = int64_t(1) << 16;

// Whether lstm_sequence runs a float32 call on the small-batch loop (small_batch.h): batch and units within
// the measured range, on a CPU with AVX-512, where the range was measured (elsewhere the general loop keeps
// running). RNNSTATE_SMALL_BATCH (read once): "0" never; "1" also without AVX-512; "generic" also, and with
// the loop's portable build even on an AVX-512 CPU (small_batch.cpp; for tests of that build).
bool small_batch_loop(int64_t B, int64_t Tn, int64_t U) {
  static const bool enabled = [] {
    const char* env = std::getenv("RNNSTATE_SMALL_BATCH");
    const std::string v = env ? env : "";
    if (v == "0") return false;
    return v == "1" || v == "generic" || std::strcmp(rnnstate_ext::small_batch_isa(), "avx512") == 0;
  }();
  return enabled && B <= rnnstate_ext::kSmallBatchMax && U <= rnnstate_ext::kSmallBatchMaxUnits &&
         B * Tn >= rnnstate_ext::kSmallBatchMinRowSteps;
}

// All sequences time-major, (T, B, U): each step reads and writes contiguous (B, U) blocks, and
// h_{t-1} for the GEMM is the previous block of the output sequence. x2 is x time-major, (T*B, F).
template <typename T>
void lstm_loop(const at::Tensor& x2, const at::Tensor& w_ih, const c10::optional<at::Tensor>& b_ih,
               const at::Tensor& w_hh, const T* h0, const T* c0, int64_t Tn, int64_t B, int64_t U, T* out,
               T* cseq, T* cbuf, T* const* gates) {
  const int64_t G = 4 * U, BU = B * U;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(Tn, kChunkElems / (B * G)));
  at::Tensor xw = at::empty({chunk * B, G}, x2.options());
  const at::Tensor w_ih_t = w_ih.t();
  RecurrentGemm<T> gemm(w_hh, B, Tn);
  for (int64_t t0 = 0; t0 < Tn; t0 += chunk) {
    const int64_t n_steps = std::min(chunk, Tn - t0);
    at::Tensor xw_c = xw.narrow(0, 0, n_steps * B);
    project_inputs(xw_c, x2, t0 * B, n_steps * B, b_ih, w_ih_t);   // x_t @ W_ih^T + b_ih, n_steps steps
    T* xw_p = xw_c.data_ptr<T>();
    rnnstate_ext::StepThreads threads(B * G * U);                // no per-step fork/join on small steps
    for (int64_t t = t0; t < t0 + n_steps; ++t) {
      T* z = xw_p + (t - t0) * B * G;                          // (B, 4U)
      gemm.add(t == 0 ? h0 : out + (t - 1) * BU, U, z);       // z += h_{t-1} @ W_hh^T
      const T* cp = t == 0 ? c0 : (cseq ? cseq + (t - 1) * BU : cbuf + ((t - 1) & 1) * BU);
      T* cc = cseq ? cseq + t * BU : cbuf + (t & 1) * BU;
      T* h = out + t * BU;
      const int64_t o = t * BU;
      auto body = [&](int64_t begin, int64_t end) {
        for (int64_t idx = begin; idx < end;) {               // row segments of the flat (B, U) range
          const int64_t b = idx / U, u0 = idx % U, n = std::min(U - u0, end - idx);
          if (gates) {
            step(z + b * G + u0, U, cp + idx, h + idx, cc + idx, gates[0] + o + idx, gates[1] + o + idx,
                 gates[2] + o + idx, gates[3] + o + idx, n);
          } else {
            step(z + b * G + u0, U, cp + idx, h + idx, cc + idx, nullptr, nullptr, nullptr, nullptr, n);
          }
          idx += n;
        }
      };
      pointwise_pass(BU, body);
    }
  }
}

// lstm_loop's float32 small-batch form (small_batch.h): W_ih, W_hh and b_ih packed once per call (2-5% of
// the call at T=100), then ONE pass per step over the packed weights does the input projection, the
// recurrent product and the gate math, straight from x (B, T, F) (last axis contiguous).
void lstm_small(const at::Tensor& x, const at::Tensor& w_ih, const c10::optional<at::Tensor>& b_ih,
                const at::Tensor& w_hh, const float* h0, const float* c0, int64_t Tn, int64_t B, int64_t U,
                float* out, float* cseq, float* cbuf, float* const* gates) {
  const int64_t F = x.size(2);
  const bool bias = b_ih.has_value() && b_ih->defined();
  const at::Tensor b = bias ? b_ih->contiguous() : at::Tensor();
  at::Tensor packed = at::empty({rnnstate_ext::lstm_small_packed_floats(U, F)}, x.options());
  rnnstate_ext::lstm_small_pack_f32(w_ih.data_ptr<float>(), w_hh.data_ptr<float>(), bias ? b.data_ptr<float>() : nullptr,
                                    U, F, packed.data_ptr<float>());
  const at::Tensor xc = x.stride(2) == 1 ? x : x.contiguous();
  rnnstate_ext::lstm_small_steps_f32(packed.data_ptr<float>(), xc.data_ptr<float>(), xc.stride(0), xc.stride(1), h0, c0,
                                     Tn, B, U, F, out, cseq, cbuf, gates);
}

// x (B, T, F); h0, c0 (B, U); w_ih (4U, F); w_hh (4U, U); b_ih (4U,) or None.
// Returns [outputs (B, T, U), h_T (B, U), c_T (B, U), c_seq (B, T, U) or None] + ([i, f, g, o], each
// (B, T, U), when want_gates). The sequences are transposed views of time-major storage, as
// torch.lstm's batch_first output is.
std::vector<c10::optional<at::Tensor>> lstm_sequence(const at::Tensor& x, const at::Tensor& h0_,
                                                     const at::Tensor& c0_, const at::Tensor& w_ih_,
                                                     const at::Tensor& w_hh_, const c10::optional<at::Tensor>& b_ih,
                                                     bool want_c, bool want_gates) {
  TORCH_CHECK(x.dim() == 3, "x must be (B, T, F)");
  TORCH_CHECK(x.device().is_cpu(), "the compiled LSTM kernel is CPU-only");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "float32 or float64 only");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = w_hh_.size(1);
  TORCH_CHECK(w_hh_.size(0) == 4 * U && w_ih_.size(0) == 4 * U && w_ih_.size(1) == F, "weight shapes");
  TORCH_CHECK(h0_.sizes() == at::IntArrayRef({B, U}) && c0_.sizes() == at::IntArrayRef({B, U}), "state shapes");
  for (const at::Tensor* t : {&h0_, &c0_, &w_ih_, &w_hh_})
    TORCH_CHECK(t->scalar_type() == x.scalar_type() && t->device().is_cpu(), "dtype/device mismatch");
  if (b_ih.has_value() && b_ih->defined())
    TORCH_CHECK(b_ih->scalar_type() == x.scalar_type() && b_ih->numel() == 4 * U, "bias");
  TORCH_CHECK(B * 4 * U < (int64_t(1) << 31) && U < (int64_t(1) << 31), "too large for 32-bit BLAS");
  const auto opt = x.options();
  const at::Tensor w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const at::Tensor h0 = h0_.contiguous(), c0 = c0_.contiguous();
  at::Tensor out = at::empty({Tn, B, U}, opt);
  c10::optional<at::Tensor> cseq_t, gates_t;
  at::Tensor cbuf;
  if (want_c) cseq_t = at::empty({Tn, B, U}, opt);
  else cbuf = at::empty({2, B, U}, opt);
  std::vector<at::Tensor> gate_ts;     // four tensors rather than one (4, T, B, U): smaller allocations
  if (want_gates)
    for (int k = 0; k < 4; ++k) gate_ts.push_back(at::empty({Tn, B, U}, opt));
  if (Tn > 0 && B > 0 && x.scalar_type() == at::kFloat && small_batch_loop(B, Tn, U)) {
    float* gp[4] = {nullptr, nullptr, nullptr, nullptr};
    for (size_t k = 0; k < gate_ts.size(); ++k) gp[k] = gate_ts[k].data_ptr<float>();
    lstm_small(x, w_ih, b_ih, w_hh, h0.data_ptr<float>(), c0.data_ptr<float>(), Tn, B, U, out.data_ptr<float>(),
               want_c ? cseq_t->data_ptr<float>() : nullptr, want_c ? nullptr : cbuf.data_ptr<float>(),
               want_gates ? gp : nullptr);
  } else if (Tn > 0 && B > 0) {    // B = 0: the empty outputs are the result (the chunk size divides by B)
    const at::Tensor x2 = x.transpose(0, 1).reshape({Tn * B, F});
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_lstm_sequence", [&] {
      scalar_t* gp[4] = {nullptr, nullptr, nullptr, nullptr};
      for (size_t k = 0; k < gate_ts.size(); ++k) gp[k] = gate_ts[k].data_ptr<scalar_t>();
      lstm_loop<scalar_t>(x2, w_ih, b_ih, w_hh, h0.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(), Tn, B, U,
                          out.data_ptr<scalar_t>(), want_c ? cseq_t->data_ptr<scalar_t>() : nullptr,
                          want_c ? nullptr : cbuf.data_ptr<scalar_t>(), want_gates ? gp : nullptr);
    });
  }
  at::Tensor hT = Tn > 0 ? out.select(0, Tn - 1).clone() : h0.clone();
  at::Tensor cT = Tn == 0 ? c0.clone() : want_c ? cseq_t->select(0, Tn - 1).clone() : cbuf.select(0, (Tn - 1) & 1).clone();
  if (want_c) cseq_t = cseq_t->transpose(0, 1);
  std::vector<c10::optional<at::Tensor>> res = {out.transpose(0, 1), hT, cT, cseq_t};
  for (auto& g : gate_ts) res.push_back(g.transpose(0, 1));
  return res;
}

// One step's x as (B, F): a (B, 1, F) step (what a Keras user passes) loses its time axis here, a view.
at::Tensor step_x(const at::Tensor& x) { return x.dim() == 3 && x.size(1) == 1 ? x.select(1, 0) : x; }

// One LSTM step for streaming, at the least per-call cost: x (B, F) or (B, 1, F), h, c (B, U) -> (h', c').
// z starts as the bias, then z += x @ W_ih^T and z += h @ W_hh^T (matrix-vector products at B = 1), then
// the loop's own pointwise pass. Same numbers as lstm_sequence over one step.

std::vector<at::Tensor> lstm_step(const at::Tensor& x_in, const at::Tensor& h_, const at::Tensor& c_,
                                  const at::Tensor& w_ih_, const at::Tensor& w_hh_,
                                  const c10::optional<at::Tensor>& b_ih) {
  const at::Tensor x_ = step_x(x_in);
  TORCH_CHECK(x_.dim() == 2 && x_.device().is_cpu(), "x must be a (B, F) or (B, 1, F) CPU tensor");
  TORCH_CHECK(x_.scalar_type() == at::kFloat || x_.scalar_type() == at::kDouble, "float32 or float64 only");
  const int64_t B = x_.size(0), F = x_.size(1), U = w_hh_.size(1), G = 4 * U;
  TORCH_CHECK(w_hh_.size(0) == G && w_ih_.sizes() == at::IntArrayRef({G, F}), "weight shapes");
  TORCH_CHECK(h_.sizes() == at::IntArrayRef({B, U}) && c_.sizes() == at::IntArrayRef({B, U}), "state shapes");
  for (const at::Tensor* t : {&h_, &c_, &w_ih_, &w_hh_})
    TORCH_CHECK(t->scalar_type() == x_.scalar_type() && t->device().is_cpu(), "dtype/device mismatch");
  const bool bias = b_ih.has_value() && b_ih->defined();
  if (bias) TORCH_CHECK(b_ih->scalar_type() == x_.scalar_type() && b_ih->numel() == G, "bias");
  TORCH_CHECK(B * G < (int64_t(1) << 31), "too large for 32-bit BLAS");
  const at::Tensor x = x_.contiguous(), h = h_.contiguous(), c = c_.contiguous();
  const at::Tensor w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const auto opt = x.options();
  at::Tensor z = at::empty({B, G}, opt), h1 = at::empty({B, U}, opt), c1 = at::empty({B, U}, opt);
  if (B == 0) return {h1, c1};
  rnnstate_ext::StepThreads threads(B * G * (F + U));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_lstm_step", [&] {
    scalar_t* zp = z.data_ptr<scalar_t>();
    if (bias) {
      const at::Tensor b = b_ih->contiguous();
      for (int64_t r = 0; r < B; ++r) std::memcpy(zp + r * G, b.data_ptr<scalar_t>(), sizeof(scalar_t) * G);
    }
    RecurrentGemm<scalar_t> gx(w_ih, B), gh(w_hh, B);
    gx.add(x.data_ptr<scalar_t>(), F, zp, /*acc=*/bias);
    gh.add(h.data_ptr<scalar_t>(), U, zp);
    const scalar_t* cp = c.data_ptr<scalar_t>();
    scalar_t* hp = h1.data_ptr<scalar_t>();
    scalar_t* cc = c1.data_ptr<scalar_t>();
    for (int64_t r = 0; r < B; ++r)
      step(zp + r * G, U, cp + r * U, hp + r * U, cc + r * U, nullptr, nullptr, nullptr, nullptr, U);
  });
  return {h1, c1};
}

// The shared checks of the one-step ops: x (B, F) (after step_x) CPU float32/float64, h (B, U), weights
// (G, F) and (G, U), biases (G,) or None, all of x's dtype. Returns B.
int64_t check_step(const char* name, const at::Tensor& x, const at::Tensor& h, const at::Tensor& w_ih,
                   const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_ih,
                   const c10::optional<at::Tensor>& b_hh, int64_t n_gates) {
  TORCH_CHECK(x.dim() == 2 && x.device().is_cpu(), name, ": x must be a (B, F) or (B, 1, F) CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, name, ": float32 or float64 only");
  const int64_t B = x.size(0), F = x.size(1), U = w_hh.size(1), G = n_gates * U;
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == G && w_ih.sizes() == at::IntArrayRef({G, F}), name, ": weight shapes");
  TORCH_CHECK(h.sizes() == at::IntArrayRef({B, U}), name, ": state shape");
  for (const at::Tensor* t : {&h, &w_ih, &w_hh})
    TORCH_CHECK(t->scalar_type() == x.scalar_type() && t->device().is_cpu(), name, ": dtype/device mismatch");
  for (const c10::optional<at::Tensor>* b : {&b_ih, &b_hh})
    if (b->has_value() && (*b)->defined())
      TORCH_CHECK((*b)->scalar_type() == x.scalar_type() && (*b)->device().is_cpu() && (*b)->numel() == G,
                  name, ": bias");
  TORCH_CHECK(B * G < (int64_t(1) << 31), name, ": too large for 32-bit BLAS");
  return B;
}

// z (B, G) = b (G,) per row (or zeros without bias), then z += x @ W_ih^T: the input part of one step.
template <typename T>
void step_input(T* z, const c10::optional<at::Tensor>& b, const at::Tensor& x, const at::Tensor& w_ih,
                int64_t B, int64_t G) {
  const bool bias = b.has_value() && b->defined();
  if (bias) {
    const at::Tensor bc = b->contiguous();
    for (int64_t r = 0; r < B; ++r) std::memcpy(z + r * G, bc.data_ptr<T>(), sizeof(T) * G);
  }
  RecurrentGemm<T> gx(w_ih, B);
  gx.add(x.data_ptr<T>(), x.size(1), z, /*acc=*/bias);
}

// One GRU (reset_after=True) step for streaming: x (B, F) or (B, 1, F), h (B, U) -> h'.
// xw = x @ W_ih^T + b_ih and gh = h @ W_hh^T (matrix-vector products at B = 1), then the GRU loop's
// own pointwise pass (b_hh added there). Same numbers as gru_sequence over one step.
at::Tensor gru_step_fn(const at::Tensor& x_in, const at::Tensor& h_, const at::Tensor& w_ih_, const at::Tensor& w_hh_,
                       const c10::optional<at::Tensor>& b_ih, const c10::optional<at::Tensor>& b_hh) {
  const at::Tensor x_ = step_x(x_in);
  const int64_t B = check_step("gru_step", x_, h_, w_ih_, w_hh_, b_ih, b_hh, 3);
  const int64_t F = x_.size(1), U = w_hh_.size(1), G = 3 * U;
  const at::Tensor x = x_.contiguous(), h = h_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const auto opt = x.options();
  const at::Tensor bhh = (b_hh.has_value() && b_hh->defined()) ? b_hh->contiguous() : at::zeros({G}, opt);
  at::Tensor buf = at::empty({2, B, G}, opt), h1 = at::empty({B, U}, opt);     // xw, then gh
  if (B == 0) return h1;
  rnnstate_ext::StepThreads threads(B * G * (F + U));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_gru_step", [&] {
    scalar_t* xp = buf.data_ptr<scalar_t>();
    scalar_t* gp = xp + B * G;
    step_input<scalar_t>(xp, b_ih, x, w_ih, B, G);
    RecurrentGemm<scalar_t> gemm(w_hh, B);
    gemm.add(h.data_ptr<scalar_t>(), U, gp, /*acc=*/false);
    const scalar_t* hp = h.data_ptr<scalar_t>();
    const scalar_t* bp = bhh.data_ptr<scalar_t>();
    scalar_t* out = h1.data_ptr<scalar_t>();
    for (int64_t r = 0; r < B; ++r)
      gru_step(xp + r * G, gp + r * G, bp, U, hp + r * U, out + r * U, nullptr, nullptr, nullptr, U);
  });
  return h1;
}

// One SimpleRNN step for streaming: x (B, F) or (B, 1, F), h (B, U) -> h' = act(x @ W_ih^T + b_ih +
// h @ W_hh^T + b_hh), act tanh (or relu). Same numbers as rnn_sequence over one step.
at::Tensor rnn_step_fn(const at::Tensor& x_in, const at::Tensor& h_, const at::Tensor& w_ih_, const at::Tensor& w_hh_,
                       const c10::optional<at::Tensor>& b_ih, const c10::optional<at::Tensor>& b_hh, bool relu) {
  const at::Tensor x_ = step_x(x_in);
  const int64_t B = check_step("rnn_step", x_, h_, w_ih_, w_hh_, b_ih, b_hh, 1);
  const int64_t F = x_.size(1), U = w_hh_.size(1);
  const at::Tensor x = x_.contiguous(), h = h_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const bool has_bhh = b_hh.has_value() && b_hh->defined();
  const at::Tensor bhh = has_bhh ? b_hh->contiguous() : at::Tensor();
  at::Tensor h1 = at::empty({B, U}, x.options());
  if (B == 0) return h1;
  rnnstate_ext::StepThreads threads(B * U * (F + U));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_rnn_step", [&] {
    scalar_t* z = h1.data_ptr<scalar_t>();
    step_input<scalar_t>(z, b_ih, x, w_ih, B, U);
    RecurrentGemm<scalar_t> gemm(w_hh, B);
    gemm.add(h.data_ptr<scalar_t>(), U, z);
    rnn_step(z, has_bhh ? bhh.data_ptr<scalar_t>() : nullptr, B * U, relu, U, 0);
  });
  return h1;
}

// The GRU (reset_after=True) time loop, same layout as lstm_loop: G = 3U, torch's gate order r, z, n.
// Per step one BLAS call writes gh = h_{t-1} @ W_hh^T into a (B, 3U) buffer (b_hh is added in the
// pointwise pass: the n gate needs hn + b_hn apart from xn), then ONE pointwise pass writes h_t (and
// z, r, n) into the time-major outputs. Same equations as GRUCell.recurrent_step (reset_after=True).
template <typename T>
void gru_loop(const at::Tensor& x2, const at::Tensor& w_ih, const c10::optional<at::Tensor>& b_ih,
              const at::Tensor& w_hh, const T* bhh, const T* h0, int64_t Tn, int64_t B, int64_t U, T* out,
              T* const* gates, T* ghn_seq = nullptr) {
  const int64_t G = 3 * U, BU = B * U;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(Tn, kChunkElems / (B * G)));
  at::Tensor xw = at::empty({chunk * B, G}, x2.options());
  at::Tensor gh_t = at::empty({B, G}, x2.options());
  T* gh = gh_t.data_ptr<T>();
  const at::Tensor w_ih_t = w_ih.t();
  RecurrentGemm<T> gemm(w_hh, B, Tn);
  for (int64_t t0 = 0; t0 < Tn; t0 += chunk) {
    const int64_t n_steps = std::min(chunk, Tn - t0);
    at::Tensor xw_c = xw.narrow(0, 0, n_steps * B);
    project_inputs(xw_c, x2, t0 * B, n_steps * B, b_ih, w_ih_t);   // x_t @ W_ih^T + b_ih, n_steps steps
    T* xw_p = xw_c.data_ptr<T>();
    rnnstate_ext::StepThreads threads(B * G * U);                // no per-step fork/join on small steps
    for (int64_t t = t0; t < t0 + n_steps; ++t) {
      const T* xz = xw_p + (t - t0) * B * G;                   // (B, 3U)
      const T* hp = t == 0 ? h0 : out + (t - 1) * BU;
      gemm.add(hp, U, gh, /*acc=*/false);                       // gh = h_{t-1} @ W_hh^T
      T* h = out + t * BU;
      const int64_t o = t * BU;
      auto body = [&](int64_t begin, int64_t end) {
        for (int64_t idx = begin; idx < end;) {               // row segments of the flat (B, U) range
          const int64_t b = idx / U, u0 = idx % U, n = std::min(U - u0, end - idx);
          if (gates) {
            gru_step(xz + b * G + u0, gh + b * G + u0, bhh + u0, U, hp + idx, h + idx, gates[0] + o + idx,
                     gates[1] + o + idx, gates[2] + o + idx, n);
          } else {
            gru_step(xz + b * G + u0, gh + b * G + u0, bhh + u0, U, hp + idx, h + idx, nullptr, nullptr,
                     nullptr, n);
          }
          idx += n;
        }
      };
      pointwise_pass(BU, body);
      if (ghn_seq != nullptr)         // training: keep h_{t-1} @ W_hn^T, which the backward of n reads
        for (int64_t b = 0; b < B; ++b) std::memcpy(ghn_seq + o + b * U, gh + b * G + 2 * U, sizeof(T) * U);
    }
  }
}

// x (B, T, F); h0 (B, U); w_ih (3U, F); w_hh (3U, U); b_ih, b_hh (3U,) or None (both or neither).
// Returns [outputs (B, T, U), h_T (B, U)] + ([z, r, n], each (B, T, U), when want_gates): Keras' gate
// order z, r, h~. The sequences are transposed views of time-major storage.
std::vector<at::Tensor> gru_sequence(const at::Tensor& x, const at::Tensor& h0_, const at::Tensor& w_ih_,
                                     const at::Tensor& w_hh_, const c10::optional<at::Tensor>& b_ih,
                                     const c10::optional<at::Tensor>& b_hh, bool want_gates, bool train) {
  TORCH_CHECK(x.dim() == 3, "x must be (B, T, F)");
  TORCH_CHECK(x.device().is_cpu(), "the compiled GRU kernel is CPU-only");
  if (train) want_gates = true;
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "float32 or float64 only");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = w_hh_.size(1);
  TORCH_CHECK(w_hh_.size(0) == 3 * U && w_ih_.size(0) == 3 * U && w_ih_.size(1) == F, "weight shapes");
  TORCH_CHECK(h0_.sizes() == at::IntArrayRef({B, U}), "state shape");
  for (const at::Tensor* t : {&h0_, &w_ih_, &w_hh_})
    TORCH_CHECK(t->scalar_type() == x.scalar_type() && t->device().is_cpu(), "dtype/device mismatch");
  for (const c10::optional<at::Tensor>* b : {&b_ih, &b_hh})
    if (b->has_value() && (*b)->defined())
      TORCH_CHECK((*b)->scalar_type() == x.scalar_type() && (*b)->device().is_cpu() && (*b)->numel() == 3 * U,
                  "bias");
  TORCH_CHECK(B * 3 * U < (int64_t(1) << 31) && U < (int64_t(1) << 31), "too large for 32-bit BLAS");
  const auto opt = x.options();
  const at::Tensor w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous(), h0 = h0_.contiguous();
  const at::Tensor bhh = (b_hh.has_value() && b_hh->defined()) ? b_hh->contiguous() : at::zeros({3 * U}, opt);
  at::Tensor out = at::empty({Tn, B, U}, opt);
  std::vector<at::Tensor> gate_ts;
  if (want_gates)
    for (int k = 0; k < 3; ++k) gate_ts.push_back(at::empty({Tn, B, U}, opt));
  at::Tensor ghn = train ? at::empty({Tn, B, U}, opt) : at::Tensor();
  if (Tn > 0 && B > 0 && x.scalar_type() == at::kFloat && small_batch_loop(B, Tn, U)) {
    // small_batch.cpp: W_ih, W_hh and both biases packed once per call, one pass per step (as the LSTM's)
    float* gp[3] = {nullptr, nullptr, nullptr};
    for (size_t k = 0; k < gate_ts.size(); ++k) gp[k] = gate_ts[k].data_ptr<float>();
    const bool has_bih = b_ih.has_value() && b_ih->defined();
    const at::Tensor bih = has_bih ? b_ih->contiguous() : at::Tensor();
    at::Tensor packed = at::empty({rnnstate_ext::gru_small_packed_floats(U, F)}, opt);
    rnnstate_ext::gru_small_pack_f32(w_ih.data_ptr<float>(), w_hh.data_ptr<float>(),
                                     has_bih ? bih.data_ptr<float>() : nullptr, bhh.data_ptr<float>(), U, F,
                                     packed.data_ptr<float>());
    const at::Tensor xc = x.stride(2) == 1 ? x : x.contiguous();
    rnnstate_ext::gru_small_steps_f32(packed.data_ptr<float>(), xc.data_ptr<float>(), xc.stride(0), xc.stride(1),
                                      h0.data_ptr<float>(), Tn, B, U, F, out.data_ptr<float>(),
                                      want_gates ? gp : nullptr, train ? ghn.data_ptr<float>() : nullptr);
  } else if (Tn > 0 && B > 0) {    // B = 0: the empty outputs are the result (the chunk size divides by B)
    const at::Tensor x2 = x.transpose(0, 1).reshape({Tn * B, F});
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_gru_sequence", [&] {
      scalar_t* gp[3] = {nullptr, nullptr, nullptr};
      for (size_t k = 0; k < gate_ts.size(); ++k) gp[k] = gate_ts[k].data_ptr<scalar_t>();
      gru_loop<scalar_t>(x2, w_ih, b_ih, w_hh, bhh.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), Tn, B, U,
                         out.data_ptr<scalar_t>(), want_gates ? gp : nullptr,
                         train ? ghn.data_ptr<scalar_t>() : nullptr);
    });
  }
  at::Tensor hT = Tn > 0 ? out.select(0, Tn - 1).clone() : h0.clone();
  std::vector<at::Tensor> res = {out.transpose(0, 1), hT};
  for (auto& g : gate_ts) res.push_back(g.transpose(0, 1));
  if (train) res.push_back(ghn.transpose(0, 1));
  return res;
}

// The SimpleRNN time loop, same layout as lstm_loop with G = U: the input projections of a chunk of steps
// go straight into the time-major output, then per step ONE BLAS call adds h_{t-1} @ W_hh^T into out_t
// and ONE pointwise pass applies h_t = act(out_t + b_hh) in place.
template <typename T>
void rnn_loop(const at::Tensor& x2, const at::Tensor& w_ih, const c10::optional<at::Tensor>& b_ih,
              const at::Tensor& w_hh, const T* bhh, const T* h0, int64_t Tn, int64_t B, int64_t U, T* out,
              bool relu) {
  const int64_t BU = B * U;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(Tn, kChunkElems / BU));
  const at::Tensor w_ih_t = w_ih.t();
  RecurrentGemm<T> gemm(w_hh, B, Tn);
  for (int64_t t0 = 0; t0 < Tn; t0 += chunk) {
    const int64_t n_steps = std::min(chunk, Tn - t0);
    at::Tensor xw_c = at::from_blob(out + t0 * BU, {n_steps * B, U}, x2.options());
    project_inputs(xw_c, x2, t0 * B, n_steps * B, b_ih, w_ih_t);
    rnnstate_ext::StepThreads threads(B * U * U);                // no per-step fork/join on small steps
    for (int64_t t = t0; t < t0 + n_steps; ++t) {
      T* z = out + t * BU;
      gemm.add(t == 0 ? h0 : out + (t - 1) * BU, U, z);       // z += h_{t-1} @ W_hh^T
      auto body = [&](int64_t begin, int64_t end) { rnn_step(z + begin, bhh, end - begin, relu, U, begin); };
      pointwise_pass(BU, body);
    }
  }
}

// x (B, T, F); h0 (B, U); w_ih (U, F); w_hh (U, U); b_ih, b_hh (U,) or None. relu: the activation is relu
// (else tanh). Returns [outputs (B, T, U) (a transposed view of time-major storage), h_T (B, U)].
std::vector<at::Tensor> rnn_sequence(const at::Tensor& x, const at::Tensor& h0_, const at::Tensor& w_ih_,
                                     const at::Tensor& w_hh_, const c10::optional<at::Tensor>& b_ih,
                                     const c10::optional<at::Tensor>& b_hh, bool relu) {
  TORCH_CHECK(x.dim() == 3, "x must be (B, T, F)");
  TORCH_CHECK(x.device().is_cpu(), "the compiled SimpleRNN kernel is CPU-only");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "float32 or float64 only");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = w_hh_.size(1);
  TORCH_CHECK(w_hh_.size(0) == U && w_ih_.size(0) == U && w_ih_.size(1) == F, "weight shapes");
  TORCH_CHECK(h0_.sizes() == at::IntArrayRef({B, U}), "state shape");
  for (const at::Tensor* t : {&h0_, &w_ih_, &w_hh_})
    TORCH_CHECK(t->scalar_type() == x.scalar_type() && t->device().is_cpu(), "dtype/device mismatch");
  for (const c10::optional<at::Tensor>* b : {&b_ih, &b_hh})
    if (b->has_value() && (*b)->defined())
      TORCH_CHECK((*b)->scalar_type() == x.scalar_type() && (*b)->device().is_cpu() && (*b)->numel() == U, "bias");
  TORCH_CHECK(B * U < (int64_t(1) << 31), "too large for 32-bit BLAS");
  const auto opt = x.options();
  const at::Tensor w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous(), h0 = h0_.contiguous();
  const bool has_bhh = b_hh.has_value() && b_hh->defined();
  const at::Tensor bhh = has_bhh ? b_hh->contiguous() : at::Tensor();
  at::Tensor out = at::empty({Tn, B, U}, opt);
  if (Tn > 0 && B > 0) {    // B = 0: the empty outputs are the result (the chunk size divides by B)
    const at::Tensor x2 = x.transpose(0, 1).reshape({Tn * B, F});
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_rnn_sequence", [&] {
      rnn_loop<scalar_t>(x2, w_ih, b_ih, w_hh, has_bhh ? bhh.data_ptr<scalar_t>() : nullptr,
                         h0.data_ptr<scalar_t>(), Tn, B, U, out.data_ptr<scalar_t>(), relu);
    });
  }
  at::Tensor hT = Tn > 0 ? out.select(0, Tn - 1).clone() : h0.clone();
  return {out.transpose(0, 1), hT};
}

// ---- registered torch ops -------------------------------------------------------------------------------
// Every kernel is an op of the `rnnstate` library (torch.ops.rnnstate.*), so torch.compile, torch.export,
// vmap and the dispatcher see it like any aten op. Schemas are fixed: a sequence that was not asked for
// (want_c / want_gates / a gradient not needed) comes back as an empty (0,) tensor, never as None, so
// the shape functions (rnnstate/_ext/__init__.py, register_fake) are plain. Fake kernels, autograd and
// vmap rules are registered from Python (rnnstate/_ext/__init__.py).

at::Tensor empty_like_x(const at::Tensor& x) { return at::empty({0}, x.options()); }   // a fresh one each time
at::Tensor or_empty(const c10::optional<at::Tensor>& t, const at::Tensor& x) {
  return (t.has_value() && t->defined()) ? *t : empty_like_x(x);
}

using Tensor8 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                           at::Tensor>;
using Tensor6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using Tensor5 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

Tensor8 lstm_sequence_op(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
                         const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_ih, bool want_c, bool want_gates) {
  auto r = lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih, want_c, want_gates);
  auto at = [&](size_t k) { return k < r.size() ? or_empty(r[k], x) : empty_like_x(x); };   // no two alike
  return {*r[0], *r[1], *r[2], at(3), at(4), at(5), at(6), at(7)};
}

std::tuple<at::Tensor, at::Tensor> lstm_step_op(const at::Tensor& x, const at::Tensor& h, const at::Tensor& c,
                                                const at::Tensor& w_ih, const at::Tensor& w_hh,
                                                const c10::optional<at::Tensor>& b_ih) {
  auto r = lstm_step(x, h, c, w_ih, w_hh, b_ih);
  return {r[0], r[1]};
}

Tensor6 lstm_backward_op(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
                         const at::Tensor& w_hh, bool has_bias, const at::Tensor& out, const at::Tensor& cseq,
                         const at::Tensor& gi, const at::Tensor& gf, const at::Tensor& gg, const at::Tensor& go,
                         const c10::optional<at::Tensor>& dout, const c10::optional<at::Tensor>& dhT,
                         const c10::optional<at::Tensor>& dcT, bool need_dx, bool need_dh0) {
  auto r = rnnstate_ext::lstm_backward(x, h0, c0, w_ih, w_hh, has_bias, out, cseq, {gi, gf, gg, go}, dout, dhT, dcT,
                                       need_dx, need_dh0);
  return {or_empty(r[0], x), or_empty(r[1], x), or_empty(r[2], x), *r[3], *r[4], or_empty(r[5], x)};
}

Tensor6 gru_sequence_op(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                        const c10::optional<at::Tensor>& b_ih, const c10::optional<at::Tensor>& b_hh, bool want_gates,
                        bool train) {
  auto r = gru_sequence(x, h0, w_ih, w_hh, b_ih, b_hh, want_gates, train);
  auto at = [&](size_t k) { return k < r.size() ? r[k] : empty_like_x(x); };
  return {r[0], r[1], at(2), at(3), at(4), at(5)};
}

Tensor6 gru_backward_op(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                        const c10::optional<at::Tensor>& b_hh, bool has_bias, const at::Tensor& out,
                        const at::Tensor& gz, const at::Tensor& gr, const at::Tensor& gn, const at::Tensor& ghn,
                        const c10::optional<at::Tensor>& dout, const c10::optional<at::Tensor>& dhT, bool need_dx,
                        bool need_dh0) {
  auto r = rnnstate_ext::gru_backward(x, h0, w_ih, w_hh, b_hh, has_bias, out, {gz, gr, gn}, ghn, dout, dhT, need_dx,
                                      need_dh0);
  return {or_empty(r[0], x), or_empty(r[1], x), *r[2], *r[3], or_empty(r[4], x), or_empty(r[5], x)};
}

std::tuple<at::Tensor, at::Tensor> rnn_sequence_op(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih,
                                                   const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_ih,
                                                   const c10::optional<at::Tensor>& b_hh, bool relu) {
  auto r = rnn_sequence(x, h0, w_ih, w_hh, b_ih, b_hh, relu);
  return {r[0], r[1]};
}

Tensor5 rnn_backward_op(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                        bool has_bias, bool relu, const at::Tensor& out, const c10::optional<at::Tensor>& dout,
                        const c10::optional<at::Tensor>& dhT, bool need_dx, bool need_dh0) {
  auto r = rnnstate_ext::rnn_backward(x, h0, w_ih, w_hh, has_bias, relu, out, dout, dhT, need_dx, need_dh0);
  return {or_empty(r[0], x), or_empty(r[1], x), *r[2], *r[3], or_empty(r[4], x)};
}

}  // namespace

TORCH_LIBRARY(rnnstate, m) {
  m.set_python_module("rnnstate._ext._ops");     // where the fake kernels, autograd and vmap rules live
  // outputs (B, T, U), h_T, c_T, c_seq (B, T, U) | (0,), gates i, f, g, o (B, T, U) each | (0,)
  m.def("lstm_sequence(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, bool want_c, "
        "bool want_gates) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("lstm_step(Tensor x, Tensor h, Tensor c, Tensor w_ih, Tensor w_hh, Tensor? b_ih) -> (Tensor, Tensor)");
  m.def("gru_step(Tensor x, Tensor h, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh) -> Tensor");
  m.def("rnn_step(Tensor x, Tensor h, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, bool relu) -> Tensor");
  // dx | (0,), dh0 | (0,), dc0 | (0,), dw_ih, dw_hh, db | (0,)
  m.def("lstm_backward(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, bool has_bias, Tensor out, "
        "Tensor cseq, Tensor gate_i, Tensor gate_f, Tensor gate_g, Tensor gate_o, Tensor? dout, Tensor? dhT, "
        "Tensor? dcT, bool need_dx, bool need_dh0) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // outputs, h_T, gates z, r, n | (0,), ghn (h_{t-1} @ W_hn^T, train only) | (0,)
  m.def("gru_sequence(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, bool want_gates, "
        "bool train) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // dx | (0,), dh0 | (0,), dw_ih, dw_hh, db_ih | (0,), db_hh | (0,)
  m.def("gru_backward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_hh, bool has_bias, Tensor out, "
        "Tensor gate_z, Tensor gate_r, Tensor gate_n, Tensor ghn, Tensor? dout, Tensor? dhT, bool need_dx, "
        "bool need_dh0) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("rnn_sequence(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, bool relu) "
        "-> (Tensor, Tensor)");
  // dx | (0,), dh0 | (0,), dw_ih, dw_hh, db (of b_ih and b_hh alike) | (0,)
  m.def("rnn_backward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, bool has_bias, bool relu, Tensor out, "
        "Tensor? dout, Tensor? dhT, bool need_dx, bool need_dh0) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rnnstate, CPU, m) {
  m.impl("lstm_sequence", &lstm_sequence_op);
  m.impl("lstm_step", &lstm_step_op);
  m.impl("gru_step", &gru_step_fn);
  m.impl("rnn_step", &rnn_step_fn);
  m.impl("lstm_backward", &lstm_backward_op);
  m.impl("gru_sequence", &gru_sequence_op);
  m.impl("gru_backward", &gru_backward_op);
  m.impl("rnn_sequence", &rnn_sequence_op);
  m.impl("rnn_backward", &rnn_backward_op);
}

// lstm_step, gru_step and rnn_step are inference-only (streaming): under autograd they run below it, so their
// outputs never require grad and the caller need not enter torch.no_grad() (the per-step cost stays the kernel's).
TORCH_LIBRARY_IMPL(rnnstate, Autograd, m) {
  m.impl("lstm_step", [](const at::Tensor& x, const at::Tensor& h, const at::Tensor& c, const at::Tensor& w_ih,
                         const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_ih) {
    static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("rnnstate::lstm_step", "")
                         .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                   const at::Tensor&, const at::Tensor&,
                                                                   const at::Tensor&, const c10::optional<at::Tensor>&)>();
    at::AutoDispatchBelowADInplaceOrView below;
    return op.call(x, h, c, w_ih, w_hh, b_ih);
  });
  m.impl("gru_step", [](const at::Tensor& x, const at::Tensor& h, const at::Tensor& w_ih, const at::Tensor& w_hh,
                        const c10::optional<at::Tensor>& b_ih, const c10::optional<at::Tensor>& b_hh) {
    static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("rnnstate::gru_step", "")
                         .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                           const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&)>();
    at::AutoDispatchBelowADInplaceOrView below;
    return op.call(x, h, w_ih, w_hh, b_ih, b_hh);
  });
  m.impl("rnn_step", [](const at::Tensor& x, const at::Tensor& h, const at::Tensor& w_ih, const at::Tensor& w_hh,
                        const c10::optional<at::Tensor>& b_ih, const c10::optional<at::Tensor>& b_hh, bool relu) {
    static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("rnnstate::rnn_step", "")
                         .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                           const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&, bool)>();
    at::AutoDispatchBelowADInplaceOrView below;
    return op.call(x, h, w_ih, w_hh, b_ih, b_hh, relu);
  });
}

// The Python module only loads the library (which registers the ops above) and says how it was built.
PYBIND11_MODULE(_C, m) {
  m.doc() = "rnnstate compiled kernels, registered as torch.ops.rnnstate.* (LSTM, GRU, SimpleRNN loops and backwards)";
#ifdef RNNSTATE_DIRECT_BLAS
  m.attr("direct_blas") = true;
#else
  m.attr("direct_blas") = false;
#endif
  m.attr("small_batch_isa") = rnnstate_ext::small_batch_isa();
  m.attr("small_batch_max") = rnnstate_ext::kSmallBatchMax;
  m.attr("small_batch_max_units") = rnnstate_ext::kSmallBatchMaxUnits;
  m.def("small_batch_loop", &small_batch_loop, "whether lstm_sequence / gru_sequence run float32 (B, T, U) on the small-batch loop");
}
