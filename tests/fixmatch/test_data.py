"""FixMatch's inputs (spec fixmatch.md §2-§3): the pool with every train image, the weak views,
the host augmentation's determinism, and CTAugment's rates read at an exact lag."""

import threading

import numpy as np
import pytest

from fixmatch import ctaugment
from fixmatch.data import LaggedRates, RatesVariables, StrongAugment, prepare, to_unit, weak
from ns3l.training.augment import Augmentation
from ns3l.training.splits import mixmatch_split


def test_the_pool_is_every_train_image_in_mixmatchs_interleaved_order():
    labels = np.repeat(np.arange(3), 6)
    fixmatch = mixmatch_split(labels, 3, 6, seed=1, n_valid=2, labeled_in_unlabeled=True)
    mixmatch = mixmatch_split(labels, 3, 6, seed=1, n_valid=2)
    np.testing.assert_array_equal(fixmatch.labeled, mixmatch.labeled)  # the same labeled set
    pool = np.concatenate([fixmatch.valid, fixmatch.unlabeled])
    assert sorted(pool) == list(range(18))  # every image once, labeled ones included
    # The interleaved order of a balanced set: classes 0, 1, 2, 0, 1, 2, ... in file order.
    assert labels[pool].tolist() == [0, 1, 2] * 6
    assert pool[:3].tolist() == [0, 6, 12]  # the validation head may hold labeled images


def test_digits_split_sizes():
    data = prepare("digits", 50, 1, seed=1)
    assert data.split.sizes == {"labeled": 50, "unlabeled": 1296, "valid": 1}
    assert set(data.split.labeled) <= set(data.split.unlabeled) | set(data.split.valid)


def test_weak_flips_then_reflect_pads_and_crops():
    image = np.arange(16 * 3, dtype=np.uint8).reshape(1, 4, 4, 3)
    images = np.repeat(image, 200, axis=0)
    got = weak(
        images, Augmentation(flip=True, translate=2, noise_std=0.0), np.random.default_rng(0)
    )
    padded = np.pad(image[0], ((2, 2), (2, 2), (0, 0)), mode="reflect")
    flipped = np.pad(image[0, :, ::-1], ((2, 2), (2, 2), (0, 0)), mode="reflect")
    crops = set()
    for f, source in enumerate((padded, flipped)):
        for dy in range(5):
            for dx in range(5):
                if any((g == source[dy : dy + 4, dx : dx + 4]).all() for g in got):
                    crops.add((f, dy, dx))
    assert len({(dy, dx) for _, dy, dx in crops}) == 25  # every offset 0..4 in both axes
    assert {f for f, _, _ in crops} == {0, 1}
    assert padded[0, 0, 0] == image[0, 2, 2, 0]  # reflect: mirrored without the edge pixel
    unchanged = weak(images[:3], Augmentation(flip=False, translate=0, noise_std=0.0),
                     np.random.default_rng(0))  # fmt: skip
    np.testing.assert_array_equal(unchanged, images[:3])


def test_to_unit_is_the_pipelines_float32_formula():
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(
        to_unit(values), (values.astype(np.float32) * np.float32(2 / 255)) - 1
    )
    assert to_unit(values).dtype == np.float32 and to_unit(values)[0] == -1.0


@pytest.mark.parametrize("augment", ["ctaugment", "randaugment"])
def test_a_steps_views_depend_on_seed_and_step_not_on_threads(augment):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (4, 16, 16, 3)).astype(np.uint8)
    u = rng.integers(0, 256, (6, 16, 16, 3)).astype(np.uint8)
    labels = np.arange(4)
    weak_aug = Augmentation(flip=True, translate=2, noise_std=0.0)

    def views(workers: int, step: int, seed: int = 1):  # steps 1 and 2 read the start rates
        rates = LaggedRates(ctaugment.CTAugment()) if augment == "ctaugment" else None
        strong = StrongAugment(augment, weak_aug, seed, rates, workers=workers)
        out = strong(step, x, labels, u)
        probes = strong.probes.get(step)
        strong.close()
        return out, probes

    (one, probes_one), (four, probes_four) = views(1, 1), views(4, 1)
    for a, b in zip(one, four, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(views(1, 2)[0][2], one[2])  # another step, other draws
    assert not np.array_equal(views(1, 1, seed=2)[0][2], one[2])
    assert one[0].shape == (4, 16, 16, 3) and one[2].shape == (6, 16, 16, 3)
    assert one[2].dtype == np.float32 and -1 <= one[2].min() and one[2].max() <= 1
    if augment == "ctaugment":
        images, policies, kept = probes_one
        np.testing.assert_array_equal(images, probes_four[0])
        assert len(policies) == 4 and all(len(p) == 2 for p in policies)
        np.testing.assert_array_equal(kept, labels)
    else:
        assert probes_one is None


def test_step_s_reads_the_rates_of_step_s_minus_1_minus_lag():
    rates = LaggedRates(ctaugment.CTAugment(), lag=1)
    policy = [("rotate", (0.5,))]
    for step in (1, 2, 3):  # each update moves rotate's bin 8 further toward 0
        rates.update(step, [policy], np.array([0.0]))

    def bin8(step: int) -> float:
        return float(rates.for_step(step).rates["rotate"][0][8])

    # Step 4 reads step 2's rates (two updates), step 5 step 3's; older copies are dropped.
    assert bin8(4) == pytest.approx(0.99**2) and bin8(5) == pytest.approx(0.99**3)
    assert sorted(rates.copies) == [2, 3]
    # Step 6 needs step 4's update: it waits for it.
    seen = []
    reader = threading.Thread(target=lambda: seen.append(bin8(6)))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive() and not seen
    rates.update(4, [policy], np.array([0.0]))
    reader.join(5)
    assert seen == [pytest.approx(0.99**4)]


def test_a_lag_0_reads_the_last_update_and_close_releases_a_waiting_reader():
    rates = LaggedRates(ctaugment.CTAugment(), lag=0)
    assert rates.for_step(1).rates["rotate"][0][8] == 1.0
    rates.update(1, [[("rotate", (0.5,))]], np.array([0.5]))
    assert rates.for_step(2).rates["rotate"][0][8] == pytest.approx(0.995)
    reader = threading.Thread(target=lambda: rates.for_step(9))
    reader.start()
    rates.close()
    reader.join(5)
    assert not reader.is_alive()


def test_the_rates_round_trip_through_their_checkpoint_variables():
    rates = LaggedRates(ctaugment.CTAugment(), lag=1)
    rng = np.random.default_rng(0)
    for step in (1, 2, 3):
        policies = [rates.cta.policy(rng, probe=True) for _ in range(5)]
        rates.update(step, policies, rng.random(5))
    saved = RatesVariables(rates)
    saved.store()
    fresh = LaggedRates(ctaugment.CTAugment(), lag=1)
    loaded = RatesVariables(fresh)
    for mine, theirs in zip(loaded.variables, saved.variables, strict=True):
        mine.assign(theirs)
    loaded.load()
    assert fresh.updated == 3 and sorted(fresh.copies) == [2, 3]
    for step in (4, 5):
        for key, rate in rates.for_step(step).state().items():
            np.testing.assert_array_equal(fresh.for_step(step).state()[key], rate)
    for key, rate in rates.cta.state().items():
        np.testing.assert_array_equal(fresh.cta.state()[key], rate)
