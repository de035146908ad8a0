"""The environment variables repro reads and writes, named once.

Three lists with three meanings: what repro writes itself (and ``scope`` therefore saves
and restores), what it ever reads into its output (the allow-list: a token in any other
variable never reaches a report), and which of those change numerical results.
"""

from __future__ import annotations

__all__ = [
    "AFFECTING_RESULTS",
    "LIGHTNING_SEED_VARIABLE",
    "OVERRIDES_VARIABLE",
    "PROFILE_VARIABLE",
    "RECORDED",
    "SEED_VARIABLE",
    "SHOWN",
    "WRITTEN",
]

#: The seed a parent hands to its child processes (``repro.seed_from_env`` reads it).
SEED_VARIABLE = "REPRO_SEED"
#: Lightning's seed hand-over, read when ``REPRO_SEED`` is unset (a Lightning script and a
#: repro notebook then agree).
LIGHTNING_SEED_VARIABLE = "PL_GLOBAL_SEED"
#: The profile handed to child processes.
PROFILE_VARIABLE = "REPRO_PROFILE"
#: The profile's flag overrides handed to child processes, a JSON object.
OVERRIDES_VARIABLE = "REPRO_OVERRIDES"

#: The variables repro itself writes: ``scope`` saves and restores exactly these.
WRITTEN = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    SEED_VARIABLE,
    PROFILE_VARIABLE,
    OVERRIDES_VARIABLE,
)

#: The only variables ever read into repro's output (environment, reports): those that
#: change results or speed. Any other variable may hold a secret and is never shown.
RECORDED = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    SEED_VARIABLE,
    PROFILE_VARIABLE,
    OVERRIDES_VARIABLE,
)

#: The variables the state shows among its settings (and checks in its warnings).
SHOWN = ("CUBLAS_WORKSPACE_CONFIG",)

#: Of :data:`RECORDED`, those that change numerical results (the others change speed or devices).
AFFECTING_RESULTS = frozenset(
    {"CUBLAS_WORKSPACE_CONFIG", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"}
)
