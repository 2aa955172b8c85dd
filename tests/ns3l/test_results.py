import json
import os
import stat

import numpy as np
import pytest
import tensorflow as tf

from ns3l.training import results
from ns3l.training.results import read_results, to_json_types, write_json_atomically, write_results


def a_result(**overrides):
    fields = {
        "config": {"method": "mixmatch", "lr": 0.002, "batch": 64},
        "seed": 1,
        "dataset": "cifar10",
        "split_sizes": {"labeled": 250, "unlabeled": 49_750, "valid": 5000, "test": 10_000},
        "step": 1_048_576,
        "metrics": {"test_error": 11.08},
    }
    return fields | overrides


def test_round_trip(tmp_path):
    written = a_result()
    write_results(tmp_path, written)
    assert read_results(tmp_path) == written


def test_numpy_and_tensor_values_become_json_types(tmp_path):
    write_results(
        tmp_path,
        a_result(
            seed=np.int64(3),
            step=tf.constant(200_000),
            metrics={"test_error": np.float32(0.25), "per_class": np.array([1.5, 2.0])},
            split_sizes={"labeled": np.int32(250), "shape": (32, 32, 3)},
        ),
    )
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["seed"] == 3 and type(raw["seed"]) is int
    assert raw["step"] == 200_000 and type(raw["step"]) is int
    assert raw["metrics"] == {"test_error": 0.25, "per_class": [1.5, 2.0]}
    assert raw["split_sizes"] == {"labeled": 250, "shape": [32, 32, 3]}


def test_nested_conversion_keeps_structure():
    got = to_json_types({1: (np.bool_(True), [np.float64(0.5)]), "x": np.zeros((2, 1))})
    assert got == {"1": [True, [0.5]], "x": [[0.0], [0.0]]}


def test_missing_fields_are_refused(tmp_path):
    partial = a_result()
    del partial["seed"], partial["metrics"]
    with pytest.raises(ValueError, match="results.json needs seed, metrics"):
        write_results(tmp_path, partial)
    assert not (tmp_path / "results.json").exists()


def test_failed_serialisation_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    write_results(tmp_path, a_result(step=1000))
    with pytest.raises(TypeError):
        write_results(tmp_path, a_result(step=2000, metrics={"test_error": object()}))
    assert read_results(tmp_path)["step"] == 1000
    assert os.listdir(tmp_path) == ["results.json"]


def test_failed_write_removes_the_temp_file(tmp_path, monkeypatch):
    write_results(tmp_path, a_result(step=1000))

    def disk_full(src, dst):
        raise OSError("No space left on device")

    monkeypatch.setattr(results.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_results(tmp_path, a_result(step=2000))
    assert read_results(tmp_path)["step"] == 1000
    assert os.listdir(tmp_path) == ["results.json"]


def test_replaces_through_a_temp_file_in_the_same_directory(tmp_path, monkeypatch):
    write_results(tmp_path, a_result(step=1000))
    replaced = []
    real_replace = os.replace

    def recording_replace(src, dst):
        replaced.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(results.os, "replace", recording_replace)
    write_json_atomically(tmp_path / "results.json", a_result(step=2000))
    [(src, dst)] = replaced
    assert os.path.dirname(src) == os.path.dirname(dst) == str(tmp_path)
    assert os.path.basename(src) != "results.json" and dst == str(tmp_path / "results.json")
    assert read_results(tmp_path)["step"] == 2000
    assert os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_json_files_get_the_users_umask_not_mkstemps_0600(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = write_json_atomically(tmp_path / "results.json", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
