"""Building batches of standardized tensors for the training loop (glue between ``data`` and the
compiled ``CompiledSpec``)."""

from .data import ArrayBatches, IterableBatches, check_cardinality, is_batch_iterable, split_tail, unpack_batch

__all__ = ["array_batches", "batches", "validation_batches", "split_batch", "single_batch"]


def array_batches(spec, x, y, sample_weight, class_weight, batch_size, shuffle, steps, split=0.0, cycle=True):
    """(ArrayBatches over [*inputs, *targets, *sample_weights], held-out flat tensors or None).
    ``split``: Keras' validation_split (the tail, taken before shuffling); class weights apply to
    the training part only."""
    xs = spec.standardize_x(x)
    ys = spec.standardize_y(y, required=True)
    sws = spec.standardize_sample_weight(sample_weight, ys)
    nx, n_out = len(xs), len(ys)
    flat = xs + ys + (sws or [None] * n_out)
    labels = spec.x_labels() + spec.y_labels() + [f"sample_weight[{k!r}]" for k in spec.output_names]
    check_cardinality(list(zip(labels, flat)))
    val = None
    if split:
        flat, val = split_tail(flat, split)
    if class_weight:
        for i, w in enumerate(spec.standardize_sample_weight(None, flat[nx:nx + n_out], class_weight)):
            if w is not None:
                prev = flat[nx + n_out + i]
                flat[nx + n_out + i] = w if prev is None else prev.reshape(
                    prev.shape + (1,) * (w.dim() - prev.dim())) * w
    return ArrayBatches(flat, batch_size or 32, shuffle=shuffle, steps=steps, cycle=cycle), val


def batches(spec, x, y, sample_weight, batch_size, steps, what="evaluate"):
    """One pass of batches (evaluate): arrays or an iterable of batches."""
    if is_batch_iterable(x):
        if y is not None or sample_weight is not None:
            raise ValueError(f"{what}(): when x is a dataset/iterable of batches (here a {type(x).__name__}), y and "
                             "sample_weight must come from its batches ((x, y) or (x, y, sample_weight)), not as "
                             "separate arguments.")
        return IterableBatches(x, steps)
    return array_batches(spec, x, y, sample_weight, None, batch_size, False, steps, cycle=False)[0]


def validation_batches(spec, validation_data, batch_size, steps):
    if is_batch_iterable(validation_data):
        return IterableBatches(validation_data, steps)
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        vx, vy = validation_data[0], validation_data[1]
        vsw = validation_data[2] if len(validation_data) == 3 else None
        return array_batches(spec, vx, vy, vsw, None, batch_size, False, steps, cycle=False)[0]
    raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight), or a "
                     f"dataset/iterable of batches; received {type(validation_data).__name__}"
                     + (f" of length {len(validation_data)}" if hasattr(validation_data, "__len__") else "") + ".")


def split_batch(spec, batch, data, mv, class_weight=None):
    """(inputs, targets, sample weights or None), moved by ``mv``, from one batch of ``data``."""
    if isinstance(data, IterableBatches):
        x, y, sw = unpack_batch(batch)
        xs = spec.standardize_x(x)
        ys = spec.standardize_y(y, required=True)
        sws = spec.standardize_sample_weight(sw, ys, class_weight)
    else:
        nx, no = len(spec.input_names), len(spec.output_names)
        xs, ys, sws = batch[:nx], batch[nx:nx + no], batch[nx + no:]
        if all(w is None for w in sws):
            sws = None
    return [mv(t) for t in xs], [mv(t) for t in ys], (None if sws is None else [mv(t) for t in sws])


def single_batch(spec, mv, x, y, sample_weight, class_weight=None):
    """train_on_batch / test_on_batch: the whole given data as one batch."""
    xs = spec.standardize_x(x)
    ys = spec.standardize_y(y, required=True)
    sws = spec.standardize_sample_weight(sample_weight, ys, class_weight)
    check_cardinality(list(zip(spec.x_labels() + spec.y_labels(), xs + ys)))
    return [mv(t) for t in xs], [mv(t) for t in ys], (None if sws is None else [mv(t) for t in sws])
