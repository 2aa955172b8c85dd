"""GCN, ZCA, their cache and the [-1, 1] scaling against numpy twins and spec §1.4."""

import numpy as np
import pytest

from realistic_ssl import preprocess as preprocess_module
from realistic_ssl.preprocess import (
    cached_zca_fit,
    fit_zca,
    gcn,
    preprocess,
    scale_to_unit_range,
    zca,
)


def raw_images(count: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)


def numpy_gcn(images):
    x = images.reshape(len(images), -1).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return 55 * x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_gcn_zca(train, images):
    x = numpy_gcn(train)
    covariance = np.cov(x, rowvar=False)
    u, s, _ = np.linalg.svd(covariance + 0.1 * np.eye(len(covariance)))
    whitening = u @ np.diag(1 / np.sqrt(s + 1e-10)) @ u.T
    return ((numpy_gcn(images) - x.mean(axis=0)) @ whitening).reshape(images.shape)


def test_gcn_matches_numpy_and_gives_mean_0_norm_55():
    images = raw_images()
    got = gcn(images)
    assert got.dtype == np.float64 and got.shape == images.shape
    np.testing.assert_allclose(got.reshape(len(images), -1), numpy_gcn(images), rtol=1e-12)
    flat = got.reshape(len(images), -1)
    np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 55, rtol=1e-12)


def test_gcn_leaves_a_constant_image_at_zero():
    np.testing.assert_array_equal(gcn(np.full((1, 4, 4, 3), 7, np.uint8)), 0)


@pytest.mark.parametrize("chunk_size", [2_000, 64])  # one chunk, and 4 chunks with a short one
def test_zca_matches_numpy(monkeypatch, chunk_size):
    monkeypatch.setattr(preprocess_module, "CHUNK_SIZE", chunk_size)
    train, test = raw_images(200, seed=1), raw_images(70, seed=2)
    mean, whitening = fit_zca(train)
    for images in (train, test):
        got = zca(images, mean, whitening)
        assert got.dtype == np.float32 and got.shape == images.shape
        np.testing.assert_allclose(got, numpy_gcn_zca(train, images), rtol=1e-4, atol=1e-4)


def test_zca_whitening_is_symmetric_and_inverts_the_regularised_covariance():
    train = raw_images(200, seed=3)
    mean, whitening = fit_zca(train)
    np.testing.assert_allclose(mean, numpy_gcn(train).mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(whitening, whitening.T, atol=1e-10)
    regularised = np.cov(numpy_gcn(train), rowvar=False) + 0.1 * np.eye(48)
    np.testing.assert_allclose(whitening @ regularised @ whitening, np.eye(48), atol=1e-8)
    # The whitened training data has covariance C (C + 0.1 I)^-1: eigenvalues below 1.
    whitened = zca(train, mean, whitening).reshape(200, -1).astype(np.float64)
    want = np.cov(numpy_gcn(train), rowvar=False) @ np.linalg.inv(regularised)
    np.testing.assert_allclose(np.cov(whitened, rowvar=False), want, atol=1e-4)


def test_zca_fit_is_cached_per_training_set(monkeypatch, tmp_path):
    fits = []

    def counting_fit(images):
        fits.append(len(images))
        return fit_zca(images)

    monkeypatch.setattr(preprocess_module, "fit_zca", counting_fit)
    cifar, other = raw_images(200, seed=4), raw_images(150, seed=5)
    first = cached_zca_fit(cifar, "cifar10", tmp_path)
    second = cached_zca_fit(cifar, "cifar10", tmp_path)
    assert fits == [200]  # the second call loaded the file
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    cached_zca_fit(other, "cifar10", tmp_path)  # other images: no stale fit
    assert fits == [200, 150]
    preprocess("cifar100", cifar, cache_dir=tmp_path)  # another data set name: its own file
    assert fits == [200, 150, 200]
    assert len(list(tmp_path.glob("zca-*.npz"))) == 3 and not list(tmp_path.glob("*.tmp*"))


def test_scale_to_unit_range_maps_0_and_255_to_minus_1_and_1():
    images = np.array([[[[0, 255, 51]]]], np.uint8)
    got = scale_to_unit_range(images)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [[[[-1.0, 1.0, -0.6]]]], atol=1e-7)


def test_preprocess_picks_the_scaling_by_data_set(tmp_path):
    train, test = raw_images(200, seed=6), raw_images(30, seed=7)
    for dataset in ("svhn", "digits", "oxford_flowers102"):
        got_train, got_test = preprocess(dataset, train, test, cache_dir=tmp_path)
        np.testing.assert_array_equal(got_test, scale_to_unit_range(test))
    assert not list(tmp_path.iterdir())  # no ZCA fitted for them
    got_train, got_test = preprocess("cifar10", train, test, cache_dir=tmp_path)
    np.testing.assert_allclose(got_test, numpy_gcn_zca(train, test), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_train, numpy_gcn_zca(train, train), rtol=1e-4, atol=1e-4)
