import gzip

import numpy as np
import pytest
import torch

from conftest import SMALL_MNIST
from normsweep.data import mnist


def test_shipped_subset_is_real_mnist_in_torchvision_layout():
    train = mnist.load_mnist(SMALL_MNIST, train=True)
    test = mnist.load_mnist(SMALL_MNIST, train=False)
    assert train.images.shape == (6000, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (1000, 28, 28)
    assert set(train.labels.tolist()) == set(range(10))
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's first training labels
    assert mnist.verify_mnist(SMALL_MNIST)  # its own MD5SUMS


def test_limit_keeps_the_first_images():
    assert mnist.load_mnist(SMALL_MNIST, train=True, limit=10).labels.shape == (10,)


def test_full_mnist_has_the_official_md5_and_sizes(full_mnist):
    assert mnist.verify_mnist(full_mnist) == {name: md5 for name, md5 in mnist.MNIST_MD5.items()}
    assert mnist.load_mnist(full_mnist, train=True).images.shape == (60000, 28, 28)


def test_exact_stats_of_full_mnist_match_the_classic_values(full_mnist):
    stats = mnist.exact_stats(mnist.load_mnist(full_mnist, train=True).images)
    assert stats.mean[0] == pytest.approx(0.1307, abs=5e-5)
    assert stats.std[0] == pytest.approx(0.3081, abs=5e-5)
    assert stats.n_pixels_per_channel == 60000 * 784


def test_exact_stats_equal_a_float64_computation():
    images = torch.randint(0, 256, (50, 3, 7, 7), dtype=torch.uint8)
    stats = mnist.exact_stats(images, channel_dim=1)
    x = images.numpy().astype(np.float64) / 255
    assert stats.mean == pytest.approx(x.mean(axis=(0, 2, 3)).tolist(), abs=1e-12)
    assert stats.std == pytest.approx(x.std(axis=(0, 2, 3)).tolist(), abs=1e-12)


def test_corrupt_file_is_named_with_the_fix(small_mnist_copy):
    victim = mnist.mnist_paths(small_mnist_copy)["test_labels"]
    victim.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (1000).to_bytes(4, "big") + b"\x00" * 10))
    with pytest.raises(mnist.DataError, match=r"t10k-labels-idx1-ubyte.gz: md5 .* delete it"):
        mnist.verify_mnist(small_mnist_copy)
    with pytest.raises(mnist.DataError, match="t10k-labels-idx1-ubyte.gz: truncated or corrupt"):
        mnist.load_mnist(small_mnist_copy, train=False)


def test_missing_file_says_how_to_get_it(small_mnist_copy):
    mnist.mnist_paths(small_mnist_copy)["train_images"].unlink()
    with pytest.raises(mnist.DataError, match="download: true"):
        mnist.verify_mnist(small_mnist_copy)
    with pytest.raises(mnist.DataError, match="no such file"):
        mnist.load_mnist(small_mnist_copy, train=True)
