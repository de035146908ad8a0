"""A Jupyter kernel whose ``str`` hashing is fixed: what ``repro kernel install`` writes.

A running Python cannot change its own hash seed, so the fix is a kernelspec that
starts the kernel with ``PYTHONHASHSEED`` (and ``CUBLAS_WORKSPACE_CONFIG``) set.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from repro._seed import check_seed
from repro.frameworks.torch import CUBLAS_WORKSPACE_CONFIG

__all__ = [
    "DEFAULT_KERNEL_NAME",
    "check_kernel_name",
    "install_kernel",
    "kernel_display_name",
    "switch_advice",
]

DEFAULT_KERNEL_NAME = "repro"


def kernel_display_name(hash_seed: int) -> str:
    """The name a kernel installed with ``hash_seed`` has in Jupyter's kernel menus."""
    return f"Python 3 (repro, hash seed {hash_seed})"


def switch_advice(display_name: str, folder: str) -> str:
    """What to do once a fixed-hash kernel is installed from a notebook: switch to it.

    The magic prints it and the panel shows it; the words are the frontends' own menus.
    """
    return (
        f"repro: installed the kernel {display_name!r} ({folder}).\n"
        "  This kernel keeps its randomized hashing: a running Python cannot change it. Switch\n"
        "  the notebook to the new kernel (JupyterLab and Notebook 7: Kernel → Change Kernel… →\n"
        f"  {display_name}; VS Code: Select Kernel), then run it again from the top."
    )


def check_kernel_name(name: str) -> str:
    """``name`` lower-cased if jupyter_client accepts it as a kernel name, else a ``ValueError``."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9._-]+", name):
        raise ValueError(
            f"kernel name may hold only letters, digits, '.', '_' and '-', got {name!r}"
        )
    return name.lower()


@contextlib.contextmanager
def _quiet_debugger_import() -> Iterator[None]:
    # ipykernel 6 imports debugpy with its kernelspec, and debugpy's pydevd then warns on
    # stderr about frozen modules (Python >= 3.11): four lines before `repro kernel install`
    # says anything. The variable is pydevd's own switch, read once at import; it is set
    # for the import only, and a user's own setting stands.
    if "PYDEVD_DISABLE_FILE_VALIDATION" in os.environ:
        yield
        return
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    try:
        yield
    finally:
        del os.environ["PYDEVD_DISABLE_FILE_VALIDATION"]


def install_kernel(
    name: str = DEFAULT_KERNEL_NAME,
    *,
    hash_seed: int = 0,
    display_name: str | None = None,
    user: bool = True,
    prefix: str | None = None,
) -> str:
    """Install a kernelspec for this Python with ``PYTHONHASHSEED=hash_seed``; return its folder.

    Uses ipykernel's own kernelspec (``ipykernel.kernelspec.install``, which writes
    ``kernel.json`` for ``sys.executable``) and jupyter_client's ``KernelSpecManager``.
    The spec's ``env`` also sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which cuBLAS
    reads once, when CUDA starts. ``prefix`` wins over ``user``. An existing
    kernelspec of the same name is replaced.
    """
    with _quiet_debugger_import():
        from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager

    hash_seed = check_seed(hash_seed, "hash_seed")
    name = check_kernel_name(name)
    env = {"PYTHONHASHSEED": str(hash_seed), "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE_CONFIG}
    return install(
        kernel_spec_manager=KernelSpecManager(),
        user=user and prefix is None,
        kernel_name=name,
        display_name=display_name or kernel_display_name(hash_seed),
        prefix=prefix,
        env=env,
    )
