import copy

import pytest
import torch
from torch import nn

from normsweep.models.build import Classifier, LeNet
from normsweep.models.fold import check_fold, first_conv, fold_into_model, fold_normalization
from normsweep.models.normalize import normalize


@pytest.mark.parametrize("mean, std", [([0.1307], [0.3081]), ([-0.571429], [0.02]), ([2.28571], [0.2])])
def test_folded_lenet_on_raw_input_equals_lenet_on_normalized_input(mean, std):
    torch.manual_seed(0)
    net = LeNet().eval()
    x = torch.rand(16, 1, 28, 28)
    folded = fold_into_model(net, mean, std).eval()
    expected = net(normalize(x, mean, std))
    assert torch.allclose(folded(x), expected, atol=1e-4, rtol=1e-5)
    assert not torch.equal(net.conv1.weight, folded.conv1.weight)  # the original is untouched


def test_per_channel_folding_in_float64():
    conv = nn.Conv2d(3, 8, 5).double()
    x = torch.rand(4, 3, 12, 12, dtype=torch.float64)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    folded = fold_normalization(conv, mean, std)
    assert torch.allclose(folded(x), conv(normalize(x, mean, std)), atol=1e-12)


def test_a_zero_padded_first_conv_folds_exactly_by_padding_with_the_mean():
    """ResNet18's conv1 (7x7, stride 2, padding 3): the padded zeros of the normalized input are
    the mean of the raw one (the fold check failed or was skipped for resnet18)."""
    conv = nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False).double()
    x = torch.rand(4, 3, 20, 20, dtype=torch.float64)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    folded = fold_normalization(conv, mean, std)
    assert torch.allclose(folded(x), conv(normalize(x, mean, std)), atol=1e-12)
    # the usual fold that keeps zero padding is exact inside and off at the border
    zero_padded = copy.deepcopy(folded.conv)
    zero_padded.padding = (3, 3)
    expected, plain = conv(normalize(x, mean, std)), zero_padded(x)
    assert torch.allclose(plain[:, :, 2:-2, 2:-2], expected[:, :, 2:-2, 2:-2], atol=1e-12)
    assert (plain[:, :, 0] - expected[:, :, 0]).abs().max() > 0.1


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_padding_given_by_name_folds_exactly(padding):
    conv = nn.Conv2d(3, 4, 5, padding=padding).double()
    x = torch.rand(2, 3, 11, 11, dtype=torch.float64)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    assert torch.allclose(fold_normalization(conv, mean, std)(x), conv(normalize(x, mean, std)), atol=1e-12)


def test_reflect_padding_folds_as_it_is():
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect").double()
    x = torch.rand(2, 3, 9, 9, dtype=torch.float64)
    folded = fold_normalization(conv, [0.5, 0.2, -1.0], [0.3, 2.0, 0.1])
    assert isinstance(folded, nn.Conv2d) and folded.padding == (1, 1)
    assert torch.allclose(folded(x), conv(normalize(x, [0.5, 0.2, -1.0], [0.3, 2.0, 0.1])), atol=1e-12)


def test_the_first_conv_is_found_in_module_order_and_resnet18_folds():
    torch.manual_seed(0)
    net = Classifier("resnet18", 5).eval()
    name, conv = first_conv(net)
    assert name == "net.conv1" and conv.kernel_size == (7, 7)
    x = torch.rand(2, 3, 32, 32)
    diff, scale = check_fold(net, x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert diff < 1e-4 and scale > 0
    assert first_conv(LeNet())[0] == "conv1"
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        first_conv(nn.Linear(3, 2))
