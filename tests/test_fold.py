import pytest
import torch
from torch import nn

from normsweep.fold import fold_into_model, fold_normalization
from normsweep.models import LeNet
from normsweep.train import normalize


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


def test_padding_is_refused():
    with pytest.raises(ValueError, match="without padding"):
        fold_normalization(nn.Conv2d(3, 8, 7, padding=3), [0.5], [0.5])
