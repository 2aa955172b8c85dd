"""results.json's provenance: the commit and its dirty flag from a real git repository, the
versions actually imported, the devices, and this process's times."""

import subprocess
import time

import keras
import tensorflow as tf

from ns3l.training.provenance import git_state, package_versions, provenance


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def test_git_state_of_a_clean_then_dirty_checkout_and_of_no_checkout(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "a.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(repo, "rev-parse", "HEAD")
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "untracked.txt").write_text("not part of the code")
    assert git_state(repo)["dirty"] is False  # untracked files do not count
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(repo) == {"commit": head, "dirty": True}
    inner = repo / "site-packages"
    inner.mkdir()
    assert git_state(inner) is None  # inside a repository, not its top: not our checkout
    assert git_state(tmp_path / "nowhere") is None


def test_the_record_names_what_ran_and_when():
    before = time.time()
    record = provenance()
    assert record["versions"]["tensorflow"] == tf.__version__
    assert record["versions"]["keras"] == keras.__version__
    assert package_versions(("no-such-package-ns3l",)) == {"no-such-package-ns3l": None}
    assert "CPU:0" in record["devices"] and record["gpu_names"] == []
    written = time.mktime(time.strptime(record["written"][:19], "%Y-%m-%dT%H:%M:%S"))
    started = time.mktime(time.strptime(record["process_started"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert started <= written and abs(written - before) < 5
    assert record["process_wall_seconds"] >= 0 and record["command"]
