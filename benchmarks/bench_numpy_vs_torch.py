"""Time gated_lib's numpy LSTM against torch.nn.LSTM on the CPU, in one run.

    python benchmarks/bench_numpy_vs_torch.py            # B=64, D=128, H=256, T=100, float32
    python benchmarks/bench_numpy_vs_torch.py --json out.json

Measures, round by round so that both sides see the same machine load (each round runs every
contender as a block of --inner consecutive calls and drops the first call of each block: numpy's
OpenBLAS threads and torch's OpenMP threads keep spinning for a while after their last call, and
that first call pays for the other library's threads):

    numpy forward              gated_lib.lstm_forward (keeps the cache BPTT needs)
    numpy forward+backward     lstm_forward + lstm_backward (all parameter gradients)
    torch forward (no_grad)    torch.nn.LSTM under torch.no_grad()
    torch forward (autograd)   torch.nn.LSTM recording the graph, as in training
    torch forward+backward     forward + out.backward(dout)

and prints the median time of each, the throughput (tokens = T*B per second) and the numpy/torch
throughput ratios. Shared machines are noisy: compare ratios from one run, not times across runs.
The numpy and torch outputs are checked against each other first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gated_lib.convert import from_torch  # noqa: E402
from gated_lib.lstm import lstm_backward, lstm_forward  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds (each runs every contender as a block)")
    ap.add_argument("--inner", type=int, default=4, help="calls per block; the first of each is not timed")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    B, D, H, T = args.batch, args.input, args.hidden, args.steps

    torch.manual_seed(args.seed)
    lstm = torch.nn.LSTM(D, H)               # float32, CPU
    params = from_torch(lstm)[0]
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)
    xt, doutt = torch.from_numpy(x), torch.from_numpy(dout)

    with torch.no_grad():
        ref = lstm(xt)[0].numpy()
    (out, _), _ = lstm_forward(x, params)
    max_diff = float(np.max(np.abs(out - ref)))
    if max_diff > 1e-4:
        raise SystemExit(f"numpy and torch outputs differ by {max_diff:.2e}: not timing a wrong forward")

    def np_forward():
        lstm_forward(x, params)

    def np_forward_backward():
        (_, _), cache = lstm_forward(x, params)
        lstm_backward(dout, cache)

    def torch_forward_nograd():
        with torch.no_grad():
            lstm(xt)

    def torch_forward_autograd():
        lstm(xt)

    def torch_forward_backward():
        lstm.zero_grad(set_to_none=True)
        out_t, _ = lstm(xt)
        out_t.backward(doutt)

    contenders = {
        "numpy forward": np_forward,
        "numpy forward+backward": np_forward_backward,
        "torch forward (no_grad)": torch_forward_nograd,
        "torch forward (autograd)": torch_forward_autograd,
        "torch forward+backward": torch_forward_backward,
    }
    for _ in range(args.warmup):
        for fn in contenders.values():
            fn()
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            fn()
            for _ in range(args.inner - 1):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    tokens = T * B
    throughput = {name: tokens / t for name, t in median.items()}
    ratios = {
        "forward: numpy / torch no_grad": throughput["numpy forward"] / throughput["torch forward (no_grad)"],
        "forward: numpy / torch autograd": throughput["numpy forward"] / throughput["torch forward (autograd)"],
        "forward+backward: numpy / torch": (throughput["numpy forward+backward"]
                                            / throughput["torch forward+backward"]),
    }
    report = dict(
        config=dict(B=B, D=D, H=H, T=T, dtype="float32", rounds=args.rounds, inner=args.inner),
        machine=dict(cpu_count=os.cpu_count(), processor=platform.processor() or platform.machine(),
                     torch=torch.__version__, torch_threads=torch.get_num_threads(), numpy=np.__version__,
                     python=platform.python_version()),
        max_abs_diff_forward=max_diff,
        median_seconds=median, tokens_per_second=throughput, ratios=ratios,
    )
    print(f"LSTM B={B} D={D} H={H} T={T} float32; {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), numpy {np.__version__}; "
          f"median of {args.rounds} rounds x {args.inner - 1} timed calls")
    print(f"forward outputs agree to {max_diff:.1e}")
    for name in contenders:
        print(f"  {name:<26} {median[name] * 1e3:9.1f} ms   {throughput[name]:12,.0f} tokens/s")
    for name, r in ratios.items():
        print(f"  throughput ratio, {name:<34} {r:5.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
