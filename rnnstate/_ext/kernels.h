// Entry points defined outside _C.cpp (which binds them to Python).
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace rnnstate_ext {
// The LSTM backward (backward.cpp); see there.
std::vector<c10::optional<at::Tensor>> lstm_backward(
    const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
    bool has_bias, const at::Tensor& out, const at::Tensor& cseq, const std::vector<at::Tensor>& gates,
    const c10::optional<at::Tensor>& dout, const c10::optional<at::Tensor>& dhT, const c10::optional<at::Tensor>& dcT,
    bool need_dx, bool need_dh0);
// The GRU (reset_after=True) backward (backward.cpp); see there.
std::vector<c10::optional<at::Tensor>> gru_backward(
    const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const c10::optional<at::Tensor>& b_hh, bool has_bias, const at::Tensor& out, const std::vector<at::Tensor>& gates,
    const at::Tensor& ghn, const c10::optional<at::Tensor>& dout, const c10::optional<at::Tensor>& dhT, bool need_dx,
    bool need_dh0);
// The SimpleRNN backward (backward.cpp); see there.
std::vector<c10::optional<at::Tensor>> rnn_backward(
    const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih, const at::Tensor& w_hh, bool has_bias,
    bool relu, const at::Tensor& out, const c10::optional<at::Tensor>& dout, const c10::optional<at::Tensor>& dhT,
    bool need_dx, bool need_dh0);
}  // namespace rnnstate_ext
