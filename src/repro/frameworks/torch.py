"""PyTorch: the CPU generator, every CUDA device's generator, and the backend flags."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from repro._warning import ReproWarning
from repro.frameworks.base import Framework, fingerprint

#: Set when deterministic algorithms are switched on and the variable is unset:
#: cuBLAS (CUDA >= 10.2) is only deterministic with a fixed workspace.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def _torch() -> Any:
    return sys.modules["torch"]


#: The deterministic-algorithms mode repro last wrote, for torch._inductor.config once imported.
_inductor_mode: bool | None = None
_inductor_hooked = False


def _sync_inductor(config: Any) -> None:
    """Post-import hook on ``torch._inductor.config``: mirror the mode repro set."""
    if _inductor_mode is not None:
        config.deterministic = _inductor_mode


def _use_deterministic_algorithms(torch: Any, mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms(mode, warn_only=...)``, without its eager import.

    torch's function imports ``torch._inductor.config`` to set its ``deterministic``
    field, which costs seconds in a kernel that never compiles. repro sets the same
    two things, the C++ flag now and inductor's field now if inductor is loaded or
    else when it is imported (a post-import hook), so ``torch.compile`` later sees
    the same mode as with torch's own call.
    """
    global _inductor_mode, _inductor_hooked
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_flag is None:  # a torch without the private setter: its public call does both
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    set_flag(mode, warn_only=warn_only)
    _inductor_mode = mode
    config = sys.modules.get("torch._inductor.config")
    if config is not None:
        config.deterministic = mode
    elif not _inductor_hooked:
        import wrapt

        wrapt.register_post_import_hook(_sync_inductor, "torch._inductor.config")
        _inductor_hooked = True


def _cudnn_version(torch: Any) -> int | None:
    """cuDNN's version as ``torch.backends.cudnn.version()`` gives it, without starting CUDA.

    ``cudnn.version()`` initialises CUDA (seen with torch 2.11 on an H200), which
    reading the state must never do. Until CUDA runs, the version torch was built
    against is read instead: torch checks at CUDA start that the runtime's major
    version equals it and its minor is not older.
    """
    cudnn = torch.backends.cudnn
    if not cudnn.is_available():
        return None
    if torch.cuda.is_initialized():
        return cudnn.version()
    try:
        major, minor, patch = torch._C._cudnn.getCompileVersion()
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None
    # cuDNN's own encoding: 8.9.2 -> 8902, 9.1.0 -> 90100.
    return major * (10_000 if major >= 9 else 1_000) + minor * 100 + patch


def _has_accelerator(torch: Any) -> bool:
    """Whether this torch build may run an accelerator (CUDA, MPS, XPU, a plugin's device...).

    A build with CUDA answers yes from the build alone, asking no driver, so it keeps
    torch's own seeding path unchanged. Otherwise ``torch.accelerator.current_accelerator()``
    answers without starting a device; a torch older than that API is assumed to have one.
    """
    if torch.backends.cuda.is_built():
        return True
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is None or not hasattr(accelerator, "current_accelerator"):
        return True
    return accelerator.current_accelerator() is not None


def _matmul_precision(torch: Any) -> str:
    try:
        return torch.get_float32_matmul_precision()
    except RuntimeError:
        # torch >= 2.9 raises here once the legacy and the new TF32 APIs were both used.
        return "high" if torch.backends.cuda.matmul.allow_tf32 else "highest"


class TorchRandom(Framework):
    """``torch.manual_seed`` for CPU and every CUDA device; cuDNN, TF32 and determinism flags."""

    name = "torch"
    module = "torch"
    label = "torch"

    def seed(self, seed: int) -> None:
        """``torch.manual_seed(seed)``: the CPU generator and every CUDA device's.

        torch.manual_seed calls ``torch.cuda.manual_seed_all`` itself (except in a
        forked child, where CUDA cannot start), and that is lazy: an uninitialised
        device is seeded when CUDA starts, so seeding never initialises a GPU.
        Calling ``manual_seed_all`` a second time only queued the same seed again,
        and each queued seed formats a Python stack (25 µs or more).
        """
        torch = _torch()
        if _has_accelerator(torch):
            torch.manual_seed(seed)
        else:
            # A torch built without any accelerator: the seeds torch.manual_seed queues
            # for CUDA, XPU and MTIA can never run, and queuing each formats a Python
            # stack (nine tenths of its cost). The CPU generator is seeded the same.
            torch.default_generator.manual_seed(seed)

    def get_state(self) -> Any:
        """CPU state always; CUDA states only where CUDA is already initialised."""
        torch = _torch()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda, "initial_seed": torch.initial_seed()}

    def set_state(self, state: Any) -> None:
        """Restore :meth:`get_state`'s value.

        If CUDA was not initialised when the state was saved, its generators had
        only a (lazily queued) seed: queue that seed again, which also resets any
        device the scope initialised.
        """
        torch = _torch()
        torch.set_rng_state(state["cpu"])
        if state["cuda"] is not None:
            torch.cuda.set_rng_state_all(state["cuda"])
        elif _has_accelerator(torch):  # without one, a queued seed could never run
            torch.cuda.manual_seed_all(state["initial_seed"])

    def reset(self) -> None:
        """Reseed from the OS, as ``import torch`` does."""
        _torch().seed()

    def fingerprints(self) -> dict[str, str]:
        """``torch (CPU)`` and one ``torch cuda:N`` per device, the latter only once CUDA is up."""
        torch = _torch()
        out = {"torch (CPU)": fingerprint(torch.get_rng_state().numpy().tobytes())}
        if torch.cuda.is_initialized():
            for i in range(torch.cuda.device_count()):
                state = torch.cuda.get_rng_state(i)
                out[f"torch cuda:{i}"] = fingerprint(state.numpy().tobytes())
        return out

    def read_settings(self) -> dict[str, Any]:
        """Every flag the profiles touch, plus what cuDNN and CUDA are. Never initialises CUDA."""
        torch = _torch()
        b = torch.backends
        if not torch.are_deterministic_algorithms_enabled():
            algorithms = "off"
        elif torch.is_deterministic_algorithms_warn_only_enabled():
            algorithms = "warn"
        else:
            algorithms = "raise"
        return {
            "cudnn_available": bool(b.cudnn.is_available()),
            "cudnn_version": _cudnn_version(torch),
            "cudnn_enabled": bool(b.cudnn.enabled),
            "cudnn_deterministic": bool(b.cudnn.deterministic),
            "cudnn_benchmark": bool(b.cudnn.benchmark),
            "cudnn_tf32": bool(b.cudnn.allow_tf32),
            "matmul_tf32": bool(b.cuda.matmul.allow_tf32),
            "float32_matmul_precision": _matmul_precision(torch),
            "deterministic_algorithms": algorithms,
            "fill_uninitialized_memory": bool(torch.utils.deterministic.fill_uninitialized_memory),
            "cuda_initialized": bool(torch.cuda.is_initialized()),
        }

    def _write(self, values: Mapping[str, Any]) -> None:
        torch = _torch()
        b = torch.backends
        setters = {
            "cudnn_enabled": lambda v: setattr(b.cudnn, "enabled", v),
            "cudnn_deterministic": lambda v: setattr(b.cudnn, "deterministic", v),
            "cudnn_benchmark": lambda v: setattr(b.cudnn, "benchmark", v),
            "cudnn_tf32": lambda v: setattr(b.cudnn, "allow_tf32", v),
            "matmul_tf32": lambda v: setattr(b.cuda.matmul, "allow_tf32", v),
            # The legacy allow_tf32 flag already sets "highest"/"high"; only "medium" (bf16)
            # needs the newer call, written after it (mixing them in the other order makes
            # torch.get_float32_matmul_precision() raise).
            "float32_matmul_precision": lambda v: (
                torch.set_float32_matmul_precision(v) if v == "medium" else None
            ),
            "deterministic_algorithms": lambda v: _use_deterministic_algorithms(
                torch, v != "off", warn_only=v == "warn"
            ),
            "fill_uninitialized_memory": lambda v: setattr(
                torch.utils.deterministic, "fill_uninitialized_memory", v
            ),
        }
        before = self.read_settings()
        # Only flags that change are written: an unchanged flag must cost nothing.
        try:
            for key, value in values.items():
                if key in setters and before.get(key) != value:
                    setters[key](value)
        except BaseException:
            # All or nothing: a flag that fails puts back every flag already switched.
            now = self.read_settings()
            for key, value in before.items():
                if key in setters and now.get(key) != value:
                    setters[key](value)
            raise

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        """Switch cuDNN, TF32 and deterministic-algorithm flags to ``settings``.

        With deterministic algorithms on, ``CUBLAS_WORKSPACE_CONFIG`` is set to
        ``:4096:8`` if unset; a :class:`ReproWarning` says when CUDA already runs,
        because cuBLAS may have read the variable already.
        """
        self._write(settings)
        if settings.get("deterministic_algorithms", "off") != "off" and not os.environ.get(
            "CUBLAS_WORKSPACE_CONFIG"
        ):
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
            if _torch().cuda.is_initialized():
                warnings.warn(
                    "repro: CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set, so "
                    "cuBLAS in this process may still be nondeterministic; set the profile "
                    "before the first CUDA call, or start the kernel with "
                    "`repro kernel install`.",
                    ReproWarning,
                    stacklevel=4,
                )

    def restore_settings(self, saved: dict[str, Any]) -> None:
        """Put back every writable flag from :meth:`read_settings`'s dict."""
        self._write(saved)

    def describe(self) -> dict[str, Any]:
        """Versions of torch, CUDA and cuDNN; threads, default dtype and the GPUs.

        GPU names and compute capability are read only where CUDA is already
        initialised: reading them would otherwise start CUDA in the user's kernel.
        """
        torch = _torch()
        facts: dict[str, Any] = {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": _cudnn_version(torch),
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "default_dtype": str(torch.get_default_dtype()).removeprefix("torch."),
            "cuda_available": bool(torch.cuda.is_available()),
        }
        if torch.cuda.is_initialized():
            facts["gpus"] = [
                {"name": props.name, "capability": f"{props.major}.{props.minor}"}
                for props in map(torch.cuda.get_device_properties, range(torch.cuda.device_count()))
            ]
        elif facts["cuda_available"]:
            facts["gpu_count"] = torch.cuda.device_count()
            facts["gpus"] = (
                "not read: CUDA is not initialised in this kernel, and repro does not start it "
                "to describe it"
            )
        return facts
