"""The run around the train step: build, resume, train, evaluate, checkpoint, report.

Model selection as the paper (spec §3.5): the validation error every `eval_every` steps, the test
error at every evaluation ([TF]) or only when the validation error strictly improves ([PT]), and
the whole train split's error if `eval_train` ([TF]); the headline number is the test error at the
lowest validation error. Evaluation, checkpoint and results.json happen together, so a resumed
run has exactly the history it had when it stopped. Every run writes split.json.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

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
from realistic_ssl.config import RunConfig
from realistic_ssl.data import PreparedData, prepare, train_batches
from realistic_ssl.step import RealisticSSLTrainer
from realistic_ssl.wrn import WideResNet, augmentation_for


def train(config: RunConfig, stop_after: int | None = None) -> dict:
    """Runs (or resumes) `config` to its last step, or for `stop_after` more steps; returns the
    results.json content. `stop_after` exists for tests that interrupt a run. Raises `Stopped`
    after a SIGTERM or SIGINT (a checkpoint saved), `Diverged` when the loss is not finite."""
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
        data_dir=config.data_dir, download=config.download,
        split_rule=config.value("split_rule"),
        unlabeled_includes_labeled=config.value("unlabeled_includes_labeled"),
    )  # fmt: skip
    with strategy.scope(), precision.policy_scope(precision.policy_name(config.mixed_precision)):
        trainer = build_trainer(config, data, strategy.num_replicas_in_sync)
    checkpoint = RunCheckpoint(
        config.logdir, recorded_config(config), mutable_keys=MUTABLE_KEYS,
        restore_from=run_logdir,
        **trackables(trainer),
    )  # fmt: skip
    total, eval_every = config.value("train_steps"), config.value("eval_every")
    recorder = Recorder(
        checkpoint, config.logdir, lambda step, h: results(config, data, step, h, total)
    )
    write_split(config.logdir, data.split)
    start, history = recorder.restore()
    if start >= total:
        return already_finished(config.logdir, "test_error_at_best_valid")
    supervised = config.method == "supervised"
    batches = train_batches(
        data, config.value("batch_size"), config.seed, start, supervised,
        strategy.num_replicas_in_sync,
    )  # fmt: skip
    steps = compiled_steps(strategy, trainer.train_step)
    predict = compiled_predict(trainer.wrn, data.train_images.shape[1:])
    end = total if stop_after is None else min(total, start + stop_after)
    progress = ProgressPrinter(total, config.value("batch_size"), write=write)
    if start:
        write(resumed_line(start, total, run_logdir))
    log_every = summary_every(total)
    with ScalarWriter(config.logdir) as writer, recorder.stops_and_divergence(history):
        writer.hparams(recorded_config(config), config.logdir)
        iterator = iter(distribute(strategy, batches, config.value("batch_size")))
        every = (log_every, eval_every)
        for step, stats in train_calls(steps, iterator, start, end, config, every, stop=stop):
            progress.update(step, losses(stats), force=step == end)
            if step % log_every == 0 or step == end:
                writer.write(step, scalars(stats, step, trainer))
            if step % eval_every == 0 or step == total:
                check_finite(trainer.wrn.trainable_variables, step, config.logdir)
                history.append(evaluate(predict, data, step, config, history))
                writer.write(step, evaluation_scalars(history[-1]))
                errors = {k: history[-1][k] for k in ("valid_error", "test_error")}
                progress.update(step, errors=errors)
                recorder.save(step, history)
    return final_record(config.logdir, "test_error_at_best_valid", write)


def build_trainer(config: RunConfig, data: PreparedData, replicas: int) -> RealisticSSLTrainer:
    """The WRN (and, for `mt`, its EMA teacher) and the trainer, inside the strategy's scope and
    the run's precision policy."""

    augmentation = dataclasses.replace(
        augmentation_for(config.dataset), per_batch=config.value("augment_per") == "batch"
    )

    def wrn(augment_stream: str = "augment") -> WideResNet:
        model = WideResNet(
            data.num_classes, depth=config.wrn_depth, width=config.wrn_width,
            augmentation=augmentation, seed=config.seed, augment_stream=augment_stream,
            bn_momentum=config.value("bn_momentum"), bn_epsilon=config.value("bn_epsilon"),
            synchronized_bn=config.sync_bn, stride2_padding=config.value("stride2_padding"),
            dense_init=config.value("dense_init"),
        )  # fmt: skip
        model(tf.zeros((1, *data.train_images.shape[1:])))  # create the variables
        return model

    student = wrn()
    teacher = None
    if "mt" in config.method.split("+"):
        teacher = wrn("teacher_augment")  # its own views
        for mine, theirs in zip(
            teacher.trainable_variables, student.trainable_variables, strict=True
        ):
            mine.assign(theirs)  # the EMA starts at the initial weights (spec §4.3)
    hparams = {name: setting.value for name, setting in config.settings.items()}
    return RealisticSSLTrainer(
        student, tuple(config.method.split("+")), hparams, config.value("batch_size"),
        seed=config.seed, teacher=teacher, jit_compile=config.xla,
    )  # fmt: skip


def trackables(trainer: RealisticSSLTrainer) -> dict:
    """What a resumed run needs bitwise: weights, BN statistics, augmentation RNG (inside the
    model), Adam slots and step, VAT's generator, the teacher."""
    objects = {"wrn": trainer.wrn, "optimizer": trainer.optimizer, "vat_rng": trainer.vat_rng}
    return objects | ({"teacher": trainer.teacher} if trainer.teacher is not None else {})


def evaluate(predict, data: PreparedData, step: int, config: RunConfig, history: list) -> dict:
    """Errors in percent, BN in inference mode, no augmentation (spec §3.5): valid; test always,
    or (`eval_test="on_improvement"`, [PT]) only when valid is strictly below every earlier
    valid error (None otherwise); and, with `eval_train`, the whole train split ([TF])."""
    valid = data.split.valid
    entry = {
        "step": step,
        "valid_error": error_rate(predict, data.train_images[valid], data.train_labels[valid]),
    }
    valid_error = entry["valid_error"]  # None without a validation set (n_valid=0)
    earlier = [h["valid_error"] for h in history if h["valid_error"] is not None]
    improved = valid_error is None or not earlier or valid_error < min(earlier)
    if config.value("eval_test") == "always" or improved:
        entry["test_error"] = error_rate(predict, data.test_images, data.test_labels)
    else:
        entry["test_error"] = None
    if config.value("eval_train"):
        train = np.setdiff1d(np.arange(len(data.train_labels)), valid)
        entry["train_error"] = error_rate(
            predict, data.train_images[train], data.train_labels[train]
        )
    return entry


def losses(stats: dict) -> dict:
    """The weighted terms, as the console shows them."""
    return {k: v for k, v in stats.items() if "/" not in k and k != "total"}


def scalars(stats: dict, step: int, trainer: RealisticSSLTrainer) -> dict:
    """The shared training tags (ns3l.training.summaries), the ramp, and NS3L's diagnostics:
    negatives per unlabeled row (the rows its penalty covers) and, on the labeled rows, how
    often the true class is among the negatives T would pick."""
    ramp = trainer.ramp(tf.constant(step - 1, tf.int64))
    lr = trainer.optimizer.learning_rate
    values = training_scalars(stats, trainer.weights(ramp), float(lr))
    values["ramp"] = float(ramp)
    if "count/rows_u" in stats:
        rows_u = float(stats["count/rows_u"])
        values["ns3l/negatives_per_row"] = float(stats["count/negatives_u"]) / max(rows_u, 1)
        chosen = float(stats["count/negatives_l"])
        values["ns3l/true_class_among_negatives_l"] = (
            float(stats["count/true_negatives_l"]) / chosen if chosen else 0.0
        )
    return values


def results(config: RunConfig, data: PreparedData, step: int, history: list, total: int) -> dict:
    """results.json: the paper's metric (test error at the best validation error) and the curve."""
    metrics = {}  # none before the first evaluation (a run stopped or diverged early)
    if history:
        validated = [h for h in history if h["valid_error"] is not None]
        best = min(validated, key=lambda h: h["valid_error"]) if validated else history[-1]
        metrics = {
            "test_error_at_best_valid": best["test_error"],
            "best_valid_error": best["valid_error"],
            "best_step": best["step"],
            "final_test_error": history[-1]["test_error"],
        }
    record = run_record(
        "realistic_ssl", config, data.split_sizes, step, step == total, metrics, history
    )
    return record | {"protocol": config.protocol, "split_rule": data.split.rule}
