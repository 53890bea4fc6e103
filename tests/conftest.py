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
