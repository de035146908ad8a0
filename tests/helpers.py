"""Small helpers shared by the test modules (no fixtures here: see conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run_python(code: str, env: dict[str, str | None] | None = None, timeout: float = 900) -> str:
    """Run ``code`` in a fresh interpreter and return its stdout; fail with its stderr.

    ``env`` is merged into this process's environment; a ``None`` value removes that variable.
    """
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def streams(n: int = 5) -> tuple[list[float], list[float], list[float]]:
    """The next ``n`` draws of Python random, NumPy's global RNG and torch's CPU RNG."""
    import random

    import numpy as np
    import torch

    return (
        [random.random() for _ in range(n)],
        np.random.rand(n).tolist(),
        torch.rand(n).tolist(),
    )


def guide_set_seed(seed: int = 42) -> None:
    """The reference guide's ``set_seed``, verbatim."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # For multi-GPU


def torch_flags() -> dict[str, bool]:
    """The backend flags a profile sets, read straight from torch."""
    import torch

    b = torch.backends
    return dict(
        det=b.cudnn.deterministic,
        bench=b.cudnn.benchmark,
        algos=torch.are_deterministic_algorithms_enabled(),
        warn=torch.is_deterministic_algorithms_warn_only_enabled(),
        tf32=b.cuda.matmul.allow_tf32,
        cudnn_tf32=b.cudnn.allow_tf32,
        fill=torch.utils.deterministic.fill_uninitialized_memory,
    )


def refusing_framework(refuses: str = "flags") -> object:
    """A real adapter (on the ``json`` module) whose backend refuses every flag, or (with
    ``refuses="seed"``) every seed.

    Registered after the built-ins, it fails after torch was switched or seeded, so a
    change must roll torch back. Import ``json`` first: only imported modules are live.
    """
    from repro.frameworks import Framework

    class Refusing(Framework):
        name, module, label = "refusing", "json", "refusing"

        def seed(self, seed: int) -> None:
            if refuses == "seed":
                raise RuntimeError("this generator refuses its seed")

        def get_state(self) -> None:
            return None

        def set_state(self, state: object) -> None:
            pass

        def reset(self) -> None:
            pass

        def fingerprints(self) -> dict[str, str]:
            return {}

        def apply_settings(self, settings: object) -> None:
            if refuses == "flags":
                raise RuntimeError("this backend refuses")

    return Refusing()
