"""Test-wide setup: quiet TensorFlow, two logical CPU devices, no TFDS download ever."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A TFDS data dir of our own, empty unless a test fills it: nothing reads ~/tensorflow_datasets.
os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="ns3l-tfds-")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices so MirroredStrategy can be tested without GPUs. This must run before
# TensorFlow initialises its devices, hence at import time of the conftest.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm cluster (scripts/dev/slurm_local.sh), or a skip saying why not."""
    script = Path(__file__).parents[1] / "scripts" / "dev" / "slurm_local.sh"
    if shutil.which("sbatch") is None:
        pytest.skip("no Slurm here: apt-get install -y slurm-wlm munge, then rerun")
    started = subprocess.run([str(script), "start"], capture_output=True, text=True)
    if started.returncode:
        pytest.skip(f"the local Slurm cluster did not start: {started.stderr.strip()}")
