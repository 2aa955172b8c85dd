"""Every random stream of a run, derived from (run seed, stream name) by one function.

`stream_key(seed, name)` is the only place a run's seed turns into random numbers: the weight
initialisation, each augmentation, VAT's directions, MixUp's λ and permutation, the data order
and the Mean Teacher's own views each get the key of their name (docs/runs.md lists the names
both stacks use). Keys are 63-bit hashes, so no two (seed, name) pairs share a stream.

Why not `tf.random.Generator.from_seed(seed)`: it puts the seed into Philox's *counter* with key
0, so seeds 1, 2, 3 ... draw one sequence shifted by a few positions, and two generators built
from the same seed draw the same numbers. Here the hash is the Philox *key* and the counter starts
at 0; stateless ops (Keras initialisers, the shuffles of `ns3l.training.streams`) get the key as the
first word of their seed pair, which TensorFlow scrambles through a Philox round."""

import hashlib

import keras
import tensorflow as tf


def stream_key(seed: int, stream: str) -> int:
    """A key in [0, 2^63) for stream `stream` of the run seeded `seed`: the first 8 bytes of
    SHA-256("ns3l:<seed>:<stream>"), big-endian, top bit cleared (an int64 in every backend)."""
    if not stream:
        raise ValueError("stream: expected a non-empty name, e.g. 'augment'")
    digest = hashlib.sha256(f"ns3l:{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def generator(seed: int, stream: str) -> tf.random.Generator:
    """A Philox `tf.random.Generator` with key `stream_key(seed, stream)` and counter 0.

    Track it as a model or checkpoint attribute: its state is then saved and restored, and a
    resumed run continues the stream where it stopped. Created in `strategy.scope()`, each
    replica draws its own sub-stream (TensorFlow's rule for distributed generators)."""
    return tf.random.Generator.from_key_counter(
        key=stream_key(seed, stream), counter=[0, 0], alg="philox"
    )


def seed_generator(seed: int, stream: str) -> keras.random.SeedGenerator:
    """A Keras `SeedGenerator` for stream `stream`, e.g. the initialisers of a network: each
    layer's draw takes the next seed pair (key, 0), (key, 1), ..."""
    return keras.random.SeedGenerator(stream_key(seed, stream))
