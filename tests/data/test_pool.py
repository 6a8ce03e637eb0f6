"""The ordered process pool of the tokenization jobs: a worker that dies is a user error, not a traceback."""

import os

import pytest

from theseus.data.pool import OrderedPool
from theseus.errors import TheseusError


def test_a_worker_that_dies_ends_in_one_user_error_naming_the_fix():
    pool = OrderedPool(os._exit, 1, initializer=int)  # the task kills its worker, as the OOM killer would
    try:
        with pytest.raises(TheseusError, match=r"worker died \(exit code 3.*fewer data.workers"):
            list(pool.map([3]))
    finally:
        pool.close()
