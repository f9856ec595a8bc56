"""Fixtures shared by the ladder plugin's tests."""

import pytest
import torch


@pytest.fixture
def float64():
    """float64 as torch's default dtype for one test (numerical comparisons), restored after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
