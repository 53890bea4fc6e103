import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# `pytest --hypothesis-profile thorough` runs the generated hostile-input tests much longer (by hand).
settings.register_profile("thorough", max_examples=2000, deadline=None)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Two CI cores and several subprocess-based tests: one intra-op thread per process avoids
# oversubscription (the suite runs several times faster) and keeps CPU results reproducible:
# the killed, resumed and reference runs of the resume tests make the same float reductions.
torch.set_num_threads(1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # for scripts run as subprocesses

# The small, fast set-up the script-level tests share.
ARCH = ["--dataset", "digits", "--arch", "resnet20s", "--no-progress", "--device", "cpu", "--batch_size", "128"]


@pytest.fixture(scope="session")
def digits_raw():
    import dataset

    return dataset.load_raw("digits")


@pytest.fixture(scope="module")
def omp_dir(tmp_path_factory):
    """A one-epoch, two-round main_imp.py run on digits (its own copy per test module)."""
    import main_imp

    out = tmp_path_factory.mktemp("omp")
    main_imp.main([*ARCH, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5", "--save_dir", str(out)])
    return out


@pytest.fixture
def stopped_and_resumed(monkeypatch):
    """``run(make_ctx, make_model, method, stop_after)``: a method's weights and stats when a SIGTERM stops
    it after batch ``stop_after`` (counted over the whole run) and a fresh process-like start continues
    from what ``ctx.progress.save`` kept (the loop's state and a copy of the weights at that moment)."""
    import copy
    import signal

    import pruner
    import unlearn
    from training import interrupts

    def run(make_ctx, make_model, method, stop_after):
        calls = iter(range(1, 10**6))
        monkeypatch.setattr(interrupts, "requested", lambda: signal.SIGTERM if next(calls) == stop_after else None)
        ctx, model, saved = make_ctx(), make_model(), []
        ctx.progress.save = lambda state: saved.append((copy.deepcopy(state), copy.deepcopy(model.state_dict())))
        with pytest.raises(interrupts.Stopped):
            unlearn.get_method(method).fn(model, ctx)
        assert saved[-1][0]["partial_epoch"] is not None, "the stop did not fall inside an epoch"
        monkeypatch.setattr(interrupts, "requested", lambda: None)
        state, weights = saved[-1]
        resumed, ctx_again = make_model(), make_ctx()
        pruner.load_pruned_state(resumed, weights)
        ctx_again.progress.resume, ctx_again.progress.stats = state, copy.deepcopy(ctx.stats)
        unlearn.get_method(method).fn(resumed, ctx_again)
        return resumed, ctx_again

    return run
