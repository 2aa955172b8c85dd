"""Cost of the NS3L loss next to the cross-entropy it is added to, forward + backward, compiled.

    python -m bench.loss [--batch 100] [--classes 10] [--steps 200] [--xla]

Prints one JSON line per loss: median / min / max milliseconds per call over `--steps` calls after
warm-up, and the ratio to softmax cross-entropy on the same [batch, classes] logits."""

import argparse
import json
import time

import numpy as np
import tensorflow as tf

import ns3l


def time_calls(fn, logits: tf.Variable, steps: int) -> list[float]:
    fn(logits)  # trace and compile
    fn(logits).numpy()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn(logits).numpy()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--xla", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    logits = tf.Variable(rng.normal(scale=3.0, size=(args.batch, args.classes)), dtype=tf.float32)
    targets = tf.nn.softmax(rng.normal(scale=3.0, size=(args.batch, args.classes)))
    labels = rng.integers(0, args.classes, args.batch)
    threshold = 0.4 / args.classes

    losses = {
        "xent": lambda z: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, z)),
        "ns3l": lambda z: ns3l.ns3l_loss(targets, z, threshold),
        "ns3l_random": lambda z: tf.reduce_mean(
            ns3l.ns3l_per_example(ns3l.random_negatives(args.batch, args.classes, 3, 0), z)
        ),
    }
    baseline = None
    for name, loss in losses.items():

        @tf.function(jit_compile=args.xla)
        def value_and_grad(z, loss=loss):
            with tf.GradientTape() as tape:
                value = loss(z)
            return tape.gradient(value, z)

        times = time_calls(value_and_grad, logits, args.steps)
        median = float(np.median(times))
        baseline = baseline or median
        print(
            json.dumps(
                {
                    "loss": name,
                    "batch": args.batch,
                    "classes": args.classes,
                    "xla": args.xla,
                    "ms_median": round(median, 4),
                    "ms_min": round(min(times), 4),
                    "ms_max": round(max(times), 4),
                    "ratio": round(median / baseline, 3),
                }
            )
        )


if __name__ == "__main__":
    main()
