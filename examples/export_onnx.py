"""Export a model to ONNX and stream through it with onnxruntime, one step at a time, the states fed back.

    pip install onnx onnxruntime        # or: pip install rnnstate[export] onnxruntime
    python examples/export_onnx.py
"""
import numpy as np
import onnxruntime as ort

import rnnstate
from rnnstate.layers import LSTM, Dense, Input

inputs = Input(shape=(None, 3), name="x")                   # any number of timesteps
h = LSTM(16, return_sequences=True, name="lstm")(inputs)
model = rnnstate.Model(inputs, Dense(1, name="y")(h))

info = rnnstate.export.onnx(model, "lstm.onnx")            # standard ONNX LSTM + MatMul/Add nodes
print(info.input_names, info.state_input_names)            # ['x'] ['lstm/initial_h', 'lstm/initial_c']
print(info.output_names)                                   # ['y', 'lstm/Y_h', 'lstm/Y_c']

sess = ort.InferenceSession("lstm.onnx")
x = np.random.default_rng(0).standard_normal((2, 20, 3)).astype("float32")   # (batch, time, features)

states = info.zero_states(batch_size=2)                    # a fresh start: zeros for every state input
ys = []
for t in range(x.shape[1]):                                # one step per call, as a live stream would
    outs = sess.run(None, {"x": x[:, t:t + 1], **states})
    ys.append(outs[0])                                     # (2, 1, 1): the prediction at step t
    states = info.next_states(outs)                        # final states -> next call's initial states

streamed = np.concatenate(ys, axis=1)
full = model.predict(x, verbose=0)                         # the whole sequence at once, in rnnstate
print("max |streamed ONNX - rnnstate|:", float(np.abs(streamed - full).max()))
assert np.allclose(streamed, full, atol=1e-5)
