import sys
from pathlib import Path

import pytest
import torch

# Two CI cores and several subprocess-based tests: one intra-op thread per process avoids
# oversubscription (the suite runs several times faster) and keeps CPU results reproducible.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def digits_raw():
    import dataset

    return dataset.load_raw("digits")
