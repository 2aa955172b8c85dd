"""FixMatch's inputs (spec fixmatch.md §2-§3): MixMatch's split rule with every train image in the
unlabeled pool, and each iteration's batch: B labeled images (one weak view), μB unlabeled images
(a weak view and a strong one built from a second weak draw) and, with CTAugment, the B probes.

The weak views are flip (p = 0.5, not SVHN or digits) then reflect-pad-and-crop, the MixMatch
stack's `Augmentation` values (§3.1 = mixmatch.md §1.6). All augmentation happens on the host in
NumPy and PIL, as in the original (§2.3): the strong ops are PIL's. Each step's draws come from
generators keyed by (seed, stream, step[, row]), so they do not depend on threads or timing and a
resumed run draws what an uninterrupted one does.

CTAugment's rates change after every step (its probes), while the input pipeline prepares batches
ahead. The original's workers read rates up to 4 batches old, however far ahead they happened to
be; here step s's strong views read the rates after step s - 1 - `lag`'s update exactly
(`lag` = 1: one batch is prepared while the previous step runs), which keeps runs reproducible.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from fixmatch import ctaugment, randaugment
from mixmatch import data as mixmatch_data
from mixmatch.data import PreparedData
from ns3l.training.augment import Augmentation
from ns3l.training.seeds import stream_key
from ns3l.training.streams import index_batches, without_autotune_thread


def prepare(dataset: str, n_labeled: int, n_valid: int, seed: int, **options) -> PreparedData:
    """The MixMatch stack's data set and split, the unlabeled pool holding the labeled images
    too and the validation set the pool's first `n_valid` records (§2.1; fixmatch#2)."""
    return mixmatch_data.prepare(dataset, n_labeled, n_valid, seed, labeled_in_unlabeled=True,
                                 **options)  # fmt: skip


def weak(images: np.ndarray, augmentation: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """uint8 [n, H, W, C]: each image flipped left-right with probability 0.5 (if the data set
    flips), then padded by `translate` pixels each side by reflection (no edge repeat) and
    cropped back at a uniform offset in 0..2·translate (augment.py:65-71, 342-355)."""
    n, height, width = images.shape[:3]
    out = np.array(images)
    if augmentation.flip:
        flips = rng.random(n) < 0.5
        out[flips] = out[flips, :, ::-1]
    pad = augmentation.translate
    if pad:
        padded = np.pad(out, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        offsets = rng.integers(0, 2 * pad + 1, (n, 2))
        for i, (dy, dx) in enumerate(offsets):
            out[i] = padded[i, dy : dy + height, dx : dx + width]
    return out


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 -> float32 x·2/255 - 1, in float32 as the TF pipeline computes it (§2.3)."""
    return images.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


class LaggedRates:
    """CTAugment's rates as each step reads them: after step s's probes update the live rates,
    a copy is kept, and step s' reads the copy of step s' - 1 - lag (the initial rates before
    that exists). Reading blocks until that step's update is in (the pipeline runs ahead).
    `state()` / `load_state()` carry the copies a resumed run still needs."""

    def __init__(self, cta: ctaugment.CTAugment, lag: int = 1, start_step: int = 0) -> None:
        self.cta, self.lag = cta, lag
        self.updated = start_step  # the last step whose update is in the live rates
        self.copies = {start_step: cta.state_copy()}
        self.condition = threading.Condition()
        self.closed = False

    def for_step(self, step: int) -> ctaugment.CTAugment:
        """A CTAugment holding the rates step `step` (1-based) reads."""
        wanted = max(step - 1 - self.lag, min(self.copies))
        with self.condition:
            self.condition.wait_for(lambda: self.updated >= wanted or self.closed)
            state = self.copies.get(wanted, self.copies[min(self.copies)])
        augment = ctaugment.CTAugment(self.cta.depth, self.cta.threshold, self.cta.decay)
        augment.load_state(state)
        return augment

    def update(self, step: int, policies: list, proximities: np.ndarray) -> None:
        """Step `step`'s probe results, in probe order (cta/lib/train.py:71-76)."""
        for policy, proximity in zip(policies, proximities, strict=True):
            self.cta.update(policy, float(proximity))
        with self.condition:
            self.updated = step
            self.copies[step] = self.cta.state_copy()
            for old in [s for s in self.copies if s < step - self.lag]:
                del self.copies[old]
            self.condition.notify_all()

    def close(self) -> None:
        """Releases a pipeline thread that waits for a step that will not come."""
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def state(self) -> dict[int, dict[str, np.ndarray]]:
        return {step: dict(rates) for step, rates in self.copies.items()}

    def load_state(self, updated: int, copies: dict[int, dict[str, np.ndarray]]) -> None:
        with self.condition:
            self.updated, self.copies = updated, copies
            self.cta.load_state(copies[updated])


class RatesVariables(tf.Module):
    """`LaggedRates` in tf.Variables for the run's checkpoint: the step of each kept copy (-1
    for none) and its rates, one row per copy, the vectors concatenated in `state()` order."""

    def __init__(self, rates: LaggedRates) -> None:
        super().__init__(name="cta_rates")
        self.rates = rates
        self.keys = list(rates.cta.state())
        size = sum(len(rate) for rate in rates.cta.state().values())
        self.updated = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.steps = tf.Variable(tf.fill([rates.lag + 1], tf.constant(-1, tf.int64)),
                                 trainable=False)  # fmt: skip
        self.values = tf.Variable(tf.ones([rates.lag + 1, size], tf.float64), trainable=False)

    def store(self) -> None:
        """Copies the host rates in; call before each checkpoint save."""
        copies = sorted(self.rates.state().items())
        steps = np.full(self.rates.lag + 1, -1, np.int64)
        values = self.values.numpy()
        for row, (step, state) in enumerate(copies):
            steps[row] = step
            values[row] = np.concatenate([state[key] for key in self.keys])
        self.updated.assign(self.rates.updated)
        self.steps.assign(steps)
        self.values.assign(values)

    def load(self) -> None:
        """Copies the restored variables out to the host rates; call after a restore."""
        sizes = [len(rate) for rate in self.rates.cta.state().values()]
        copies = {}
        for step, row in zip(self.steps.numpy(), self.values.numpy(), strict=True):
            if step >= 0:
                parts = np.split(row, np.cumsum(sizes)[:-1])
                copies[int(step)] = dict(zip(self.keys, parts, strict=True))
        self.rates.load_state(int(self.updated.numpy()), copies)


class StrongAugment:
    """The host half of a step's batch: `__call__(step, x, labels, u)` on uint8 images returns
    float32 (x weak, u weak, u strong) and, with CTAugment, keeps the step's probes and their
    policies in `probes[step]` for the loop to score with the EMA model and hand to `rates`."""

    def __init__(
        self,
        augment: str,
        augmentation: Augmentation,
        seed: int,
        rates: LaggedRates | None = None,
        ra_ranges: str = "code",
        ra_probability: float = 0.5,
        workers: int = 4,
    ) -> None:
        self.augment, self.augmentation, self.rates = augment, augmentation, rates
        self.ra = dict(ranges=ra_ranges, probability=ra_probability)
        self.keys = {name: stream_key(seed, f"fixmatch_{name}") for name in
                     ("weak", "strong", "probe")}  # fmt: skip
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.probes: dict[int, tuple[np.ndarray, list, np.ndarray]] = {}
        self.lock = threading.Lock()

    def rng(self, stream: str, step: int, row: int | None = None) -> np.random.Generator:
        words = [self.keys[stream], step] + ([] if row is None else [row])
        return np.random.default_rng(words)

    def __call__(self, step, x, labels, u) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        step = int(step)
        rng = self.rng("weak", step)
        x_weak, u_weak, u_second = (weak(images, self.augmentation, rng) for images in (x, u, u))
        cta = self.rates.for_step(step) if self.augment == "ctaugment" else None

        def view(i: int) -> np.ndarray:
            image, rng = to_unit(u_second[i]), self.rng("strong", step, i)
            if cta is not None:
                return ctaugment.strong(image, cta, rng)
            return randaugment.strong(image, rng, **self.ra)

        strong = np.stack(self.map(view, range(len(u))))
        if cta is not None:
            self.keep_probes(step, cta, to_unit(x_weak), labels)
        return to_unit(x_weak), to_unit(u_weak), strong.astype(np.float32)

    def keep_probes(self, step: int, cta: ctaugment.CTAugment, x_weak, labels) -> None:
        """Each weak labeled image through a probe policy (fixmatch.py:33-38; no cutout)."""
        rngs = [self.rng("probe", step, i) for i in range(len(x_weak))]
        policies = [cta.policy(rng, probe=True) for rng in rngs]

        def probe(i: int) -> np.ndarray:  # the policy's draws, then its ops' (cutout's centre)
            return ctaugment.apply(x_weak[i], policies[i], rngs[i])

        images = np.stack(self.map(probe, range(len(x_weak))))
        with self.lock:
            self.probes[step] = (images, policies, np.asarray(labels))

    def map(self, function: Callable[[int], np.ndarray], rows) -> list[np.ndarray]:
        return list(self.pool.map(function, rows)) if self.pool else [function(i) for i in rows]

    def take_probes(self, step: int) -> tuple[np.ndarray, list, np.ndarray]:
        with self.lock:
            return self.probes.pop(step)

    def close(self) -> None:
        if self.rates is not None:
            self.rates.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def train_batches(
    data: PreparedData, batch: int, uratio: int, seed: int, strong: StrongAugment,
    start_step: int = 0,
) -> tf.data.Dataset:  # fmt: skip
    """Infinite (x weak [B], labels [B], u weak [μB], u strong [μB], u labels [μB]; images
    in [-1, 1]) from step
    `start_step` + 1 on: two index streams as the MixMatch stack draws them (a per-epoch
    reshuffle in place of the 8,192 shuffle buffer, §2.3), the host augmentation in order."""
    images = tf.Variable(data.train_images, trainable=False)  # uint8, captured by the map
    labels = tf.constant(data.train_labels)
    labeled, unlabeled = tf.constant(data.split.labeled), tf.constant(data.split.unlabeled)
    shape = data.train_images.shape[1:]

    def rows(step: tf.Tensor, i_l: tf.Tensor, i_u: tf.Tensor) -> tuple[tf.Tensor, ...]:
        rows_l, rows_u = tf.gather(labeled, i_l), tf.gather(unlabeled, i_u)
        x, u, y = tf.gather(images, rows_l), tf.gather(images, rows_u), tf.gather(labels, rows_l)
        x_weak, u_weak, u_strong = tf.numpy_function(
            strong, [step, x, y, u], [tf.float32] * 3, stateful=True
        )
        x_weak.set_shape((batch, *shape))
        u_weak.set_shape((batch * uratio, *shape))
        u_strong.set_shape((batch * uratio, *shape))
        return x_weak, y, u_weak, u_strong, tf.gather(labels, rows_u)

    streams = tf.data.Dataset.zip(
        tf.data.Dataset.counter(start_step + 1),
        index_batches(len(data.split.labeled), batch, stream_key(seed, "labeled_order"),
                      start_step),
        index_batches(len(data.split.unlabeled), batch * uratio,
                      stream_key(seed, "unlabeled_order"), start_step),
    )  # fmt: skip
    return without_autotune_thread(streams.map(rows).prefetch(1))
