"""Can a learner solve the adding problem (T = 100) on a laptop CPU? Train with the defaults and time it.

    python benchmarks/bench_torch_adding_feasibility.py                 # LSTM, then vanilla tanh RNN
    python benchmarks/bench_torch_adding_feasibility.py --seeds 0 1 2   # several seeds
    python benchmarks/bench_torch_adding_feasibility.py --json out.json

"The defaults" are everything Trainer.for_task(AddingProblem(T=100)) picks without arguments:
the task's model (LSTM, H = 32, forget bias 5) and TrainConfig() (Adam, lr 1e-2, batch 128, clip
norm 1, validation on 1,000 fixed sequences every 100 steps, early stop at 95 % of them correct,
|error| < 0.04 as Hochreiter & Schmidhuber 1997). The vanilla tanh RNN gets the same configuration
and the same time budget (--time-limit, default 180 s); it is expected to stay at the memoryless
baseline (predict 0.5: MSE = Var(target) = 0.0392, about 15 % "correct" by chance).

Prints, per run, the step and the wall time at which the task was solved (or the budget ran out),
and the final validation MSE and fraction correct next to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gated_lib.nn import get_device  # noqa: E402
from gated_lib.tasks import AddingProblem  # noqa: E402
from gated_lib.training import TrainConfig, Trainer  # noqa: E402


def run(cell: str, seed: int, time_limit: float, device, T: int = 100) -> dict:
    task = AddingProblem(T=T)
    config = TrainConfig(seed=seed, time_limit=time_limit, device=device, progress=False)
    t0 = time.perf_counter()
    trainer = Trainer.for_task(task, None, config, cell=cell)
    trainer.fit()
    wall = time.perf_counter() - t0
    last = trainer.history.last("val")
    return {"cell": cell, "seed": seed, "solved": trainer.solved_at is not None, "steps": trainer.step,
            "train_seconds": round(trainer.elapsed, 1), "wall_seconds": round(wall, 1),
            "mse": last["mse"], "fraction_correct": last["fraction_correct"],
            "backend": trainer.model.rnn.resolved_backend()}


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cells", nargs="+", default=["lstm", "rnn_tanh"])
    ap.add_argument("--time-limit", type=float, default=180.0)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    device = get_device(args.device)
    cpu = platform.processor() or platform.machine()
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu}, "
          f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}), torch {torch.__version__}")
    base = AddingProblem(T=args.T).baseline()
    print(f"adding problem T={args.T}; baseline (predict 0.5): mse {base['mse']:.4f}, "
          f"fraction correct {base['fraction_correct']:.3f}; budget {args.time_limit:.0f} s per run")
    results = []
    for seed in args.seeds:
        for cell in args.cells:
            r = run(cell, seed, args.time_limit, str(device), args.T)
            results.append(r)
            status = f"SOLVED at step {r['steps']}" if r["solved"] else f"not solved after {r['steps']} steps"
            print(f"{cell:<9} seed {seed}: {status} in {r['train_seconds']:.1f} s "
                  f"(wall {r['wall_seconds']:.1f} s, backend {r['backend']}); "
                  f"val mse {r['mse']:.4f}, fraction correct {r['fraction_correct']:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"baseline": base, "runs": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
