"""Checkpoint manager: round trip, retention, latest pointer, listing without JAX."""

import subprocess
import sys

import numpy as np
import pytest
from clihelp import REPO

from theseus.checkpoint import CheckpointManager, list_checkpoints, retained
from theseus.errors import TheseusError


def test_retention_policy():
    assert retained(range(1, 11), 3, None) == {8, 9, 10}
    assert retained(range(1, 11), 2, 4) == {4, 8, 9, 10}
    assert retained([], 3, 5) == set()


def test_save_restore_and_prune(tmp_path):
    mgr = CheckpointManager(tmp_path / "ck", keep_last=2, keep_every=3)
    for step in range(1, 8):
        mgr.save(step, {"w": np.full(4, step, np.float32), "n": step}, {"data_pos": step * 10})
    mgr.wait()
    assert mgr.steps() == [3, 6, 7]
    assert (tmp_path / "ck" / "latest").read_text().strip() == "7"
    state, meta = mgr.restore({"w": np.zeros(4, np.float32), "n": 0})
    assert np.array_equal(state["w"], np.full(4, 7, np.float32)) and int(state["n"]) == 7
    assert meta["data_pos"] == 70 and meta["step"] == 7
    state, _ = mgr.restore({"w": np.zeros(4, np.float32), "n": 0}, step=3)
    assert int(state["n"]) == 3
    with pytest.raises(TheseusError, match="no checkpoint at step 5"):
        mgr.restore({"w": np.zeros(4, np.float32), "n": 0}, step=5)
    infos = list_checkpoints(tmp_path / "ck")
    assert [i.step for i in infos] == [3, 6, 7] and all(i.saved_at and i.size_bytes > 0 for i in infos)
    mgr.close()


def test_listing_does_not_import_jax(tmp_path):
    code = "import sys; from theseus.checkpoint import list_checkpoints; list_checkpoints('.'); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"
