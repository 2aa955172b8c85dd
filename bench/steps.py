"""Time of each method's real compiled train step, and of the input pipeline that feeds it.

    python -m bench.steps [--stack realistic_ssl|mixmatch|fixmatch] [--methods ns3l,...]
        [--batch N] [--steps N] [--xla] [--mixed_precision] [--steps_per_call N]
        [--strategy default|mirrored]
        [--feed prefetched|pipeline] [--wrn_depth D] [--wrn_width W] [--filters F] [--repeat R]
        [--image_size S]
    python -m bench.steps --mode=pipeline [--batch N] [--steps N]

Steps mode builds every trainer as the stack's loop does (`build_trainer` on a preset-resolved
RunConfig, CIFAR-10 presets, synthetic data of CIFAR shape), compiles its step with
`ns3l.training.runs.compiled_step` and warms it up, then steps all methods in turn, `--steps`
rounds. It prints one JSON line per method: median / min / max ms per step, images per second
(the rows a step reads: 50 labeled + 50 unlabeled for realistic_ssl, 64 labeled + 64 unlabeled for
MixMatch, 64 + 2 × 448 views for FixMatch), the ratio to the stack's plain baseline (`supervised`,
`mixmatch`, `fixmatch`), the process's peak
RSS so far, the devices and the load average. `--strategy=mirrored` repeats the set for 1, 2, ...
replicas; without a GPU it splits the CPU into two logical devices first (sharing its cores).

Pipeline mode times `train_batches` of both stacks alone on 50,000 synthetic CIFAR-size images
(batches per second), and the augmentation alone: the Oliver stack augments inside every WRN pass
and MixMatch inside its step, both on the device, so the input pipeline only gathers rows.
FixMatch augments on the host (PIL's ops, fixmatch/data.py); steps mode feeds its step
already-augmented synthetic views, so its ratio is the device step's alone."""

import argparse
import json
import math
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

import fixmatch.loop
import mixmatch.data
import mixmatch.loop
import realistic_ssl.data
import realistic_ssl.loop
from fixmatch import presets as fixmatch_presets
from fixmatch.config import RunConfig as FixMatchConfig
from mixmatch import presets as mixmatch_presets
from mixmatch.config import RunConfig as MixMatchConfig
from mixmatch.wrn import default_scales
from ns3l.errors import UsageError
from ns3l.training import precision
from ns3l.training.augment import augment
from ns3l.training.distribute import make_strategy
from ns3l.training.runs import compiled_step, compiled_steps
from ns3l.training.splits import mixmatch_split, oliver_pt_split
from realistic_ssl import presets as oliver_presets
from realistic_ssl.config import RunConfig as OliverConfig
from realistic_ssl.wrn import CIFAR_AUGMENTATION

STACKS = ("realistic_ssl", "mixmatch", "fixmatch")
BASELINE = {"realistic_ssl": "supervised", "mixmatch": "mixmatch", "fixmatch": "fixmatch"}
DEFAULT_METHODS = {
    "realistic_ssl": ("supervised", "pl", "pi", "ns3l", "vat", "vat+em", "pi+ns3l", "vat+ns3l"),
    "mixmatch": ("mixmatch", "mixmatch+ns3l"),
    "fixmatch": ("fixmatch", "fixmatch+ns3l"),
}
DEFAULT_BATCH = {  # the presets' batch: 50 labeled + 50 unlabeled rows; 64 + 64; 64 + 7 × 64
    "realistic_ssl": oliver_presets.COMMON["batch_size"].value,
    "mixmatch": mixmatch_presets.COMMON["batch"].value,
    "fixmatch": fixmatch_presets.COMMON["batch"].value,
}
CLASSES = 10
SEED = 1
STEP_IMAGES = 2_000  # synthetic train set of steps mode: only batches are read from it
CIFAR_IMAGES = 50_000  # pipeline mode: the CIFAR-10 train set's size


@dataclass(frozen=True)
class Network:
    """The network of a benchmark: the paper's by default, smaller to run quickly on a CPU."""

    wrn_depth: int = 28  # realistic_ssl WRN-depth-width
    wrn_width: int = 2
    filters: int = 32  # MixMatch ResNet: filters · 2^scale channels, `repeat` blocks per scale
    repeat: int = 4
    image_size: int = 32

    def name(self, stack: str) -> str:
        if stack == "realistic_ssl":
            return f"WRN-{self.wrn_depth}-{self.wrn_width}"
        return f"ResNet filters={self.filters} repeat={self.repeat}"


@dataclass
class Prepared:
    """One method ready to time: its (uncompiled) train step, its batches, and its network."""

    step: Callable
    batches: tf.data.Dataset
    model: keras.Model


def synthetic_labels(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) % CLASSES


def oliver_data(n: int, size: int, n_labeled: int, n_valid: int) -> realistic_ssl.data.PreparedData:
    """Preprocessed-like float32 images (zero mean, unit scale) with balanced labels."""
    images = np.random.default_rng(SEED).standard_normal((n, size, size, 3), np.float32)
    labels = synthetic_labels(n)
    split = oliver_pt_split(labels, CLASSES, n_labeled, n_valid, SEED)
    return realistic_ssl.data.PreparedData(images, labels, images[:1], labels[:1], split, CLASSES)


def mixmatch_data(n: int, size: int, n_labeled: int) -> mixmatch.data.PreparedData:
    """uint8 images, as MixMatch keeps them in memory (mixmatch/data.py)."""
    images = np.random.default_rng(SEED).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = synthetic_labels(n)
    split = mixmatch_split(labels, CLASSES, n_labeled, SEED, n_valid=1)
    return mixmatch.data.PreparedData(images, labels, images[:1], labels[:1], split, CLASSES)


def prepare_oliver(
    method: str, batch: int, network: Network, strategy: tf.distribute.Strategy, xla: bool
) -> Prepared:
    """realistic_ssl's trainer and batches for `method`, built as realistic_ssl.loop.train does."""
    settings = oliver_presets.resolve(method, "cifar10", {"batch_size": batch})
    config = OliverConfig(
        method=method, dataset="cifar10", seed=SEED, logdir="", settings=settings,
        wrn_depth=network.wrn_depth, wrn_width=network.wrn_width, xla=xla,
    )  # fmt: skip
    data = oliver_data(STEP_IMAGES, network.image_size, n_labeled=250, n_valid=250)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        trainer = realistic_ssl.loop.build_trainer(config, data, replicas)
    supervised = method == "supervised"
    batches = realistic_ssl.data.train_batches(data, batch, SEED, 0, supervised, replicas)
    return Prepared(trainer.train_step, batches, trainer.wrn)


def prepare_mixmatch(
    method: str, batch: int, network: Network, strategy: tf.distribute.Strategy, xla: bool
) -> Prepared:
    """MixMatch's trainer and batches for `method`, built as mixmatch.loop.train does."""
    given = {"batch": batch, "filters": network.filters, "repeat": network.repeat,
             "scales": default_scales(network.image_size)}  # fmt: skip
    settings = mixmatch_presets.resolve(method, "cifar10", given)
    config = MixMatchConfig(method=method, dataset="cifar10", seed=SEED, logdir="",
                            settings=settings, xla=xla)  # fmt: skip
    data = mixmatch_data(STEP_IMAGES, network.image_size, n_labeled=250)
    with strategy.scope():
        trainer = mixmatch.loop.build_trainer(config, data)
    batches = mixmatch.data.train_batches(data, batch, SEED)
    return Prepared(trainer.train_step, batches, trainer.model)


def prepare_fixmatch(
    method: str, batch: int, network: Network, strategy: tf.distribute.Strategy, xla: bool
) -> Prepared:
    """FixMatch's trainer, built as fixmatch.loop.train does, on synthetic views in [-1, 1]:
    `batch` labeled rows, μ·batch weak and as many strong (the host's augmentation not timed)."""
    given = {"batch": batch, "filters": network.filters, "repeat": network.repeat,
             "scales": default_scales(network.image_size)}  # fmt: skip
    settings = fixmatch_presets.resolve(method, "cifar10", given)
    config = FixMatchConfig(method=method, dataset="cifar10", seed=SEED, logdir="",
                            settings=settings, xla=xla)  # fmt: skip
    data = mixmatch_data(STEP_IMAGES, network.image_size, n_labeled=250)
    with strategy.scope():
        trainer = fixmatch.loop.build_trainer(config, data)
    rng = np.random.default_rng(SEED)
    rows_u = batch * settings["uratio"].value
    shape = (network.image_size, network.image_size, 3)

    def views(rows: int) -> np.ndarray:
        return rng.uniform(-1, 1, (8, rows, *shape)).astype(np.float32)  # 8 batches, cycled

    batches = tf.data.Dataset.from_tensor_slices((
        views(batch), rng.integers(0, CLASSES, (8, batch)), views(rows_u), views(rows_u),
        rng.integers(0, CLASSES, (8, rows_u)),
    )).repeat()  # fmt: skip
    return Prepared(trainer.train_step, batches, trainer.model)


PREPARE = {
    "realistic_ssl": prepare_oliver,
    "mixmatch": prepare_mixmatch,
    "fixmatch": prepare_fixmatch,
}
PARSE_METHOD = {
    "realistic_ssl": oliver_presets.parse_method,
    "mixmatch": mixmatch_presets.parse_method,
    "fixmatch": fixmatch_presets.parse_method,
}


def check_float32_logits(model: keras.Model, image_size: int) -> None:
    """The losses assume float32 logits; both stacks' classifiers promise them under any policy."""
    logits = model(tf.zeros((2, image_size, image_size, 3)), training=False)
    if logits.dtype != tf.float32:
        raise RuntimeError(f"{model.name} returns {logits.dtype.name} logits under a mixed policy")


def step_timer(
    strategy: tf.distribute.Strategy,
    train_step: Callable,
    batches: tf.data.Dataset,
    count: int,
    options: argparse.Namespace,
) -> Callable[[], float]:
    """A function running the next of `count` timings and returning milliseconds per step.

    `prefetched` reads every batch first, so only the step is timed; `pipeline` times the step
    as the loops call it, on the next batch of the distributed iterator, input included. With
    `steps_per_call` > 1 one timing is one call of that many steps (always `pipeline`)."""
    iterator = iter(strategy.experimental_distribute_dataset(batches))
    per_call = options.steps_per_call
    if per_call > 1:
        steps = compiled_steps(strategy, train_step)

        def run_calls() -> float:
            start = time.perf_counter()
            steps(iterator, per_call)["total"].numpy()
            return (time.perf_counter() - start) * 1e3 / per_call

        return run_calls
    step = compiled_step(strategy, train_step)
    queue = iter(
        [next(iterator) for _ in range(count)] if options.feed == "prefetched" else iterator
    )

    def run() -> float:
        start = time.perf_counter()
        step(next(queue))["total"].numpy()  # reading a result waits for the whole step
        return (time.perf_counter() - start) * 1e3

    return run


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def summary(times: list[float]) -> dict[str, float]:
    return {
        "ms_median": round(statistics.median(times), 2),
        "ms_min": round(min(times), 2),
        "ms_max": round(max(times), 2),
    }


@dataclass
class Timed:
    """A method built, compiled and warmed up: its record so far and its step timer (None if
    its step failed to compile; `record["error"]` says why)."""

    record: dict
    run: Callable[[], float] | None


def start_method(
    stack: str,
    method: str,
    batch: int,
    network: Network,
    strategy: tf.distribute.Strategy,
    options: argparse.Namespace,
) -> Timed:
    """Builds `method` as its loop does, compiles its step and runs the warm-up steps."""
    keras.utils.set_random_seed(SEED)
    policy = precision.policy_name(options.mixed_precision)  # as the loops pick it
    with precision.policy_scope(policy):  # read when the layers are created
        prepared = PREPARE[stack](method, batch, network, strategy, options.xla)
    check_float32_logits(prepared.model, network.image_size)
    feed = "pipeline" if options.steps_per_call > 1 else options.feed
    record = {"stack": stack, "method": method, "network": network.name(stack), "batch": batch,
              "replicas": strategy.num_replicas_in_sync, "xla": options.xla, "policy": policy,
              "feed": feed, "steps_per_call": options.steps_per_call,
              "steps": options.steps}  # fmt: skip
    count = options.warmup + 1 + options.steps
    run = step_timer(strategy, prepared.step, prepared.batches, count, options)
    try:
        for _ in range(options.warmup):  # the first call traces and compiles
            run()
    except tf.errors.InvalidArgumentError as error:  # e.g. an op XLA cannot compile
        return Timed(record | {"error": unsupported(error.message)}, None)
    # Peak so far: this method's build and warm-up on top of the methods built before it.
    return Timed(record | {"peak_rss_mb": round(peak_rss_mb(), 1)}, run)


def unsupported(message: str) -> str:
    """The line of a compile error that names the op, else its first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return next((line for line in lines if "unsupported" in line), lines[0])[:300]


def finish_record(
    timed: Timed, times: list[float], images: int, strategy: tf.distribute.Strategy
) -> dict:
    """The JSON record of one method from its step times (`ratio` is added by the caller)."""
    record = timed.record | summary(times)
    record["images_per_s"] = round(images / (statistics.median(times) / 1e3), 1)
    record["device"] = devices(strategy)
    # This benchmark alone keeps the 1-minute load near the core count; clearly above it, another
    # process competed for the cores (the round-robin timing spreads that over the methods).
    record["load_avg"] = round(os.getloadavg()[0], 2)
    return record


def devices(strategy: tf.distribute.Strategy) -> str:
    """Where the step ran: "CPU:0", "CPU:0,CPU:1", "GPU:0"... (the default strategy places ops
    on the first GPU, else the CPU)."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        names = strategy.extended.worker_devices
    else:
        names = [
            (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices())[0].name
        ]
    return ",".join(name.split("device:")[-1] for name in names)


def strategies(name: str) -> list[tf.distribute.Strategy]:
    """`default`: one. `mirrored`: one per replica count 1..n over the local devices."""
    if name == "default":
        return [make_strategy("default")]
    local = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    names = [device.name for device in local]
    return [make_strategy("mirrored", names[:n]) for n in range(1, len(names) + 1)]


def run_steps(
    stack: str, methods: list[str], batch: int, network: Network, options: argparse.Namespace
) -> list[dict]:
    """Times every method (the baseline first, added if missing) under each strategy; `ratio` is
    the median over the baseline's median at the same replica count.

    All methods are built and warmed up first, then stepped in turn, one step each per round:
    a process competing for the cores for a while slows every method alike, not just one."""
    baseline = BASELINE[stack]
    ordered = [baseline, *(m for m in methods if m != baseline)]
    # The rows a step reads: MixMatch x and u, `batch` each; FixMatch x and both views of μ·batch.
    mu = fixmatch_presets.COMMON["uratio"].value
    images = batch * {"mixmatch": 2, "fixmatch": 1 + 2 * mu}.get(stack, 1)
    records = []
    for strategy in strategies(options.strategy):
        timed = [start_method(stack, m, batch, network, strategy, options) for m in ordered]
        running = [method for method in timed if method.run is not None]
        # One more untimed round: building the next method reseeds TensorFlow, which empties its
        # kernel cache, so each step's first call after that re-instantiates its graph.
        for method in running:
            method.run()
        times = {id(method): [] for method in timed}
        for _ in range(options.steps):
            for method in running:
                times[id(method)].append(method.run())
        baseline_times = times[id(timed[0])]
        reference = statistics.median(baseline_times) if baseline_times else None
        for method in timed:
            method_times = times[id(method)]
            record = method.record | {"ratio": None}
            if method_times:
                record = finish_record(method, method_times, images, strategy)
                if reference:
                    record["ratio"] = round(statistics.median(method_times) / reference, 3)
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def time_iterator(
    next_batch: Callable[[], object], warmup: int, steps: int, rows: int
) -> dict[str, float]:
    """ms per batch (median, min, max), batches and images per second over `steps` calls."""
    for _ in range(warmup):
        next_batch()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        next_batch()
        times.append((time.perf_counter() - start) * 1e3)
    per_s = 1e3 * steps / math.fsum(times)
    return summary(times) | {
        "batches_per_s": round(per_s, 1),
        "images_per_s": round(per_s * rows, 1),
    }


def reader(stream: tf.data.Dataset) -> Callable[[], object]:
    """next() on `stream`, its iterator created by the first call (so the warm-up), not before:
    an iterator made early would fill its prefetch buffer while other cases are timed."""
    iterators = []

    def next_batch() -> object:
        if not iterators:
            iterators.append(iter(stream))
        return next(iterators[0])

    return next_batch


def pipeline_cases(batch: dict[str, int], size: int) -> dict[str, tuple[Callable, int]]:
    """What pipeline mode times: name -> (a function producing one batch, images it holds)."""
    oliver = oliver_data(CIFAR_IMAGES, size, n_labeled=4_000, n_valid=5_000)  # CIFAR-10 preset
    mix = mixmatch_data(CIFAR_IMAGES, size, n_labeled=250)
    b_oliver, b_mix = batch["realistic_ssl"], batch["mixmatch"]
    generator = tf.random.Generator.from_seed(SEED)
    x_oliver = tf.constant(oliver.train_images[:b_oliver])
    x_mix = mixmatch.data.to_unit_range(mix.train_images[: 3 * b_mix])
    oliver_augment = tf.function(lambda: augment(x_oliver, CIFAR_AUGMENTATION, generator))
    mix_augmentation = mixmatch.data.augmentation_for("cifar10")
    mix_augment = tf.function(lambda: augment(x_mix, mix_augmentation, generator))
    return {
        "realistic_ssl train_batches": (
            reader(realistic_ssl.data.train_batches(oliver, b_oliver, SEED)),
            b_oliver,
        ),
        "realistic_ssl train_batches, supervised": (
            reader(realistic_ssl.data.train_batches(oliver, b_oliver, SEED, supervised=True)),
            b_oliver,
        ),
        "mixmatch train_batches": (
            reader(mixmatch.data.train_batches(mix, b_mix, SEED)),
            2 * b_mix,
        ),
        # Inside the step, not the pipeline: once per WRN pass (1 to 4 per step).
        "realistic_ssl augment, one pass": (lambda: oliver_augment().numpy(), b_oliver),
        # Inside MixMatch's step: x once, u twice, 3 x 64 images per step.
        "mixmatch augment, one step": (lambda: mix_augment().numpy(), 3 * b_mix),
    }


def run_pipeline(batch: dict[str, int], size: int, warmup: int, steps: int) -> list[dict]:
    """Times every pipeline case; one JSON record each."""
    records = []
    for name, (next_batch, images) in pipeline_cases(batch, size).items():
        record = {"what": name, "images_per_call": images}
        record |= time_iterator(next_batch, warmup, steps, images)
        record |= {"peak_rss_mb": round(peak_rss_mb(), 1), "device": "CPU"}
        record["load_avg"] = round(os.getloadavg()[0], 2)
        records.append(record)
        print(json.dumps(record), flush=True)
    return records


def split_cpu() -> None:
    """Two logical CPU devices for MirroredStrategy without a GPU, as tests/conftest.py does.

    Must run before TensorFlow initialises its devices."""
    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    halves = [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    tf.config.set_logical_device_configuration(cpu, halves)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    modes = "train steps, or the input pipeline and augmentation alone"
    parser.add_argument("--mode", choices=("steps", "pipeline"), default="steps", help=modes)
    parser.add_argument("--stack", choices=STACKS, default="realistic_ssl")
    parser.add_argument("--methods", help="comma list; default: every method of the stack")
    parser.add_argument("--batch", type=int, help="default: 100 realistic_ssl, 64 mixmatch")
    parser.add_argument(
        "--steps", type=int, help="timed rounds of steps (default 15), or batches (1000)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--xla", action="store_true", help="the stacks' --xla")
    mixed = "the stacks' --mixed_precision: bfloat16 on a CPU, float16 on a GPU"
    parser.add_argument("--mixed_precision", action="store_true", help=mixed)
    parser.add_argument(
        "--steps_per_call", type=int, default=1, help="the stacks' --steps_per_call"
    )
    parser.add_argument("--strategy", choices=("default", "mirrored"), default="default")
    feeds = "time the step alone, or step(next(batches)) as the loops run it"
    parser.add_argument(
        "--feed", choices=("prefetched", "pipeline"), default="prefetched", help=feeds
    )
    parser.add_argument("--wrn_depth", type=int, default=Network.wrn_depth, help="realistic_ssl")
    parser.add_argument("--wrn_width", type=int, default=Network.wrn_width, help="realistic_ssl")
    parser.add_argument("--filters", type=int, default=Network.filters, help="mixmatch")
    parser.add_argument("--repeat", type=int, default=Network.repeat, help="mixmatch")
    parser.add_argument("--image_size", type=int, default=Network.image_size)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 15 if args.mode == "steps" else 1_000
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.strategy == "mirrored":
        split_cpu()
    network = Network(args.wrn_depth, args.wrn_width, args.filters, args.repeat, args.image_size)
    if args.mode == "pipeline":
        batch = DEFAULT_BATCH | ({args.stack: args.batch} if args.batch else {})
        return run_pipeline(batch, args.image_size, args.warmup, args.steps)
    names = args.methods.split(",") if args.methods else DEFAULT_METHODS[args.stack]
    try:
        methods = [PARSE_METHOD[args.stack](name) for name in names]
    except UsageError as error:
        raise SystemExit(f"error: {error}") from None
    batch = args.batch or DEFAULT_BATCH[args.stack]
    return run_steps(args.stack, methods, batch, network, args)


if __name__ == "__main__":
    main()
