"""CUDA behaviour, for real: these run where a CUDA device is present and skip cleanly elsewhere.

Each runs in a fresh process: CUDA initialisation is process-wide, and some tests check
that repro never starts it.
"""

from __future__ import annotations

import json

import pytest
from tests.helpers import run_python

pytestmark = pytest.mark.gpu


def test_cuda_streams_equal_the_guide_on_every_device() -> None:
    out = run_python(
        """
        import json, torch, repro
        repro.seed(42)
        n = torch.cuda.device_count()
        got = [torch.rand(3, device=f"cuda:{i}").tolist() for i in range(n)]
        torch.manual_seed(42); torch.cuda.manual_seed_all(42)
        want = [torch.rand(3, device=f"cuda:{i}").tolist() for i in range(n)]
        print(json.dumps(got == want))
        """
    )
    assert json.loads(out)


def test_state_seed_scope_and_environment_never_initialise_cuda() -> None:
    # torch.backends.cudnn.version() starts CUDA (seen with torch 2.11 on an H200), so
    # reading the state must not call it before CUDA runs.
    out = run_python(
        """
        import json, torch, repro
        repro.seed(1)
        repro.use_profile("debug")
        repro.state()
        with repro.scope(2, "final"):
            repro.state()
        repro.environment()
        print(json.dumps(torch.cuda.is_initialized()))
        """
    )
    assert json.loads(out) is False


def test_cudnn_version_read_before_cuda_starts_matches_the_runtime() -> None:
    out = run_python(
        """
        import json, torch, repro
        before = repro.state().settings["cudnn_version"]
        torch.zeros(1, device="cuda")
        print(json.dumps([before, torch.backends.cudnn.version(),
                          repro.state().settings["cudnn_version"]]))
        """
    )
    before, runtime, after = json.loads(out)
    assert after == runtime
    # Before CUDA starts repro reports the version torch was built against: same major,
    # a minor no newer than the runtime's (torch refuses an older runtime at CUDA start).
    major = 10_000 if runtime >= 90_000 else 1_000
    assert before // major == runtime // major and before <= runtime


def test_scope_restores_initialised_cuda_rng() -> None:
    out = run_python(
        """
        import json, torch, repro
        repro.seed(3)
        torch.rand(2, device="cuda")
        state = torch.cuda.get_rng_state_all()
        with repro.scope(9):
            torch.rand(100, device="cuda")
        after = torch.cuda.get_rng_state_all()
        fps = [s.stream for s in repro.state().sources]
        print(json.dumps([all(torch.equal(a, b) for a, b in zip(state, after)), fps]))
        """
    )
    restored, streams = json.loads(out)
    assert restored and "torch cuda:0" in streams


def test_debug_profile_makes_a_cuda_conv_backward_bit_exact() -> None:
    out = run_python(
        """
        import json, torch, repro
        def run():
            with repro.scope(0, "debug"):
                conv = torch.nn.Conv2d(3, 16, 3).cuda()
                x = torch.randn(8, 3, 32, 32, device="cuda", requires_grad=True)
                conv(x).sum().backward()
                return x.grad.clone()
        print(json.dumps(torch.equal(run(), run())))
        """
    )
    assert json.loads(out)


def test_warns_when_cuda_started_before_cublas_workspace() -> None:
    out = run_python(
        """
        import json, warnings, torch, repro
        torch.zeros(1, device="cuda")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            repro.use_profile("debug")
        print(json.dumps([any("CUBLAS_WORKSPACE_CONFIG" in str(w.message) for w in caught),
                          any("CUDA was initialised" in w for w in repro.state().warnings)]))
        """,
        env={"CUBLAS_WORKSPACE_CONFIG": None},  # unset in the child, or repro leaves it alone
    )
    assert json.loads(out) == [True, True]
