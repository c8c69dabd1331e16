import pytest
import torch

from rlrun.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from rlrun.errors import CheckpointError


def test_round_trip_loads_with_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    import numpy as np

    rng = np.random.default_rng(3)
    save_checkpoint(path, {"x": torch.arange(3), "rng": rng.bit_generator.state, "n": 5})
    data = load_checkpoint(path)
    assert torch.equal(data["x"], torch.arange(3)) and data["n"] == 5
    restored = np.random.default_rng(0)
    restored.bit_generator.state = data["rng"]
    assert restored.random() == rng.random()


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"version": 1})

    def exploding_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(CheckpointError, match="disk full.*previous checkpoint is intact"):  # one line, no traceback
        save_checkpoint(path, {"version": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_truncated_and_foreign_files_are_clear_errors(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"x": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an rlrun checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resolve_best_falls_back_to_last(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints"):
        resolve_checkpoint(tmp_path, "best")
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", {})
    assert resolve_checkpoint(tmp_path, "best").name == "last.pt"
    with pytest.raises(CheckpointError, match="best, last or an existing file"):
        resolve_checkpoint(tmp_path, "nope.pt")
