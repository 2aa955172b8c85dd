"""A FixMatch run: build, resume, train, score CTAugment's probes after every step, evaluate the
EMA model every report_kimg, checkpoint.

The paper's number (spec §7): 100 − the median of the last 20 EMA test accuracies, as in the
MixMatch stack, whose evaluation cadence (iterations 1, 1 + R, ...), evaluation and results this
reuses; FixMatch also logs the raw weights' test error (libml's `accuracy/raw`). CTAugment's
probes are scored by the EMA model in inference mode, with the raw model's BN statistics, right
after the step's update (the original runs both in one session.run, unordered: docs/fixmatch.md).
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from fixmatch import ctaugment
from fixmatch.config import RunConfig
from fixmatch.data import LaggedRates, RatesVariables, StrongAugment, prepare, train_batches
from fixmatch.step import FixMatchTrainer
from mixmatch.data import augmentation_for, to_unit_range
from mixmatch.loop import build_models, copy_bn_statistics, evaluate, results
from ns3l.training import precision
from ns3l.training.checkpoints import RunCheckpoint
from ns3l.training.distribute import distribute
from ns3l.training.faults import StopSignals
from ns3l.training.runs import (
    Recorder,
    already_finished,
    check_finite,
    compiled_predict,
    compiled_steps,
    error_rate,
    final_record,
    recorded_config,
    resumed_line,
    running,
    train_calls,
    write_split,
)
from ns3l.training.settings import MUTABLE_KEYS
from ns3l.training.summaries import (
    ProgressPrinter,
    ScalarWriter,
    evaluation_scalars,
    summary_every,
    training_scalars,
)

METRIC = "median_test_error_last20"


def train(config: RunConfig, stop_after: int | None = None) -> dict:
    """Runs (or resumes) `config` to its last iteration, or for `stop_after` more; returns the
    results.json content. Raises `Stopped` after a SIGTERM or SIGINT (a checkpoint saved),
    `Diverged` when the loss is not finite."""
    with running(config) as (own, stop, strategy, write):
        return _train(own, config.logdir, stop_after, stop, strategy, write)


def _train(
    config: RunConfig,
    run_logdir: str,
    stop_after: int | None,
    stop: StopSignals,
    strategy: tf.distribute.Strategy,
    write: Callable[[str], None],
) -> dict:
    data = prepare(
        config.dataset, config.value("n_labeled"), config.value("n_valid"), config.seed,
        data_dir=config.data_dir, download=config.download, stl10_folds=config.stl10_folds,
    )  # fmt: skip
    with strategy.scope(), precision.policy_scope(precision.policy_name(config.mixed_precision)):
        trainer = build_trainer(config, data)
    cta = config.value("augment") == "ctaugment"
    rates = LaggedRates(ctaugment.CTAugment(
        config.value("cta_depth"), config.value("cta_threshold"), config.value("cta_decay")
    ), config.value("cta_lag")) if cta else None  # fmt: skip
    trackables = dict(model=trainer.model, ema_model=trainer.ema_model,
                      optimizer=trainer.optimizer)  # fmt: skip
    if cta:
        trackables["cta_rates"] = saved_rates = RatesVariables(rates)
        saved_rates.store()
    checkpoint = RunCheckpoint(
        config.logdir, recorded_config(config), mutable_keys=(*MUTABLE_KEYS, "augment_workers"),
        restore_from=run_logdir, **trackables,
    )  # fmt: skip
    recorder = Recorder(
        checkpoint, config.logdir, lambda step, h: results(config, data, step, h, "fixmatch")
    )
    write_split(config.logdir, data.split)
    start, history = recorder.restore()
    if cta and start:
        saved_rates.load()
    total = config.iterations
    if start >= total:
        return already_finished(config.logdir, METRIC)
    strong = StrongAugment(
        config.value("augment"), augmentation_for(config.dataset), config.seed, rates,
        **{name: config.value(name) for name in ("ra_ranges", "ra_probability")
           if name in config.settings},  # RandAugment's only
        workers=config.augment_workers,
    )  # fmt: skip
    batch = config.value("batch")
    batches = train_batches(data, batch, config.value("uratio"), config.seed, strong, start)
    steps = compiled_steps(strategy, trainer.train_step)
    shape = data.train_images.shape[1:]
    predict = compiled_predict(trainer.ema_model, shape)
    predict_raw = compiled_predict(trainer.model, shape)
    probabilities = probe_scorer(trainer)
    end = total if stop_after is None else min(total, start + stop_after)
    progress = ProgressPrinter(total, batch * (1 + 2 * config.value("uratio")), write=write)
    if start:
        write(resumed_line(start, total, run_logdir))
    log_every = summary_every(total)
    try:
        with ScalarWriter(config.logdir) as writer, recorder.stops_and_divergence(history):
            writer.hparams(recorded_config(config), config.logdir)
            iterator = iter(distribute(strategy, batches, batch, "--batch"))
            every = (log_every, config.report_every)
            calls = train_calls(steps, iterator, start, end, config, every, offset=1, stop=stop)
            for step, stats in calls:
                if cta:
                    images, policies, labels = strong.take_probes(step)
                    p = probabilities(tf.constant(images)).numpy()
                    rates.update(step, policies, p[np.arange(len(labels)), labels])
                    saved_rates.store()
                losses = {k: v for k, v in stats.items() if "/" not in k and k != "total"}
                progress.update(step, losses, force=step == end)
                if step % log_every == 0 or step == end:
                    writer.write(step, scalars(stats, config, trainer, step))
                evaluates = (step - 1) % config.report_every == 0
                if evaluates:
                    check_finite(trainer.model.trainable_variables, step, config.logdir)
                    copy_bn_statistics(trainer.model, trainer.ema_model)
                    entry = evaluate(predict, data, step, config)
                    entry["raw_test_error"] = error_rate(
                        predict_raw, data.test_images, data.test_labels, to_unit_range
                    )
                    history.append(entry)
                    writer.write(step, evaluation_scalars(entry))
                    progress.update(step, errors={"test_error": entry["test_error"]})
                if evaluates or step == total:
                    recorder.save(step, history)
    finally:
        strong.close()
    return final_record(config.logdir, METRIC, write)


def build_trainer(config: RunConfig, data) -> FixMatchTrainer:
    """The raw model, its EMA twin (starting at the same weights) and the trainer."""
    model, ema_model = build_models(config, data)
    hparams = {name: setting.value for name, setting in config.settings.items()}
    return FixMatchTrainer(model, ema_model, hparams, config.iterations, config.xla)


def probe_scorer(trainer: FixMatchTrainer) -> Callable[[tf.Tensor], tf.Tensor]:
    """softmax of the EMA model in inference mode, with the raw model's BN statistics."""

    return tf.function(lambda images: tf.nn.softmax(trainer.ema_logits(images)))


def scalars(stats: dict, config: RunConfig, trainer: FixMatchTrainer, step: int) -> dict:
    """The shared training tags: `loss/xe`, `loss/xeu`, `loss/wd` (and NS3L's), weighted and
    unweighted, their weights, the lr of the last iteration, FixMatch's mask rate
    (`fixmatch/mask`, libml's monitors/mask) and NS3L's statistics (`ns3l/...`)."""
    weights = {"xeu": config.value("wu"), "wd": config.value("wd")}
    if "ns3l_weight" in config.settings:
        weights["ns3l"] = config.value("ns3l_weight")
    lr = trainer.optimizer.learning_rate  # the schedule's value at the next iteration
    values = training_scalars(stats, weights, float(lr))
    values["fixmatch/mask"] = float(stats["count/mask"])
    for key in ("negatives_per_row", "rows_with_negatives", "true_class_among_negatives"):
        if f"count/{key}" in stats:
            values[f"ns3l/{key}"] = float(stats[f"count/{key}"])
    return values
