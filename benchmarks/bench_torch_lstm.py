"""Time one LSTM training step (forward + backward) of gated_lib's from-equations modules against
torch.nn.LSTM (cuDNN on a GPU, oneDNN/ATen on a CPU), in one run.

    python benchmarks/bench_torch_lstm.py                  # B=64, D=128, H=256, T=100, float32
    python benchmarks/bench_torch_lstm.py --device cuda    # or GATED_LIB_DEVICE=cuda
    python benchmarks/bench_torch_lstm.py --json out.json

Contenders (the same parameters, the same input; loss = mean(out^2), backward to every weight):

    textbook gated_lib.nn.Cell("lstm") stepped in a Python loop, x_t W_ih^T computed at every step,
             outputs stacked: the loop a learner writes first (autograd does the backward)
    eager    gated_lib.nn.LSTM(backend="eager"): the step equations, differentiated by autograd
    fused    gated_lib.nn.LSTM(backend="fused"): the same equations, hand-written BPTT
             (gated_lib/nn/fused.py: one GEMM for the input projection of all T steps, gate-major
             recurrent GEMM, derivative factors computed in the forward)
    torch    gated_lib.nn.LSTM(backend="torch") = torch.nn.LSTM's kernel on the same Parameters

Each round runs every contender as a block of --inner consecutive steps and drops the first of each
block (thread pools of the previous contender are still spinning then), so all contenders see the
same machine load. Times are medians over all timed steps; the ratio X/torch is the median over
rounds of the ratio of the two blocks of a round (back to back, so under the same load): on a shared
machine this is far steadier than a ratio of medians. Compare ratios from one run, never times
across runs. Outputs and gradients are checked against torch first. Prints the device by name.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gated_lib.nn import LSTM, Cell, get_device  # noqa: E402

CONTENDERS = ("textbook", "eager", "fused", "torch")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100, help="sequence length T")
    ap.add_argument("--device", default=None, help="cpu, cuda, mps (default: GATED_LIB_DEVICE, then cuda > mps > cpu)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--inner", type=int, default=3, help="steps per block; the first of each block is not timed")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    B, D, H, T = args.batch, args.input, args.hidden, args.steps
    name = device_name(device)
    print(f"device: {name}")
    print(f"LSTM training step (forward + backward), B={B} D={D} H={H} T={T}, float32, torch {torch.__version__}")

    torch.manual_seed(args.seed)
    model = LSTM(D, H).to(device)
    x = torch.randn(T, B, D, device=device)
    cell = Cell("lstm", D, H).to(device)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in model.state_dict().items()})

    def textbook():
        cell.zero_grad(set_to_none=True)
        state, outs = None, []
        for t in range(T):
            state = cell(x[t], state)
            outs.append(state[0])
        out = torch.stack(outs)
        out.pow(2).mean().backward()
        return out

    def step(backend):
        if backend == "textbook":
            return textbook()
        model.backend = backend
        model.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.pow(2).mean().backward()
        return out

    # the contenders compute the same thing (float32 tolerance)
    ref_out = step("torch").detach()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    for b in CONTENDERS[:-1]:
        out = step(b).detach()
        params = cell.parameters() if b == "textbook" else model.parameters()
        err = max([float((out - ref_out).abs().max())] +
                  [float((p.grad - g).abs().max() / (g.abs().max() + 1e-12)) for p, g in zip(params, ref_grads)])
        if err > 1e-3:
            raise SystemExit(f"{b}: differs from torch.nn.LSTM by {err:.2e}")

    for _ in range(args.warmup):
        for b in CONTENDERS:
            step(b)
    sync(device)
    times = {b: [] for b in CONTENDERS}               # every timed step
    per_round = {b: [] for b in CONTENDERS}           # the median step of each round's block
    for _ in range(args.rounds):
        for b in CONTENDERS:
            block = []
            for _ in range(args.inner):
                t0 = time.perf_counter()
                step(b)
                sync(device)
                block.append(time.perf_counter() - t0)
            block = block[1:] if args.inner > 1 else block
            times[b].extend(block)
            per_round[b].append(statistics.median(block))
    med = {b: statistics.median(v) for b, v in times.items()}
    # the ratio of each round's blocks, which ran back to back under the same load, then the median
    ratio = {b: statistics.median(x / y for x, y in zip(per_round[b], per_round["torch"])) for b in CONTENDERS}
    print(f"\n{'backend':<9} {'median ms':>10} {'min ms':>8} {'x torch.nn (median of per-round ratios)':>40}")
    for b in CONTENDERS:
        print(f"{b:<9} {1e3 * med[b]:>10.1f} {1e3 * min(times[b]):>8.1f} {ratio[b]:>40.2f}")
    result = {"device": name, "device_type": device.type, "B": B, "D": D, "H": H, "T": T,
              "median_s": med, "min_s": {b: min(v) for b, v in times.items()}, "ratio_to_torch": ratio,
              "rounds": args.rounds, "inner": args.inner, "torch": torch.__version__}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
