import numpy as np
import tensorflow as tf

from ns3l.summaries import ProgressPrinter, ScalarWriter, format_duration, format_progress


def read_scalars(logdir):
    """(tag, step, value) of every scalar in the event files of `logdir`, in file order."""
    got = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
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
        losses={"xent": 0.693147, "consistency": tf.constant(0.0125)},
        eval_error=12.5,
    )
    assert line == (
        "step 1000/200000  1000 img/s  xent 0.6931  consistency 0.0125  error 12.50%  ETA 5h31m40s"
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


def test_printer_prints_at_most_every_n_seconds():
    now = [1000.0]
    printed = []
    printer = ProgressPrinter(
        total_steps=1000,
        batch_size=1000,
        every_seconds=60.0,
        clock=lambda: now[0],
        write=printed.append,
    )
    lines = []
    for step, seconds in [(1, 1.0), (2, 30.0), (3, 60.0), (4, 80.0), (5, 140.0), (6, 141.0)]:
        now[0] = 1000.0 + seconds
        lines.append(printer.update(step, {"loss": 1.0 / step}))
    assert [line is not None for line in lines] == [True, False, False, True, True, False]
    assert printed == [line for line in lines if line is not None]
    assert printed == [
        "step 1/1000  1000 img/s  loss 1  ETA 16m39s",
        "step 4/1000  50 img/s  loss 0.25  ETA 5h32m00s",
        "step 5/1000  36 img/s  loss 0.2  ETA 7h44m20s",
    ]


def test_printer_forces_and_repeats_the_latest_eval_error():
    now = [0.0]
    printed = []
    printer = ProgressPrinter(100, 50, clock=lambda: now[0], write=printed.append)
    now[0] = 10.0
    printer.update(10, eval_error=40.0)
    now[0] = 20.0
    assert printer.update(20) is None
    now[0] = 21.0
    printer.update(21, force=True)
    assert printed == [
        "step 10/100  50 img/s  error 40.00%  ETA 1m30s",
        "step 21/100  50 img/s  error 40.00%  ETA 1m19s",
    ]
