import torch

from normsweep.models.build import LeNet, model_spec


def test_lenet_matches_the_pytorch_mnist_example():
    net = LeNet()
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters()}
    assert shapes == {
        "conv1.weight": (32, 1, 3, 3),
        "conv1.bias": (32,),
        "conv2.weight": (64, 32, 3, 3),
        "conv2.bias": (64,),
        "fc1.weight": (128, 9216),
        "fc1.bias": (128,),
        "fc2.weight": (10, 128),
        "fc2.bias": (10,),
    }
    assert sum(p.numel() for p in net.parameters()) == 1_199_882
    assert net.dropout1.p == 0.25 and net.dropout2.p == 0.5


def test_lenet_outputs_log_probabilities():
    out = LeNet().eval()(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(5), atol=1e-5)


def test_lenet_trains_with_adadelta_lr_1():
    spec = model_spec("lenet")
    optimizer = spec.make_optimizer(LeNet().parameters(), spec.default_lr)
    assert isinstance(optimizer, torch.optim.Adadelta)
    assert optimizer.param_groups[0]["lr"] == 1.0


def test_scale_first_layer_multiplies_initial_weights_and_biases():
    from normsweep.models.build import scale_first_layer

    torch.manual_seed(0)
    plain = LeNet()
    torch.manual_seed(0)
    scaled = scale_first_layer(LeNet(), weight=0.5, bias=4.0)
    assert torch.allclose(scaled.conv1.weight, 0.5 * plain.conv1.weight)
    assert torch.allclose(scaled.conv1.bias, 4.0 * plain.conv1.bias)
    assert torch.equal(scaled.conv2.weight, plain.conv2.weight)  # only the first layer
