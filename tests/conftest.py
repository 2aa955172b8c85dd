"""Test-wide setup: quiet TensorFlow, two logical CPU devices, no TFDS download ever."""

import os
import tempfile

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
