"""Shared fixtures: the real annotations (skipped when absent) and tiny synthetic datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark annotations beside the clone; a user's clone does not have them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotations not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_moments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vhd.datamodules.synthetic import generate

    return generate("moments", tmp_path_factory.mktemp("moments"), seed=0, size="tiny")


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Learning thresholds were checked at 2 CPU threads; keep the kernels' reduction order."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: on 2 shared cores a second thread mostly waits for the first. A
    module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
