"""Time per training step under each profile, against ``search`` (torch's defaults) in the same run.

    python benchmarks/bench_profiles.py                  # CPU, the small net of notebook 03
    python benchmarks/bench_profiles.py --device cuda --width 64 --batch 64 --size 64

A small conv net is trained from seed 0 under each profile in turn. The profiles are
interleaved over several rounds (the order rotates each round) so that a noisy machine
favours none of them, and the median step is kept. Each profile is also trained twice
from seed 0 to see whether its losses repeat bit for bit. Prints the median ms per step,
the ratio to ``search`` and the repeat check.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import repro


def make_net(width: int) -> nn.Module:
    """The conv net of notebook 03, ``width`` channels in its first layer."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, 10),
    )


def train(
    device: str, steps: int, width: int, batch: int, size: int
) -> tuple[list[float], list[float]]:
    """Seed 0, a fresh net, ``steps`` SGD steps on one batch: (losses, seconds per step)."""
    repro.seed(0)
    net = make_net(width).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    losses, times = [], []
    for _ in range(steps):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return losses, times[2:]  # the first steps warm up (and, in production, autotune)


def measure(
    device: str, rounds: int, steps: int, width: int, batch: int, size: int
) -> tuple[dict[str, float], dict[str, bool]]:
    """Median seconds per step of each built-in profile, and whether its losses repeat.

    Profiles are interleaved over ``rounds`` (the order rotates each round); each is
    also trained a second time from seed 0 once, to compare the losses bit for bit.
    """
    shape = dict(width=width, batch=batch, size=size)
    names = [profile.name for profile in repro.profiles()][:4]
    step_times: dict[str, list[float]] = {name: [] for name in names}
    repeats: dict[str, bool] = {}
    train(device, steps, **shape)  # the process's first steps are slow under any profile
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            repro.use_profile(name)
            losses, times = train(device, steps, **shape)
            step_times[name] += times
            if name not in repeats:
                repeats[name] = train(device, steps, **shape)[0] == losses
    return {name: statistics.median(step_times[name]) for name in names}, repeats


def main() -> None:
    """Parse the options, run the rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = dict(width=args.width, batch=args.batch, size=args.size)
    medians, repeats = measure(args.device, args.rounds, args.steps, **shape)

    where = torch.cuda.get_device_name() if args.device != "cpu" else "CPU"
    print(f"torch {torch.__version__} · {torch.get_num_threads()} threads · {where} · {shape}")
    base = medians["search"]
    print(f"{'profile':<11} {'ms/step':>9} {'vs search':>10}   repeats bit for bit")
    for name, median in medians.items():
        print(f"{name:<11} {1000 * median:>9.3f} {median / base:>9.2f}×   {repeats[name]}")


if __name__ == "__main__":
    main()
