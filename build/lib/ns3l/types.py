"""The one `Tensor` alias of the project's type hints."""

from typing import Any, TypeAlias

# A tf.Tensor in practice; `Any` so that ns3l.loss stays free of TensorFlow (it uses keras.ops,
# which also accepts numpy arrays and KerasTensors).
Tensor: TypeAlias = Any
