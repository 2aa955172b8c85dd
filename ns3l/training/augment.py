"""Per-example image augmentation drawn from a `tf.random.Generator`, in-graph and vectorised.

Both stacks use it: the Oliver stack inside the model's training call (realistic_ssl.md §1.6:
flip, reflect-pad-2 translation, Gaussian noise), MixMatch on every labeled image and on each of
the two views of an unlabeled one (mixmatch.md §1.6: flip, reflect-pad-4 or -12 translation).
`per_batch` draws one flip decision and one shift for the whole batch instead ([PT]'s
lib/transform.py, realistic_ssl.md §1.6, §8); the noise stays per element."""

from dataclasses import dataclass

import tensorflow as tf

from ns3l.types import Tensor


@dataclass(frozen=True)
class Augmentation:
    """What `augment` does in training mode (spec §1.6): flip, translate (pixels), noise std,
    and whether flip and shift are drawn per example or once per batch."""

    flip: bool
    translate: int
    noise_std: float
    per_batch: bool = False


def augment(images: Tensor, augmentation: Augmentation, generator: tf.random.Generator) -> Tensor:
    """Flip, translate, then add noise, drawn from `generator` per example (flip and shift once
    for the batch if `augmentation.per_batch`; spec §1.6).

    images [B, H, W, C] -> [B, H, W, C]. Differentiable in `images` (VAT perturbs before it)."""
    draws = [1] if augmentation.per_batch else tf.shape(images)[:1]  # one, or one per example
    if augmentation.flip:
        flipped = generator.uniform(draws) < 0.5  # [B] or [1]
        images = tf.where(flipped[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if augmentation.translate:
        images = random_translate(images, augmentation.translate, generator, augmentation.per_batch)
    if augmentation.noise_std:
        noise = generator.normal(tf.shape(images), stddev=augmentation.noise_std)
        images = images + tf.cast(noise, images.dtype)
    return images


def random_translate(
    images: Tensor, pixels: int, generator: tf.random.Generator, per_batch: bool = False
) -> Tensor:
    """Reflect-pad by `pixels`, then crop H x W at an offset uniform in {0..2·pixels}² drawn per
    example (or once for the batch): [TF]'s shift by {-pixels..pixels}² with reflected borders.
    [B, H, W, C] -> same."""
    batch, height, width = tf.unstack(tf.shape(images)[:3])
    padding = [[0, 0], [pixels, pixels], [pixels, pixels], [0, 0]]
    padded = tf.pad(images, padding, mode="REFLECT")  # edge pixel not repeated, as [TF]
    offsets = generator.uniform([2, 1 if per_batch else batch], 0, 2 * pixels + 1, tf.int32)
    offsets = tf.broadcast_to(offsets, [2, batch])
    # Two batched gathers crop every example at its own offset without a loop over examples.
    rows = offsets[0][:, None] + tf.range(height)  # [B, H]
    columns = offsets[1][:, None] + tf.range(width)  # [B, W]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, H, W + 2·pixels, C]
    return tf.gather(cropped, columns, axis=2, batch_dims=1)
