"""`--strategy`: one device, all local ones, or all of several machines' (one process each), and
the loss reduction a custom step needs for all of them.

How a custom train step uses them (create variables in `strategy.scope()`, divide by the global
batch): docs/runs.md."""

import contextlib
import functools
import os
import re
import shutil
from collections.abc import Iterator, Sequence

import tensorflow as tf

from ns3l.errors import UsageError, expected
from ns3l.training.faults import WorkerLost
from ns3l.types import Tensor

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str, devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The strategy `--strategy=name` asks for.

    `default`: TensorFlow's default strategy, i.e. no distribution. `mirrored`: synchronous data
    parallelism over `devices`, by default every local GPU, or every logical CPU device when there
    is no GPU (so tests can run it). `multi_worker`: `MultiWorkerMirroredStrategy` over every
    worker process of the cluster in $TF_CONFIG, or, without it, of the Slurm job this process is
    a task of (`SlurmClusterResolver`); each worker's local GPUs are its replicas."""
    if name not in STRATEGIES:
        raise expected("--strategy", name, STRATEGIES)
    if name == "multi_worker":
        return _multi_worker()
    if name == "default":
        if devices:
            raise UsageError(f"devices {', '.join(devices)} need --strategy=mirrored")
        return tf.distribute.get_strategy()
    if not devices:
        local = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        devices = [device.name for device in local]
    return _mirrored(tuple(devices))


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    # One strategy per device set and process: the collective ops of two MirroredStrategy objects
    # over the same devices share instance keys and can collide ("Shape mismatch in the
    # collective instance"), e.g. when one process trains several runs in turn.
    return tf.distribute.MirroredStrategy(devices=list(devices))


@functools.cache
def _multi_worker() -> tf.distribute.MultiWorkerMirroredStrategy:
    if "TF_CONFIG" in os.environ:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    elif int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        resolver = _slurm_resolver()
    else:
        raise UsageError(
            "--strategy=multi_worker needs the cluster: $TF_CONFIG (docs/runs.md), or a Slurm job "
            "with several tasks (srun --ntasks=N)"
        )
    if not resolver.cluster_spec().as_dict():
        raise UsageError("--strategy=multi_worker: $TF_CONFIG names no cluster")
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


def _slurm_resolver() -> tf.distribute.cluster_resolver.SlurmClusterResolver:
    """TensorFlow's resolver for the Slurm job step this process is a task of. Ports: one block
    of 32 per job (20000 + 32 × (job id mod 1000) onwards), so two jobs sharing a node do not
    take the same ones. On GPU nodes the resolver gives each task of a node its share of the
    node's GPUs; on CPU nodes (no nvidia-smi, where the resolver would fail counting GPUs) it
    is told there is one "GPU" slot per task and to leave CUDA_VISIBLE_DEVICES alone."""
    port_base = 20000 + 32 * (int(os.environ.get("SLURM_JOB_ID", "0")) % 1000)
    if shutil.which("nvidia-smi") or os.environ.get("CUDA_VISIBLE_DEVICES"):
        return tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=port_base)
    return tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=port_base, gpus_per_node=int(os.environ["SLURM_NTASKS"]), auto_set_gpu=False
    )


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: the only process outside multi-worker
    training; there, the `chief` task, or worker 0 of a cluster without one."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def distribute(
    strategy: tf.distribute.Strategy,
    batches: tf.data.Dataset,
    batch_size: int,
    flag: str = "--batch_size",
) -> tf.data.Dataset:
    """`batches` of the global batch (`batch_size` rows, set by `flag`), distributed over
    `strategy`'s replicas: each replica gets its contiguous share of every batch's rows, as
    `experimental_distribute_dataset` splits them on one machine. Across workers, each builds the
    whole stream and keeps the rows of its replicas (no auto-sharding: the streams are indices
    into in-memory arrays). A batch the replicas do not split evenly is a one-line UsageError."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UsageError(
            f"{flag}={batch_size} does not split over {replicas} replicas: expected a multiple "
            f"of {replicas} (or --strategy on fewer devices)"
        )
    if not is_multi_worker(strategy):
        return strategy.experimental_distribute_dataset(batches)

    def of_this_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        workers, index = context.num_input_pipelines, context.input_pipeline_id

        def rows(*parts: tf.Tensor) -> tuple[tf.Tensor, ...]:
            share = tf.shape(parts[0])[0] // workers
            return tuple(part[index * share : (index + 1) * share] for part in parts)

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return batches.map(rows).with_options(options)

    return strategy.distribute_datasets_from_function(of_this_worker)


@contextlib.contextmanager
def peers_watched(strategy: tf.distribute.Strategy, logdir: str) -> Iterator[None]:
    """For the `with` block: a collective that fails because another worker is gone (TensorFlow's
    heartbeats notice within seconds) ends the run in one line, `WorkerLost`, not a traceback."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if not is_multi_worker(strategy):
            raise
        # Heartbeats stopped, or a connection reset: either way TensorFlow names the task.
        tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", str(error.message))))
        detail = "lost " + ", ".join(tasks) if tasks else type(error).__name__
        raise WorkerLost(detail, logdir) from None


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Whether `flag` is true on some worker (a collective OR; `flag` itself elsewhere): every
    worker must then take the same decision, e.g. to save and stop after a SIGTERM on one."""
    if not is_multi_worker(strategy):
        return flag
    return bool(_any_worker(strategy)(tf.constant(int(flag), tf.int32)) > 0)


@functools.cache
def _any_worker(strategy: tf.distribute.Strategy):
    @tf.function
    def reduce(flag: tf.Tensor) -> tf.Tensor:
        per_replica = strategy.run(lambda: tf.identity(flag))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)  # no MAX op

    return reduce


def global_batch_mean(
    per_example: Tensor, global_batch_size: int, weights: Tensor | None = None
) -> Tensor:
    """Σ_i weights_i · per_example_i / global_batch_size over this replica's rows, a scalar.

    The optimizer sums gradients over replicas, so dividing each replica's sum by the global
    batch makes the update that of the mean over the whole batch. A replica-local mean would
    scale the gradient by the replica count. With `weights` a 0/1 mask this is the masked sum
    over the whole batch, not the mean over the masked rows. Without a strategy it is the batch
    mean."""
    return tf.nn.compute_average_loss(
        per_example, sample_weight=weights, global_batch_size=global_batch_size
    )
