import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from ns3l.training.summaries import (
    ProgressPrinter,
    ScalarWriter,
    evaluation_scalars,
    format_duration,
    format_progress,
    summary_every,
    training_scalars,
)


def read_scalars(logdir):
    """(tag, step, value) of every scalar in the event files of `logdir`, in file order."""
    got = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    continue
                got.append((value.tag, event.step, tf.make_ndarray(value.tensor).item()))
    return got


def test_scalars_are_read_back_with_their_steps(tmp_path):
    with ScalarWriter(tmp_path) as writer:
        writer.write(0, {"losses/xe": 2.25, "accuracy": 10.0})
        writer.write(1024, {"losses/xe": tf.constant(0.625), "accuracy": np.float64(87.5)})
        writer.flush()
        assert read_scalars(tmp_path) == [
            ("losses/xe", 0, 2.25),
            ("accuracy", 0, 10.0),
            ("losses/xe", 1024, 0.625),
            ("accuracy", 1024, 87.5),
        ]


def read_hparams(logdir) -> dict:
    """The HParams plugin's session-start record in the event files of `logdir`."""
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content
                    )
                    if data.HasField("session_start_info"):
                        info = data.session_start_info
                        got = {}
                        for name, v in info.hparams.items():
                            got[name] = getattr(v, v.WhichOneof("kind"))
                        return {"trial": info.group_name, **got}
    raise AssertionError(f"no hparams in {logdir}")


def test_hparams_are_written_for_the_plugins_table(tmp_path):
    with ScalarWriter(tmp_path) as writer:
        writer.hparams({"lr": 0.003, "method": "vat+ns3l", "ns3l_ramp": True, "folds": None}, "r1")
    assert read_hparams(tmp_path) == {
        "trial": "r1", "lr": 0.003, "method": "vat+ns3l", "ns3l_ramp": True, "folds": "None",
    }  # fmt: skip


def test_training_tags_weighted_unweighted_and_weights():
    stats = {"total": 1.5, "xe": 0.5, "vat": 1.0, "raw/xe": 0.5, "raw/vat": 4.0,
             "count/rows_u": 50.0}  # fmt: skip
    assert training_scalars(stats, {"vat": 0.25}, lr=0.003) == {
        "loss/total": 1.5, "loss/xe": 0.5, "loss/vat": 1.0, "loss_unweighted/xe": 0.5,
        "loss_unweighted/vat": 4.0, "weight/vat": 0.25, "lr": 0.003,
    }  # fmt: skip


def test_evaluation_tags_name_the_split():
    entry = {"step": 5, "kimg": 1.25, "valid_error": 10.0, "test_error": None, "train_error": 2.0}
    assert evaluation_scalars(entry) == {"error/valid": 10.0, "error/train": 2.0}


def test_summary_cadence_draws_a_short_run():
    assert [summary_every(n) for n in (1, 8, 200, 1_000, 200_000)] == [1, 1, 2, 10, 100]
    assert len(range(0, 200, summary_every(200))) == 100  # a 200-step run: 100 points, not 2


def test_scalars_are_stored_as_float32(tmp_path):
    with ScalarWriter(tmp_path) as writer:
        writer.write(7, {"lr": 0.1})
    assert read_scalars(tmp_path) == [("lr", 7, float(np.float32(0.1)))]


def test_progress_line_from_hand_values():
    line = format_progress(
        1000,
        200_000,
        elapsed_seconds=100.0,
        batch_size=100,
        losses={"xe": 0.693147, "consistency": tf.constant(0.0125)},
        errors={"valid_error": 12.5, "test_error": 13.25},
    )
    assert line == (
        "step 1000/200000  1000 img/s  xe 0.6931  consistency 0.0125  valid_error 12.50%  "
        "test_error 13.25%  ETA 5h31m40s"
    )


def test_progress_rate_counts_only_the_steps_of_this_process():
    # Resumed at 150000: 1000 steps in 50 s at batch 64 is 1280 img/s, 49000 steps to go.
    line = format_progress(
        151_000, 200_000, elapsed_seconds=50.0, batch_size=64, first_step=150_000
    )
    assert line == "step 151000/200000  1280 img/s  ETA 40m50s"


def test_progress_without_a_rate_yet():
    line = format_progress(5, 100, elapsed_seconds=0.0, batch_size=64, first_step=5)
    assert line == "step 5/100  ? img/s  ETA ?"


def test_durations():
    assert [format_duration(s) for s in (0, 7.4, 125, 3600, 19_900, 200_000)] == [
        "0s",
        "7s",
        "2m05s",
        "1h00m00s",
        "5h31m40s",
        "55h33m20s",
    ]


def test_printer_rates_from_its_first_call_and_spaces_its_lines_out():
    # Constructed at t=0; the first call (step 1) comes at t=10, after tracing: no rate yet.
    now = [0.0]
    printed = []
    printer = ProgressPrinter(total_steps=1001, batch_size=100, every_seconds=30.0,
                              clock=lambda: now[0], write=printed.append)  # fmt: skip
    lines = []
    # Gaps after each line: 10, 20, then at most every_seconds = 30.
    for step, seconds in [(1, 10), (11, 15), (21, 20), (41, 30), (81, 40), (101, 60), (141, 70),
                          (161, 95), (181, 100)]:  # fmt: skip
        now[0] = float(seconds)
        lines.append(printer.update(step))
    assert [line is not None for line in lines] == [
        True, False, True, False, True, False, True, False, True,
    ]  # fmt: skip
    # step 21 at t=20: 20 steps in 10 s = 2 steps/s = 200 img/s; 980 left: 490 s.
    # step 81 at t=40: 80 steps in 30 s; 920 left at 8/3 steps/s: 345 s.
    # step 141 at t=70: 140 in 60 s; 860 / (7/3) = 368.6 s. step 181 at t=100: 180 in 90 s.
    assert printed == [
        "step 1/1001  ? img/s  elapsed 10s  ETA ?",
        "step 21/1001  200 img/s  elapsed 20s  ETA 8m10s",
        "step 81/1001  267 img/s  elapsed 40s  ETA 5m45s",
        "step 141/1001  233 img/s  elapsed 1m10s  ETA 6m09s",
        "step 181/1001  200 img/s  elapsed 1m40s  ETA 6m50s",
    ]


def test_printer_forces_and_repeats_the_latest_eval_error():
    now = [0.0]
    printed = []
    printer = ProgressPrinter(100, 50, clock=lambda: now[0], write=printed.append)
    now[0] = 10.0
    printer.update(10, errors={"valid_error": 40.0, "test_error": 41.0})
    now[0] = 15.0
    assert printer.update(15) is None
    now[0] = 21.0
    # [PT] tests only on improvement: None keeps the latest test error.
    printer.update(21, errors={"valid_error": 39.0, "test_error": None}, force=True)
    assert printed == [  # 11 steps in 11 s since the first call: 50 img/s
        "step 10/100  ? img/s  valid_error 40.00%  test_error 41.00%  elapsed 10s  ETA ?",
        "step 21/100  50 img/s  valid_error 39.00%  test_error 41.00%  elapsed 21s  ETA 1m19s",
    ]
