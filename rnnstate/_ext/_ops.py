"""What torch needs to treat the compiled kernels (``torch.ops.rnnstate.*``, registered in ``_C.cpp``) as
ordinary ops: fake kernels (output shapes and strides, symbolic B and T included, for torch.compile and
torch.export), autograd formulas (the compiled backwards) and vmap rules.

Schemas are fixed: what was not asked for (``want_c``, ``want_gates``, a gradient not needed) comes back
as an empty ``(0,)`` tensor. Sequences are ``(B, T, U)`` views of time-major ``(T, B, U)`` storage, as
the kernels write them (and as torch.lstm's batch_first outputs are).

Autograd: the sequence ops are differentiable through their outputs, final h and (LSTM) final c, when
called in training form (``lstm_sequence(want_c=True, want_gates=True)``, ``gru_sequence(train=True)``,
``rnn_sequence`` always): the forward keeps what backpropagation through time reads. Gradients flowing
into the c/gate sequences themselves are not propagated (the layers never differentiate through them:
they take the reference loop or torch's ops for that). Not twice differentiable.

vmap: the vmapped axis is folded into the batch axis when the weights are shared (the usual case:
``vmap(model)(x)``), else the op runs once per vmapped slice (per-model weights, e.g. ensembles).
"""
from __future__ import annotations

import torch
from torch.library import register_autograd, register_fake, register_vmap

ops = torch.ops.rnnstate


def _seq(x, U):
    """(B, T, U) with the strides of a transposed time-major (T, B, U) tensor, like the kernels' outputs."""
    return x.new_empty((x.shape[1], x.shape[0], U)).transpose(0, 1)


def _none(x):
    return x.new_empty((0,))


# ---- fake kernels ------------------------------------------------------------------------------------------
@register_fake("rnnstate::lstm_sequence")
def _lstm_sequence_fake(x, h0, c0, w_ih, w_hh, b_ih, want_c, want_gates):
    torch._check(x.dim() == 3, lambda: "x must be (B, T, F)")
    B, U = x.shape[0], w_hh.shape[1]
    gates = [_seq(x, U) if want_gates else _none(x) for _ in range(4)]
    return (_seq(x, U), x.new_empty((B, U)), x.new_empty((B, U)), _seq(x, U) if want_c else _none(x), *gates)


@register_fake("rnnstate::lstm_step")
def _lstm_step_fake(x, h, c, w_ih, w_hh, b_ih):
    B, U = x.shape[0], w_hh.shape[1]
    return x.new_empty((B, U)), x.new_empty((B, U))


@register_fake("rnnstate::gru_step")
def _gru_step_fake(x, h, w_ih, w_hh, b_ih, b_hh):
    return x.new_empty((x.shape[0], w_hh.shape[1]))


@register_fake("rnnstate::rnn_step")
def _rnn_step_fake(x, h, w_ih, w_hh, b_ih, b_hh, relu):
    return x.new_empty((x.shape[0], w_hh.shape[1]))


def _dx(x, need_dx):
    return _seq(x, x.shape[2]) if need_dx else _none(x)


@register_fake("rnnstate::pack_lstm_bf16")
def _pack_lstm_bf16_fake(w):
    torch._check(w.dim() == 2, lambda: "pack_lstm_bf16: a (4U, K) weight")
    U, K = w.shape[0] // 4, w.shape[1]
    return w.new_empty((4 * ((U + 15) // 16), (K + 1) // 2, 16, 2), dtype=torch.bfloat16)


@register_fake("rnnstate::lstm_sequence_bf16")
def _lstm_sequence_bf16_fake(x, h0, c0, wp_ih, wp_hh, b_ih):
    torch._check(x.dim() == 3, lambda: "x must be (B, T, F)")
    B, T, U = x.shape[0], x.shape[1], h0.shape[1]
    out = x.new_empty((T, B, U), dtype=torch.bfloat16).transpose(0, 1)
    return out, h0.new_empty((B, U), dtype=torch.float32), h0.new_empty((B, U), dtype=torch.float32)


@register_fake("rnnstate::lstm_backward")
def _lstm_backward_fake(x, h0, c0, w_ih, w_hh, has_bias, out, cseq, gi, gf, gg, go, dout, dhT, dcT, need_dx,
                        need_dh0):
    B, U, G = x.shape[0], w_hh.shape[1], w_hh.shape[0]
    dh = x.new_empty((B, U)) if need_dh0 else _none(x)
    dc = x.new_empty((B, U)) if need_dh0 else _none(x)
    return (_dx(x, need_dx), dh, dc, x.new_empty(tuple(w_ih.shape)), x.new_empty(tuple(w_hh.shape)),
            x.new_empty((G,)) if has_bias else _none(x))


@register_fake("rnnstate::gru_sequence")
def _gru_sequence_fake(x, h0, w_ih, w_hh, b_ih, b_hh, want_gates, train):
    torch._check(x.dim() == 3, lambda: "x must be (B, T, F)")
    B, U = x.shape[0], w_hh.shape[1]
    gates = [_seq(x, U) if (want_gates or train) else _none(x) for _ in range(3)]
    return (_seq(x, U), x.new_empty((B, U)), *gates, _seq(x, U) if train else _none(x))


@register_fake("rnnstate::gru_backward")
def _gru_backward_fake(x, h0, w_ih, w_hh, b_hh, has_bias, out, gz, gr, gn, ghn, dout, dhT, need_dx, need_dh0):
    B, U, G = x.shape[0], w_hh.shape[1], w_hh.shape[0]
    db = [x.new_empty((G,)) if has_bias else _none(x) for _ in range(2)]
    return (_dx(x, need_dx), x.new_empty((B, U)) if need_dh0 else _none(x), x.new_empty(tuple(w_ih.shape)),
            x.new_empty(tuple(w_hh.shape)), *db)


@register_fake("rnnstate::rnn_sequence")
def _rnn_sequence_fake(x, h0, w_ih, w_hh, b_ih, b_hh, relu):
    torch._check(x.dim() == 3, lambda: "x must be (B, T, F)")
    B, U = x.shape[0], w_hh.shape[1]
    return _seq(x, U), x.new_empty((B, U))


@register_fake("rnnstate::rnn_backward")
def _rnn_backward_fake(x, h0, w_ih, w_hh, has_bias, relu, out, dout, dhT, need_dx, need_dh0):
    B, U = x.shape[0], w_hh.shape[1]
    return (_dx(x, need_dx), x.new_empty((B, U)) if need_dh0 else _none(x), x.new_empty(tuple(w_ih.shape)),
            x.new_empty(tuple(w_hh.shape)), x.new_empty((U,)) if has_bias else _none(x))


# ---- autograd ---------------------------------------------------------------------------------------------
_NOT_TRAINING_FORM = ("rnnstate::{op} was called with {flags}; it is differentiable only in its training "
                      "form ({form}), whose forward keeps what the backward reads")


def _lstm_setup(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, want_c, want_gates = inputs
    out, _, _, cs, gi, gf, gg, go = output
    ctx.train_form = bool(want_c and want_gates)
    ctx.flags = (want_c, want_gates)           # formatted only for the error below
    ctx.has_bias = b_ih is not None
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, out, cs, gi, gf, gg, go)


def _lstm_backward(ctx, d_out, d_hT, d_cT, *_unused):
    if not ctx.train_form:
        flags = "want_c={}, want_gates={}".format(*ctx.flags)
        raise RuntimeError(_NOT_TRAINING_FORM.format(op="lstm_sequence", flags=flags, form="want_c=True, want_gates=True"))
    x, h0, c0, w_ih, w_hh, out, cs, gi, gf, gg, go = ctx.saved_tensors
    need = ctx.needs_input_grad
    dx, dh0, dc0, dw_ih, dw_hh, db = getattr(ctx, "backward_op", ops.lstm_backward.default)(
        x, h0, c0, w_ih, w_hh, ctx.has_bias, out, cs, gi, gf, gg, go, d_out, d_hT, d_cT, need[0], need[1] or need[2])
    return (dx if need[0] else None, dh0 if need[1] else None, dc0 if need[2] else None,
            dw_ih if need[3] else None, dw_hh if need[4] else None, db if ctx.has_bias and need[5] else None,
            None, None)


def _gru_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, want_gates, train = inputs
    out, _, z, r, n, ghn = output
    ctx.train_form = bool(train)
    ctx.flags = train
    ctx.has_bias = b_ih is not None
    ctx.save_for_backward(x, h0, w_ih, w_hh, b_hh, out, z, r, n, ghn)


def _gru_backward(ctx, d_out, d_hT, *_unused):
    if not ctx.train_form:
        raise RuntimeError(_NOT_TRAINING_FORM.format(op="gru_sequence", flags=f"train={ctx.flags}", form="train=True"))
    x, h0, w_ih, w_hh, b_hh, out, z, r, n, ghn = ctx.saved_tensors
    need = ctx.needs_input_grad
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = getattr(ctx, "backward_op", ops.gru_backward.default)(
        x, h0, w_ih, w_hh, b_hh, ctx.has_bias, out, z, r, n, ghn, d_out, d_hT, need[0], need[1])
    return (dx if need[0] else None, dh0 if need[1] else None, dw_ih if need[2] else None,
            dw_hh if need[3] else None, db_ih if ctx.has_bias and need[4] else None,
            db_hh if ctx.has_bias and need[5] else None, None, None)


def _rnn_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, relu = inputs
    ctx.has_bias, ctx.relu = b_ih is not None, relu
    ctx.save_for_backward(x, h0, w_ih, w_hh, output[0])


def _rnn_backward(ctx, d_out, d_hT):
    x, h0, w_ih, w_hh, out = ctx.saved_tensors
    need = ctx.needs_input_grad
    dx, dh0, dw_ih, dw_hh, db = getattr(ctx, "backward_op", ops.rnn_backward.default)(x, h0, w_ih, w_hh, ctx.has_bias, ctx.relu, out, d_out,
                                                         d_hT, need[0], need[1])
    return (dx if need[0] else None, dh0 if need[1] else None, dw_ih if need[2] else None,
            dw_hh if need[3] else None, db if ctx.has_bias and need[4] else None,
            db if ctx.has_bias and need[5] else None, None)


register_autograd("rnnstate::lstm_sequence", _lstm_backward, setup_context=_lstm_setup)
register_autograd("rnnstate::gru_sequence", _gru_backward, setup_context=_gru_setup)
register_autograd("rnnstate::rnn_sequence", _rnn_backward, setup_context=_rnn_setup)


# ---- vmap -------------------------------------------------------------------------------------------------
def _vmap_rule(op, n_batched, n_tensors, present):
    """A vmap rule for a sequence/step op whose first `n_batched` arguments have the batch as axis 0
    (x, then the states) and whose next arguments up to `n_tensors` are weights. `present(*flags)` says
    which outputs are real (the others are the empty (0,) placeholders)."""

    def rule(info, in_dims, *args):
        N = info.batch_size
        flags = args[n_tensors:]
        keep = present(*flags)
        if all(d is None for d in in_dims[n_batched:n_tensors]):        # shared weights: fold N into B
            B = None
            folded = []
            for a, d in zip(args[:n_batched], in_dims[:n_batched]):
                if d is None:
                    a = a.unsqueeze(0).expand(N, *a.shape)
                else:
                    a = a.movedim(d, 0)
                B = a.shape[1]
                folded.append(a.reshape(N * a.shape[1], *a.shape[2:]))
            outs = op(*folded, *args[n_batched:])
            res = tuple(o.reshape(N, B, *o.shape[1:]) if k else o for o, k in zip(outs, keep))
            return res, tuple(0 if k else None for k in keep)
        per = []
        for i in range(N):                                             # per-slice weights: one call each
            sl = [a if d is None else a.select(d, i) for a, d in zip(args[:n_tensors], in_dims[:n_tensors])]
            per.append(op(*sl, *flags))
        res = tuple(torch.stack([p[j] for p in per]) if k else per[0][j] for j, k in enumerate(keep))
        return res, tuple(0 if k else None for k in keep)

    return rule


def _one_output(rule):
    """A tuple-output vmap rule (of an op wrapped to return a 1-tuple) as a single-output op's rule."""

    def one(info, in_dims, *args):
        res, dims = rule(info, in_dims, *args)
        return res[0], dims[0]

    return one


register_vmap("rnnstate::lstm_sequence", _vmap_rule(ops.lstm_sequence.default, 3, 6,
                                                    lambda want_c, want_g: (True, True, True, want_c) + (want_g,) * 4))
register_vmap("rnnstate::lstm_step", _vmap_rule(ops.lstm_step.default, 3, 6, lambda: (True, True)))
register_vmap("rnnstate::gru_step", _one_output(_vmap_rule(lambda *a: (ops.gru_step.default(*a),), 2, 6,
                                                        lambda: (True,))))
register_vmap("rnnstate::rnn_step", _one_output(_vmap_rule(lambda *a: (ops.rnn_step.default(*a),), 2, 6,
                                                        lambda relu: (True,))))
register_vmap("rnnstate::gru_sequence", _vmap_rule(ops.gru_sequence.default, 2, 6,
                                                   lambda want_g, train: (True, True) + (want_g or train,) * 3
                                                   + (train,)))
register_vmap("rnnstate::rnn_sequence", _vmap_rule(ops.rnn_sequence.default, 2, 6, lambda relu: (True, True)))


# ---- eager training entry -----------------------------------------------------------------------------------
def _eager_function(name, op, backward_op, setup, backward, n_diff_outputs):
    """A ``torch.autograd.Function`` for plain eager training with the registered op's own autograd
    formulas (``setup``/``backward`` above): the op's CPU kernel is called below autograd directly. Same
    numbers and gradients as calling the op; torch.library's Python autograd wrapper costs ~75 us per
    call (measured, fwd+bwd at a small shape: 203 vs 359 us on a loaded 2-core machine), a tenth of a
    short sequence's step time in training. Under torch.compile / export / vmap the op itself runs."""
    raw, raw_backward = op._op, backward_op._op

    def forward(ctx, *args):
        with torch._C._AutoDispatchBelowAutograd():
            out = raw(*args)
        setup(ctx, args, out)
        ctx.backward_op = raw_backward          # the backward kernel, also without OpOverload's frame
        ctx.set_materialize_grads(False)
        return tuple(out[:n_diff_outputs])      # the rest (c/gate sequences) stay with ctx, as saved

    def bwd(ctx, *grads):
        return backward(ctx, *grads)

    # returns the differentiable outputs only (out, h_T[, c_T]); the formulas take the others' gradients
    # as trailing arguments they ignore
    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(bwd)})


LSTMTrain = _eager_function("LSTMTrain", ops.lstm_sequence.default, ops.lstm_backward.default, _lstm_setup, _lstm_backward, 3)
GRUTrain = _eager_function("GRUTrain", ops.gru_sequence.default, ops.gru_backward.default, _gru_setup, _gru_backward, 2)
RNNTrain = _eager_function("RNNTrain", ops.rnn_sequence.default, ops.rnn_backward.default, _rnn_setup, _rnn_backward, 2)
