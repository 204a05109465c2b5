// rnnstate._ext._C.lstm_backward: backpropagation through time for the LSTM loop of _C.cpp, from what its
// forward wrote (h_t, c_t and the gates i, f, g, o of every step, time-major (T, B, U) storage).
//
// Per step t = T-1 .. 0: ONE pointwise pass (pointwise.cpp, lstm_step_bwd) turns dL/dh_t and dL/dc_t
// into dz_t = dL/d(gate pre-activations) (B, 4U) and dL/dc_{t-1}; ONE BLAS call gives
// dL/dh_{t-1} = dz_t @ W_hh. Everything else is a handful of large GEMMs over all steps at once:
//     dW_ih = dz^T @ x,   dW_hh = dz^T @ [h_0, h_1 .. h_{T-2}],   db = sum(dz),   dx = dz @ W_ih
// (dz stacked (T*B, 4U)). torch's oneDNN backward does the same work with more set-up per call; at the
// small sizes of most training (T of tens, B of tens) that set-up is most of its time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "blas.h"
#include "gemm.h"
#include "kernels.h"
#include "loops.h"
#include "pointwise.h"

namespace {

inline void step_bwd(const float* gi, const float* gf, const float* gg, const float* go, const float* c,
                     const float* cp, const float* dh, const float* dout, float* dc, float* dz, int64_t U, int64_t n) {
  rnnstate_ext::lstm_step_bwd_f32(gi, gf, gg, go, c, cp, dh, dout, dc, dz, U, n);
}
inline void step_bwd(const double* gi, const double* gf, const double* gg, const double* go, const double* c,
                     const double* cp, const double* dh, const double* dout, double* dc, double* dz, int64_t U,
                     int64_t n) {
  rnnstate_ext::lstm_step_bwd_f64(gi, gf, gg, go, c, cp, dh, dout, dc, dz, U, n);
}

// dh (B, U) = dz (B, G) @ W (G, U) (acc: dh +=); all row-major and contiguous.
// W (G, U) packed once for all steps of a backward loop (float32, AVX-512: gemm.h), else undefined.
template <typename T>
at::Tensor pack_recurrent(const at::Tensor& w, int64_t Tn) {
  at::Tensor packed;
  if constexpr (std::is_same_v<T, float>) {
    if (Tn > 1 && rnnstate_ext::fast_gemm_available()) {
      packed = at::empty({rnnstate_ext::packed_size(w.size(1), w.size(0))}, w.options());
      rnnstate_ext::pack_right(w.data_ptr<float>(), w.size(1), w.size(0), /*trans=*/false, packed.data_ptr<float>());
    }
  }
  return packed;
}

template <typename T>
void recurrent_grad(const at::Tensor& w, int64_t B, int64_t G, int64_t U, const T* dz, T* dh, bool acc = false,
                    const at::Tensor& packed = at::Tensor()) {
  if constexpr (std::is_same_v<T, float>) {
    if (packed.defined()) {
      rnnstate_ext::gemm_packed(B, U, G, dz, G, packed.data_ptr<float>(), dh, U, acc, rnnstate_ext::kParallelStepMacs);
      return;
    }
  }
#ifdef RNNSTATE_DIRECT_BLAS
  // column-major: dh^T (U, B) = W^T (U, G; W stored row-major is (U, G) col-major: "N") @ dz^T (G, B)
  const T one = 1, beta = acc ? 1 : 0;
  const int u = static_cast<int>(U), b = static_cast<int>(B), g = static_cast<int>(G);
  if constexpr (std::is_same_v<T, float>) {
    sgemm_("N", "N", &u, &b, &g, &one, w.data_ptr<T>(), &u, dz, &g, &beta, dh, &u);
  } else {
    dgemm_("N", "N", &u, &b, &g, &one, w.data_ptr<T>(), &u, dz, &g, &beta, dh, &u);
  }
#else
  auto opt = w.options();
  at::Tensor dht = at::from_blob(dh, {B, U}, opt);
  if (acc) at::addmm_out(dht, dht, at::from_blob(const_cast<T*>(dz), {B, G}, opt), w);
  else at::mm_out(dht, at::from_blob(const_cast<T*>(dz), {B, G}, opt), w);
#endif
}

inline void gru_bwd(const float* gz, const float* gr, const float* gn, const float* hn, const float* hp,
                    const float* dout, float* dh, float* dgx, float* dgh, int64_t U, int64_t n) {
  rnnstate_ext::gru_step_bwd_f32(gz, gr, gn, hn, hp, dout, dh, dgx, dgh, U, n);
}
inline void gru_bwd(const double* gz, const double* gr, const double* gn, const double* hn, const double* hp,
                    const double* dout, double* dh, double* dgx, double* dgh, int64_t U, int64_t n) {
  rnnstate_ext::gru_step_bwd_f64(gz, gr, gn, hn, hp, dout, dh, dgx, dgh, U, n);
}

using rnnstate_ext::pointwise_pass;
using rnnstate_ext::StepThreads;

template <typename T>
void lstm_bwd_loop(const at::Tensor& w_hh, const T* c0, int64_t Tn, int64_t B, int64_t U, const T* cseq,
                   const T* const* gates, const T* dout, T* dh, T* dc, T* dz_all, bool need_dh0) {
  const int64_t G = 4 * U, BU = B * U;
  const at::Tensor packed = pack_recurrent<T>(w_hh, Tn);
  StepThreads threads(B * G * U);                               // no per-step fork/join on small steps
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* cp = t == 0 ? c0 : cseq + (t - 1) * BU;
    const int64_t o = t * BU;
    T* dz = dz_all + t * B * G;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end;) {                 // row segments of the flat (B, U) range
        const int64_t b = idx / U, u0 = idx % U, n = std::min(U - u0, end - idx);
        step_bwd(gates[0] + o + idx, gates[1] + o + idx, gates[2] + o + idx, gates[3] + o + idx, cseq + o + idx,
                 cp + idx, dh + idx, dout ? dout + o + idx : nullptr, dc + idx, dz + b * G + u0, U, n);
        idx += n;
      }
    };
    pointwise_pass(BU, body);
    if (t > 0 || need_dh0) recurrent_grad<T>(w_hh, B, G, U, dz, dh, false, packed);   // dL/dh_{t-1}
  }
}

template <typename T>
void gru_bwd_loop(const at::Tensor& w_hh, const T* h0, int64_t Tn, int64_t B, int64_t U, const T* out,
                  const T* const* gates, const T* hn, const T* dout, T* dh, T* dgx_all, T* dgh_all, bool need_dh0) {
  const int64_t G = 3 * U, BU = B * U;
  const at::Tensor packed = pack_recurrent<T>(w_hh, Tn);
  StepThreads threads(B * G * U);                               // no per-step fork/join on small steps
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* hp = t == 0 ? h0 : out + (t - 1) * BU;
    const int64_t o = t * BU;
    T* dgx = dgx_all + t * B * G;
    T* dgh = dgh_all + t * B * G;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end;) {
        const int64_t b = idx / U, u0 = idx % U, n = std::min(U - u0, end - idx);
        gru_bwd(gates[0] + o + idx, gates[1] + o + idx, gates[2] + o + idx, hn + o + idx, hp + idx,
                dout ? dout + o + idx : nullptr, dh + idx, dgx + b * G + u0, dgh + b * G + u0, U, n);
        idx += n;
      }
    };
    pointwise_pass(BU, body);
    if (t > 0 || need_dh0) recurrent_grad<T>(w_hh, B, G, U, dgh, dh, /*acc=*/true, packed);   // + dgh_t @ W_hh
  }
}

inline void rnn_bwd(const float* h, const float* dh, const float* dout, float* da, int64_t n, bool relu) {
  rnnstate_ext::rnn_step_bwd_f32(h, dh, dout, da, n, relu);
}
inline void rnn_bwd(const double* h, const double* dh, const double* dout, double* da, int64_t n, bool relu) {
  rnnstate_ext::rnn_step_bwd_f64(h, dh, dout, da, n, relu);
}

template <typename T>
void rnn_bwd_loop(const at::Tensor& w_hh, int64_t Tn, int64_t B, int64_t U, const T* out, const T* dout, T* dh,
                  T* da_all, bool relu, bool need_dh0) {
  const int64_t BU = B * U;
  const at::Tensor packed = pack_recurrent<T>(w_hh, Tn);
  StepThreads threads(B * U * U);                               // no per-step fork/join on small steps
  for (int64_t t = Tn - 1; t >= 0; --t) {
    T* da = da_all + t * BU;
    const int64_t o = t * BU;
    auto body = [&](int64_t begin, int64_t end) {
      rnn_bwd(out + o + begin, dh + begin, dout ? dout + o + begin : nullptr, da + begin, end - begin, relu);
    };
    pointwise_pass(BU, body);
    if (t > 0 || need_dh0) recurrent_grad<T>(w_hh, B, U, U, da, dh, false, packed);      // dL/dh_{t-1} = da_t @ W_hh
  }
}

// dW_hh (G, U) = dz^T @ [h_0; h_1 .. h_{T-2}], dz (T*B, G) time-major, out (T, B, U) time-major: one
// packed GEMM over all steps (float32, AVX-512: gemm.h; the h rows are packed straight from h0 and out),
// else two BLAS calls.
at::Tensor recurrent_weight_grad(const at::Tensor& dz, const at::Tensor& h0, const at::Tensor& out, int64_t Tn,
                                 int64_t B, int64_t U) {
  const int64_t G = dz.size(1);
  if (dz.scalar_type() == at::kFloat && rnnstate_ext::fast_gemm_available()) {
    at::Tensor packed = at::empty({rnnstate_ext::packed_size(U, Tn * B)}, dz.options());
    rnnstate_ext::pack_right(h0.data_ptr<float>(), U, Tn * B, /*trans=*/false, packed.data_ptr<float>(),
                             out.data_ptr<float>(), B);
    at::Tensor dw = at::empty({G, U}, dz.options());
    rnnstate_ext::gemm_packed_at(G, U, Tn * B, dz.data_ptr<float>(), G, packed.data_ptr<float>(),
                                 dw.data_ptr<float>(), U, /*acc=*/false, rnnstate_ext::kParallelStepMacs);
    return dw;
  }
  at::Tensor dw = at::mm(dz.narrow(0, 0, B).t(), h0);               // step 0 reads h_0
  if (Tn > 1)                                                       // steps 1.. read h_0 .. h_{T-2}
    dw.addmm_(dz.narrow(0, B, (Tn - 1) * B).t(), out.narrow(0, 0, Tn - 1).reshape({(Tn - 1) * B, U}));
  return dw;
}

at::Tensor time_major(const at::Tensor& seq) {       // (B, T, U) view of (T, B, U) storage, or a copy
  at::Tensor tm = seq.transpose(0, 1);
  return tm.is_contiguous() ? tm : tm.contiguous();
}

}  // namespace

namespace rnnstate_ext {

// x (B, T, F); h0, c0 (B, U); w_ih (4U, F); w_hh (4U, U); out, cseq, gates[4]: the forward's (B, T, U)
// sequences; dout (B, T, U), dhT, dcT (B, U): the incoming gradients, None for zero.
// Returns [dx (B, T, F) or None, dh0 or None, dc0 or None, dw_ih, dw_hh, db (4U,) or None].
std::vector<c10::optional<at::Tensor>> lstm_backward(
    const at::Tensor& x, const at::Tensor& h0_, const at::Tensor& c0_, const at::Tensor& w_ih_,
    const at::Tensor& w_hh_, bool has_bias, const at::Tensor& out_, const at::Tensor& cseq_,
    const std::vector<at::Tensor>& gates_, const c10::optional<at::Tensor>& dout_,
    const c10::optional<at::Tensor>& dhT, const c10::optional<at::Tensor>& dcT, bool need_dx, bool need_dh0) {
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu(), "x must be a (B, T, F) CPU tensor");
  TORCH_CHECK(gates_.size() == 4, "four gate sequences");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = w_hh_.size(1), G = 4 * U;
  TORCH_CHECK(Tn > 0, "empty sequence");
  TORCH_CHECK(w_hh_.size(0) == G && w_ih_.sizes() == at::IntArrayRef({G, F}), "weight shapes");
  TORCH_CHECK(B * G < (int64_t(1) << 31), "too large for 32-bit BLAS");
  const std::vector<int64_t> seq_shape = {B, Tn, U};
  for (const at::Tensor* t : {&out_, &cseq_, &gates_[0], &gates_[1], &gates_[2], &gates_[3]})
    TORCH_CHECK(t->sizes() == at::IntArrayRef(seq_shape) && t->scalar_type() == x.scalar_type(), "sequence shapes");
  const auto opt = x.options();
  const at::Tensor w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const at::Tensor h0 = h0_.contiguous(), c0 = c0_.contiguous();
  const at::Tensor out = time_major(out_), cseq = time_major(cseq_);
  std::vector<at::Tensor> gates;
  for (const auto& g : gates_) gates.push_back(time_major(g));
  const bool has_dout = dout_.has_value() && dout_->defined();
  const at::Tensor dout = has_dout ? time_major(*dout_) : at::Tensor();
  at::Tensor dh = (dhT.has_value() && dhT->defined()) ? dhT->contiguous().clone() : at::zeros({B, U}, opt);
  at::Tensor dc = (dcT.has_value() && dcT->defined()) ? dcT->contiguous().clone() : at::zeros({B, U}, opt);
  at::Tensor dz = at::empty({Tn * B, G}, opt);                      // time-major (T, B, 4U)
  if (B > 0)    // B = 0: nothing to run; the gradients below are empty or zeros
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_lstm_backward", [&] {
    const scalar_t* gp[4];
    for (int k = 0; k < 4; ++k) gp[k] = gates[k].data_ptr<scalar_t>();
    lstm_bwd_loop<scalar_t>(w_hh, c0.data_ptr<scalar_t>(), Tn, B, U, cseq.data_ptr<scalar_t>(), gp,
                            has_dout ? dout.data_ptr<scalar_t>() : nullptr, dh.data_ptr<scalar_t>(),
                            dc.data_ptr<scalar_t>(), dz.data_ptr<scalar_t>(), need_dh0);
  });
  const at::Tensor x2 = x.transpose(0, 1).reshape({Tn * B, F});     // time-major, like dz
  at::Tensor dw_ih = at::mm(dz.t(), x2);
  at::Tensor dw_hh = recurrent_weight_grad(dz, h0, out, Tn, B, U);
  c10::optional<at::Tensor> db, dx, dh0, dc0;
  if (has_bias) db = dz.sum(0);
  if (need_dx) dx = at::mm(dz, w_ih).view({Tn, B, F}).transpose(0, 1);
  if (need_dh0) { dh0 = dh; dc0 = dc; }
  return {dx, dh0, dc0, dw_ih, dw_hh, db};
}

// GRU, reset_after=True. x (B, T, F); h0 (B, U); w_ih (3U, F); w_hh (3U, U); b_hh (3U,) or None; out,
// gates [z, r, n], ghn (h_{t-1} @ W_hn^T, no bias): the forward's (B, T, U) sequences; dout (B, T, U), dhT
// (B, U): incoming gradients, None for zero. Per step: ONE pointwise pass and ONE BLAS call
// (dL/dh_{t-1} = dh z + dgh_t @ W_hh); then dW_ih = dgx^T @ x, dW_hh = dgh^T @ [h_0 .. h_{T-2}], the bias
// gradients are sums of dgx and dgh, dx = dgx @ W_ih.
// Returns [dx or None, dh0 or None, dw_ih, dw_hh, db_ih or None, db_hh or None].
std::vector<c10::optional<at::Tensor>> gru_backward(
    const at::Tensor& x, const at::Tensor& h0_, const at::Tensor& w_ih_, const at::Tensor& w_hh_,
    const c10::optional<at::Tensor>& b_hh, bool has_bias, const at::Tensor& out_, const std::vector<at::Tensor>& gates_,
    const at::Tensor& ghn_, const c10::optional<at::Tensor>& dout_, const c10::optional<at::Tensor>& dhT,
    bool need_dx, bool need_dh0) {
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu(), "x must be a (B, T, F) CPU tensor");
  TORCH_CHECK(gates_.size() == 3, "three gate sequences");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = w_hh_.size(1), G = 3 * U;
  TORCH_CHECK(Tn > 0, "empty sequence");
  TORCH_CHECK(w_hh_.size(0) == G && w_ih_.sizes() == at::IntArrayRef({G, F}), "weight shapes");
  TORCH_CHECK(B * G < (int64_t(1) << 31), "too large for 32-bit BLAS");
  const std::vector<int64_t> seq_shape = {B, Tn, U};
  for (const at::Tensor* t : {&out_, &ghn_, &gates_[0], &gates_[1], &gates_[2]})
    TORCH_CHECK(t->sizes() == at::IntArrayRef(seq_shape) && t->scalar_type() == x.scalar_type(), "sequence shapes");
  const auto opt = x.options();
  const at::Tensor w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous(), h0 = h0_.contiguous();
  const at::Tensor out = time_major(out_);
  std::vector<at::Tensor> gates;
  for (const auto& g : gates_) gates.push_back(time_major(g));
  at::Tensor hn = time_major(ghn_);
  if (b_hh.has_value() && b_hh->defined()) hn = hn + b_hh->narrow(0, 2 * U, U);   // hn = h W_hn^T + b_hn
  const bool has_dout = dout_.has_value() && dout_->defined();
  const at::Tensor dout = has_dout ? time_major(*dout_) : at::Tensor();
  at::Tensor dh = (dhT.has_value() && dhT->defined()) ? dhT->contiguous().clone() : at::zeros({B, U}, opt);
  at::Tensor dgx = at::empty({Tn * B, G}, opt), dgh = at::empty({Tn * B, G}, opt);
  if (B > 0)    // B = 0: nothing to run; the gradients below are empty or zeros
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_gru_backward", [&] {
    const scalar_t* gp[3];
    for (int k = 0; k < 3; ++k) gp[k] = gates[k].data_ptr<scalar_t>();
    gru_bwd_loop<scalar_t>(w_hh, h0.data_ptr<scalar_t>(), Tn, B, U, out.data_ptr<scalar_t>(), gp,
                           hn.data_ptr<scalar_t>(), has_dout ? dout.data_ptr<scalar_t>() : nullptr,
                           dh.data_ptr<scalar_t>(), dgx.data_ptr<scalar_t>(), dgh.data_ptr<scalar_t>(), need_dh0);
  });
  const at::Tensor x2 = x.transpose(0, 1).reshape({Tn * B, F});
  at::Tensor dw_ih = at::mm(dgx.t(), x2);
  at::Tensor dw_hh = recurrent_weight_grad(dgh, h0, out, Tn, B, U);
  c10::optional<at::Tensor> db_ih, db_hh, dx, dh0;
  if (has_bias) { db_ih = dgx.sum(0); db_hh = dgh.sum(0); }
  if (need_dx) dx = at::mm(dgx, w_ih).view({Tn, B, F}).transpose(0, 1);
  if (need_dh0) dh0 = dh;
  return {dx, dh0, dw_ih, dw_hh, db_ih, db_hh};
}

// SimpleRNN (h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu). x (B, T, F); h0 (B, U);
// out: the forward's (B, T, U) outputs; dout (B, T, U), dhT (B, U): incoming gradients, None for zero.
// Per step ONE pointwise pass (da_t = dh act'(h_t)) and ONE BLAS call (dh_{t-1} = da_t @ W_hh).
// Returns [dx or None, dh0 or None, dw_ih, dw_hh, db or None] (db: the gradient of b_ih and of b_hh alike).
std::vector<c10::optional<at::Tensor>> rnn_backward(
    const at::Tensor& x, const at::Tensor& h0_, const at::Tensor& w_ih_, const at::Tensor& w_hh_, bool has_bias,
    bool relu, const at::Tensor& out_, const c10::optional<at::Tensor>& dout_, const c10::optional<at::Tensor>& dhT,
    bool need_dx, bool need_dh0) {
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu(), "x must be a (B, T, F) CPU tensor");
  const int64_t B = x.size(0), Tn = x.size(1), F = x.size(2), U = w_hh_.size(1);
  TORCH_CHECK(Tn > 0, "empty sequence");
  TORCH_CHECK(w_hh_.size(0) == U && w_ih_.sizes() == at::IntArrayRef({U, F}), "weight shapes");
  TORCH_CHECK(out_.sizes() == at::IntArrayRef({B, Tn, U}) && out_.scalar_type() == x.scalar_type(), "outputs");
  const auto opt = x.options();
  const at::Tensor w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous(), h0 = h0_.contiguous();
  const at::Tensor out = time_major(out_);
  const bool has_dout = dout_.has_value() && dout_->defined();
  const at::Tensor dout = has_dout ? time_major(*dout_) : at::Tensor();
  at::Tensor dh = (dhT.has_value() && dhT->defined()) ? dhT->contiguous().clone() : at::zeros({B, U}, opt);
  at::Tensor da = at::empty({Tn * B, U}, opt);
  if (B > 0)    // B = 0: nothing to run; the gradients below are empty or zeros
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnstate_rnn_backward", [&] {
    rnn_bwd_loop<scalar_t>(w_hh, Tn, B, U, out.data_ptr<scalar_t>(), has_dout ? dout.data_ptr<scalar_t>() : nullptr,
                           dh.data_ptr<scalar_t>(), da.data_ptr<scalar_t>(), relu, need_dh0);
  });
  const at::Tensor x2 = x.transpose(0, 1).reshape({Tn * B, F});
  at::Tensor dw_ih = at::mm(da.t(), x2);
  at::Tensor dw_hh = recurrent_weight_grad(da, h0, out, Tn, B, U);
  c10::optional<at::Tensor> db, dx, dh0;
  if (has_bias) db = da.sum(0);
  if (need_dx) dx = at::mm(da, w_ih).view({Tn, B, F}).transpose(0, 1);
  if (need_dh0) dh0 = dh;
  return {dx, dh0, dw_ih, dw_hh, db};
}

}  // namespace rnnstate_ext
