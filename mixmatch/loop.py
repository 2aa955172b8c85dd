"""A MixMatch run: build, resume, train, evaluate the EMA model every report_kimg, checkpoint.

The paper's number (spec §4): 100 − the median of the last 20 EMA test accuracies, i.e. the median
of the last 20 test errors. The evaluations fall where the original's summaries fire: after the
first iteration, then every report period from there (iterations 1, 1 + R, 1 + 2R, ...; R = 1,024
at 64 kimg), which is libml's `save_summaries_steps=report_nimg - batch` hook counting images.
Evaluation, checkpoint and results.json happen together, so a resumed run continues its list of
evaluations exactly where its checkpoint left it; the last iteration is checkpointed too.
"""

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from mixmatch.config import KimgRunConfig, RunConfig
from mixmatch.data import PreparedData, augmentation_for, prepare, to_unit_range, train_batches
from mixmatch.step import MixMatchTrainer
from mixmatch.wrn import ResNet
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
    run_record,
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

MEDIANS = (1, 10, 20, 50)  # scripts/extract_accuracy.py's last01, last10, last20, last50


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
    """The run, writing to `config.logdir` (a scratch one on a non-chief worker) and restoring
    the run's checkpoints from `run_logdir`; `write` prints to the console."""
    data = prepare(
        config.dataset, config.value("n_labeled"), config.value("n_valid"), config.seed,
        data_dir=config.data_dir, download=config.download, stl10_folds=config.stl10_folds,
    )  # fmt: skip
    with strategy.scope(), precision.policy_scope(precision.policy_name(config.mixed_precision)):
        trainer = build_trainer(config, data)
    checkpoint = RunCheckpoint(
        config.logdir, recorded_config(config), mutable_keys=MUTABLE_KEYS,
        restore_from=run_logdir,
        model=trainer.model, ema_model=trainer.ema_model, optimizer=trainer.optimizer,
        augment_rng=trainer.augment_rng, mixup_rng=trainer.mixup_rng,
    )  # fmt: skip
    recorder = Recorder(checkpoint, config.logdir, lambda step, h: results(config, data, step, h))
    write_split(config.logdir, data.split)
    start, history = recorder.restore()
    total = config.iterations
    if start >= total:
        return already_finished(config.logdir, "median_test_error_last20")
    batches = train_batches(data, config.value("batch"), config.seed, start)
    steps = compiled_steps(strategy, trainer.train_step)
    predict = compiled_predict(trainer.ema_model, data.train_images.shape[1:])
    end = total if stop_after is None else min(total, start + stop_after)
    progress = ProgressPrinter(total, config.value("batch"), write=write)
    if start:
        write(resumed_line(start, total, run_logdir))
    log_every = summary_every(total)
    with ScalarWriter(config.logdir) as writer, recorder.stops_and_divergence(history):
        writer.hparams(recorded_config(config), config.logdir)
        iterator = iter(distribute(strategy, batches, config.value("batch"), "--batch"))
        # Calls end where the loop logs (multiples of log_every) and evaluates (1 + multiples of
        # the report period: offset 1).
        every = (log_every, config.report_every)
        calls = train_calls(steps, iterator, start, end, config, every, offset=1, stop=stop)
        for step, stats in calls:
            losses = {k: v for k, v in stats.items() if "/" not in k and k != "total"}
            progress.update(step, losses, force=step == end)
            if step % log_every == 0 or step == end:
                writer.write(step, scalars(stats, config, step))
            evaluates = (step - 1) % config.report_every == 0
            if evaluates:
                check_finite(trainer.model.trainable_variables, step, config.logdir)
                copy_bn_statistics(trainer.model, trainer.ema_model)
                history.append(evaluate(predict, data, step, config))
                writer.write(step, evaluation_scalars(history[-1]))
                # The validation holdout is one image (spec §1.4): the console shows the test.
                progress.update(step, errors={"test_error": history[-1]["test_error"]})
            if evaluates or step == total:
                recorder.save(step, history)
    return final_record(config.logdir, "median_test_error_last20", write)


def build_models(config: KimgRunConfig, data: PreparedData) -> tuple[ResNet, ResNet]:
    """The raw ResNet of `config`'s settings and its EMA twin, starting at the same weights
    (spec §3.4; FixMatch's too, fixmatch spec §1)."""
    shape = (1, *data.train_images.shape[1:])

    def resnet() -> ResNet:
        model = ResNet(
            data.num_classes, seed=config.seed, filters=config.value("filters"),
            repeat=config.value("repeat"), scales=config.value("scales"),
            bn_momentum=config.value("bn_momentum"), synchronized_bn=config.sync_bn,
        )  # fmt: skip
        model(tf.zeros(shape))
        return model

    model, ema_model = resnet(), resnet()
    ema_model.set_weights(model.get_weights())
    return model, ema_model


def build_trainer(config: RunConfig, data: PreparedData) -> MixMatchTrainer:
    """The raw model, its EMA twin and the trainer."""
    model, ema_model = build_models(config, data)
    hparams = {name: setting.value for name, setting in config.settings.items()}
    return MixMatchTrainer(
        model, ema_model, hparams, augmentation_for(config.dataset), config.seed,
        jit_compile=config.xla,
    )  # fmt: skip


def scalars(stats: dict, config: RunConfig, step: int) -> dict:
    """The shared training tags (ns3l.training.summaries): `loss/xe`, `loss/l2u` (and NS3L's),
    unweighted and weighted, the λ_U of the last iteration as `weight/l2u` and NS3L's λ1 as
    `weight/ns3l`, and NS3L's negatives per mixed row (`ns3l/negatives_per_row`)."""
    warmup = config.value("warmup_kimg") * 1024 // config.value("batch")
    ramp = min((step - 1) / max(warmup, 1), 1.0)  # mm.lambda_u at the 0-based iteration
    weights = {"l2u": config.value("w_match") * ramp}
    if "ns3l_weight" in config.settings:
        weights["ns3l"] = config.value("ns3l_weight") * (ramp if config.value("ns3l_ramp") else 1)
    values = training_scalars(stats, weights, config.value("lr"))
    if "count/negatives_per_row" in stats:
        values["ns3l/negatives_per_row"] = float(stats["count/negatives_per_row"])
    return values


def copy_bn_statistics(model: keras.Model, ema_model: keras.Model) -> None:
    """The EMA model evaluates with the raw model's BN moving statistics (spec §3.4)."""
    for mine, theirs in zip(ema_model.non_trainable_variables, model.non_trainable_variables,
                            strict=True):  # fmt: skip
        mine.assign(theirs)


def evaluate(predict, data: PreparedData, step: int, config: RunConfig) -> dict:
    """EMA errors in percent on test, the validation holdout and the labeled set (spec §4)."""
    kimg = step * config.value("batch") / 1024
    entry = {"step": step, "kimg": kimg}
    for name, rows, labels in (
        ("test_error", None, data.test_labels),
        ("valid_error", data.split.valid, None),
        ("train_labeled_error", data.split.labeled, None),
    ):
        images = data.test_images if rows is None else data.train_images[rows]
        labels = labels if rows is None else data.train_labels[rows]
        entry[name] = error_rate(predict, images, labels, to_unit_range)
    return entry


def results(
    config: RunConfig, data: PreparedData, step: int, history: list, stack: str = "mixmatch"
) -> dict:
    """results.json: medians of the last 1, 10, 20, 50 EMA test errors (20 is the paper's, in
    both libml stacks)."""
    errors = [h["test_error"] for h in history]  # none before the first evaluation
    metrics = {f"median_test_error_last{n}": float(np.median(errors[-n:]))
               for n in MEDIANS if errors}  # fmt: skip
    finished = step == config.iterations
    record = run_record(stack, config, data.split_sizes, step, finished, metrics, history)
    return record | {"kimg": step * config.value("batch") / 1024, "split_rule": data.split.rule}
