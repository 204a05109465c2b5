"""Text addition (examples/addition.py) trained on several processes with torch.distributed.

    torchrun --nproc_per_node=2 examples/distributed.py --small     # 2 processes on this machine
    python examples/distributed.py --small                          # 1 process: the same training

On several machines run the same command on each, e.g. 2 machines with 4 processes each:

    torchrun --nnodes=2 --nproc_per_node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 examples/distributed.py

The only distributed line is ``init_process_group()``: torch picks gloo for CPU tensors and NCCL for
CUDA ones.  ``fit`` then trains through DistributedDataParallel; ``batch_size`` is the global batch
(each process gets its share), the logs are the global ones on every process, rank 0 alone prints
and writes the checkpoint, and ``predict`` returns every row, in order, on every process.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist

import rnnstate
from addition import build, decode, make_data
from rnnstate.training import ModelCheckpoint


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="2-digit numbers, 3,000 questions, 4 epochs")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch, split among the processes")
    p.add_argument("--checkpoint", default=os.path.join(tempfile.gettempdir(), "addition-ddp.safetensors"))
    a = p.parse_args(argv)

    if "RANK" in os.environ and not dist.is_initialized():   # launched by torchrun (or SLURM + env)
        dist.init_process_group()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)

    digits, n, epochs, hidden = (2, 3000, 4, 64) if a.small else (3, 50000, 30, 128)
    epochs = a.epochs or epochs
    rnnstate.utils.set_random_seed(0)            # same data and initial weights on every process
    x, y, qs, ans = make_data(n, digits, seed=0)
    split = len(x) - len(x) // 10
    model = build(digits, hidden).to(device)
    t0 = time.perf_counter()
    hist = model.fit(x[:split], y[:split], batch_size=a.batch_size, epochs=epochs, verbose=2,
                     validation_data=(x[split:], y[split:]),
                     callbacks=[ModelCheckpoint(a.checkpoint, monitor="val_loss", save_best_only=True)])
    per_epoch = (time.perf_counter() - t0) / epochs
    pred = decode(model.predict(x[split:], verbose=0))   # all rows, in order, on every rank
    exact = float(np.mean([p_ == t for p_, t in zip(pred, ans[split:])]))
    if rank == 0:
        print(f"{world} process(es): val char accuracy {hist.history['val_accuracy'][-1]:.3f}, exact answers "
              f"{exact:.3f}, {per_epoch:.2f} s/epoch; best model in {a.checkpoint}")
    if dist.is_initialized():
        dist.barrier()                # no rank tears gloo down while another still talks to it
        dist.destroy_process_group()
    return hist, exact


if __name__ == "__main__":
    main()
