"""What the hardening tests tried, counted: each test writes its counts for the README.

Each count lands in ``test-artifacts/reliability/<name>.json`` (one file per test, so
pytest-xdist workers never write the same file) and is printed, so ``pytest -rA -s``
shows it too. ``python tests/reliability.py`` prints the totals that the README's
"Reliability" section quotes.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parents[1] / "test-artifacts" / "reliability"


def record(name: str, **counts: Any) -> None:
    """Keep ``counts`` (inputs tried, faults injected, cells run, ...) under ``name``."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / f"{name}.json").write_text(json.dumps(counts, indent=1, sort_keys=True))
    print(f"reliability {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def kernel_state() -> dict[str, Any]:
    """Everything a rejected input must leave as it was: RNG states, flags, environment, session.

    Python's ``random.getstate()``, NumPy's ``get_state()`` and torch's
    ``get_rng_state()`` as comparable values, torch's backend flags, the whole
    ``os.environ``, and ``repro.state()`` (seed, profile, overrides, fingerprints).
    """
    import numpy as np
    import torch

    import repro

    name, keys, pos, has_gauss, cached = np.random.get_state()
    backends = torch.backends
    return {
        "random": random.getstate(),
        "numpy": (name, keys.tobytes(), pos, has_gauss, cached),
        "torch": bytes(torch.get_rng_state().numpy()),
        "flags": (
            backends.cudnn.deterministic,
            backends.cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            backends.cuda.matmul.allow_tf32,
            backends.cudnn.allow_tf32,
            torch.utils.deterministic.fill_uninitialized_memory,
        ),
        "environ": dict(os.environ),
        "state": repro.state(),
        "profiles": repro.profiles(),
    }


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The keys of :func:`kernel_state` that differ (empty: nothing changed)."""
    return [key for key in before if before[key] != after[key]]


if __name__ == "__main__":
    totals: dict[str, Any] = {}
    for path in sorted(FOLDER.glob("*.json")):
        counts = json.loads(path.read_text())
        print(f"{path.stem}: {counts}")
        for key, value in counts.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    print("totals:", totals)
