"""Shared fixtures: a fresh seeded RNG per test (seed printed, reproducible with
POWERRET_TEST_SEED=<seed>), the device parametrisation (cpu always, cuda when torch sees a GPU
and powerret was built with CUDA) and the `gpu` marker."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # reference.py and helpers.py, whatever importmode

import helpers  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and powerret built with CUDA")


def pytest_collection_modifyitems(config, items):
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs is not None and cs.params.get("device") == "cuda":
            item.add_marker(pytest.mark.gpu)


@pytest.fixture
def rng(request):
    """A numpy Generator with a fresh seed each run; the seed is printed (shown on failure)."""
    env = os.environ.get("POWERRET_TEST_SEED")
    seed = int(env) if env else int(np.random.SeedSequence().entropy % (2**63))
    print(f"[{request.node.nodeid}] seed {seed}: rerun with POWERRET_TEST_SEED={seed}")
    request.node.user_properties.append(("seed", seed))
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    seeds = [v for k, v in item.user_properties if k == "seed"]
    if report.failed and seeds:
        report.sections.append(("powerret seed", f"POWERRET_TEST_SEED={seeds[0]}"))


DEVICES = ["cpu", "cuda"]


@pytest.fixture(params=DEVICES)
def device(request):
    """'cpu' always; 'cuda' skipped unless torch.cuda.is_available() and powerret.built_with_cuda()."""
    helpers.require_device(request.param)
    return request.param
