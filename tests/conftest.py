"""Shared test setup: 8 fake CPU devices (set before JAX is imported) and CLI helpers."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# compiled steps are shared between the test processes (and the CLI subprocesses they start)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/theseus-test-xla-cache")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest
from clihelp import run_cli


@pytest.fixture
def cli():
    """The `run_cli` helper as a fixture."""
    return run_cli
