"""The project as a user installs it: the wheel in a fresh venv, used from outside the checkout;
the README's example commands run as printed (the script's own directory first on sys.path, not
the checkout's)."""

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
LOSS_CHECK = """
import sys
import numpy as np
import ns3l
logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], "float32")
targets = np.array([[0.9, 0.07, 0.03], [0.5, 0.48, 0.02]], "float32")
print(ns3l.__file__)
print(float(ns3l.NS3LLoss(threshold=0.04)(targets, logits)))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("ns3l", "tensorflow_datasets",
             "realistic_ssl", "mixmatch", "submitit")))
"""


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def test_the_wheel_installs_into_a_fresh_venv_and_the_loss_needs_only_keras(tmp_path):
    # Built from a copy of the sources: setuptools writes build/ beside the project it builds.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name if source.exists() else _mkdir(source) / name)
    for package in ("ns3l", "realistic_ssl", "mixmatch", "fixmatch", "scripts"):
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(source), "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("ns3l_tf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = email.message_from_bytes(
            archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        )
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    required = meta.get_all("Requires-Dist")
    assert sorted(r for r in required if "extra ==" not in r) == ["keras>=3.8", "numpy>=1.26"]
    assert any(r.startswith("tensorflow-datasets") and 'extra == "train"' in r for r in required)
    assert {n.split("/")[0] for n in names} == {
        "ns3l",
        "realistic_ssl",
        "mixmatch",
        "fixmatch",
        "ns3l_scripts",  # scripts/ (the sweep and the report), under a name of ours
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    assert "ns3l/training/checkpoints.py" in names and "ns3l_scripts/sweep.py" in names
    assert "fixmatch/ctaugment.py" in names
    assert not any(name.endswith(".sh") for name in names)  # the table scripts run in a checkout
    for line in (b"ns3l-realistic-ssl = realistic_ssl.train:main",
                 b"ns3l-fixmatch = fixmatch.train:main",
                 b"ns3l-sweep = ns3l_scripts.sweep:main",
                 b"ns3l-report = ns3l_scripts.report:main"):  # fmt: skip
        assert line in entry_points
    # A fresh venv that sees this environment's Keras and TensorFlow (a .pth file: no download)
    # but not the checkout; the wheel installed into it without its dependencies.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(python), "-c", purelib], capture_output=True, text=True)
    site = site.stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         str(wheel)], capture_output=True, text=True,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    done = subprocess.run([str(python), "-c", LOSS_CHECK], capture_output=True, text=True,
                          cwd=tmp_path, env=clean_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, value, loaded = done.stdout.strip().splitlines()[-3:]
    assert where.startswith(site)  # the installed copy, not the checkout
    # Row 1: negative class 2 (0.03 < 0.04); row 2: class 2 (0.02). ℓ = -log(1 - p_2), mean.
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(float(value), np.mean(-np.log(1 - p[:, 2])), rtol=1e-5)
    # The loss imports nothing of the run machinery nor of the training stacks' dependencies
    # (not even ns3l.training.console, which only our commands load).
    assert loaded == "['ns3l', 'ns3l.errors', 'ns3l.loss', 'ns3l.types']"
    command = [str(env_dir / "bin" / "ns3l-realistic-ssl"), "--help"]
    helped = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=clean_env())
    assert helped.returncode == 0 and "--method" in helped.stdout, helped.stderr
    for script, expected in (("ns3l-sweep", "table1"), ("ns3l-report", "--out")):
        command = [str(env_dir / "bin" / script), "--help"]
        helped = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                                env=clean_env())  # fmt: skip
        assert helped.returncode == 0 and expected in helped.stdout, helped.stderr[-2000:]
        assert "absl::InitializeLog" not in helped.stderr  # filtered, as the trainers' lines


def test_the_readme_example_runs_as_printed_from_the_checkout():
    readme = (ROOT / "README.md").read_text()
    assert "    .venv/bin/python examples/keras_fit_digits.py\n" in readme
    done = subprocess.run(
        [sys.executable, "examples/keras_fit_digits.py", "--steps=20", "--seeds=1"],
        capture_output=True, text=True, cwd=ROOT, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-3] == "digits, 50 labels, 20 steps, seeds 1..1"
    assert lines[-1].startswith(" supervised + NS3L: test error ")
