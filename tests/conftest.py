import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("KNET_REFERENCE", REPO.parent / "shared" / "reference"))
FIXTURES = REFERENCE / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Library calls under test may set torch's intra-op thread count (e.g. a training config's
    `threads`); every test starts with the count the session started with."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
