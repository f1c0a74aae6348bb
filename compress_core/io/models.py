"""Model registry: small classic nets with readable layer names, and two torchvision nets.

Every builder takes ``(in_shape, num_classes)`` so one architecture serves grey
or colour inputs of any size from its ``min_size`` up, and any class count.

Example:
    >>> model = build_model("lenet5", (1, 28, 28), 10)
    >>> prunable_layers(model)
    ['conv1', 'conv2', 'fc1', 'fc2', 'fc3']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.record import SPEC_ATTR, ModelSpec
from ..core.registry import Registry

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture."""

    builder: Callable[[Shape, int], nn.Module]  # (in_shape (C, H, W), num_classes) -> model
    min_size: int  # smallest input height/width; smaller data sets are upsampled to it
    description: str  # one line for the UI


MODELS: Registry[ModelEntry] = Registry("model")


def build_model(name: str, in_shape: Shape, num_classes: int) -> nn.Module:
    """A freshly initialised ``name`` for inputs of ``in_shape``, tagged with its ModelSpec.

    Example:
        >>> model = build_model("mlp", (1, 8, 8), 10)
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    entry = MODELS[name]
    in_shape = tuple(int(d) for d in in_shape)
    if len(in_shape) != 3 or min(in_shape[1:]) < entry.min_size:
        raise ValueError(
            f"{name} needs inputs of shape (channels, height, width) at least "
            f"{entry.min_size}x{entry.min_size}; got {in_shape}"
        )
    model = entry.builder(in_shape, int(num_classes))
    setattr(model, SPEC_ATTR, ModelSpec(name, in_shape, int(num_classes)))
    return model


def input_size_for(name: str, native_size: int) -> int:
    """The height/width a data set of ``native_size`` must be served at for model ``name``."""
    return max(int(native_size), MODELS[name].min_size)


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d/Linear modules in forward order (first = input, last = classifier)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _flat_size(features: Callable[[torch.Tensor], torch.Tensor], in_shape: Shape) -> int:
    """How many features ``features`` hands the first Linear layer, by a dummy forward."""
    with torch.no_grad():
        return features(torch.zeros(1, *in_shape)).numel()


class MLP(nn.Module):
    """LeNet-300-100: flatten -> 300 -> 100 -> classes, ReLU."""

    def __init__(self, in_shape: Shape, num_classes: int):
        super().__init__()
        c, h, w = in_shape
        self.fc1 = nn.Linear(c * h * w, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max pooling: conv 6 -> pool -> conv 16 -> pool -> 120 -> 84 -> out."""

    def __init__(self, in_shape: Shape, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_shape[0], 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(_flat_size(self.features, in_shape), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(self.features(x)))
        return self.fc3(F.relu(self.fc2(x)))


class LeNet5Caffe(nn.Module):
    """Caffe's LeNet (Deep Compression's): conv 20 -> pool -> conv 50 -> pool -> 500 -> out."""

    def __init__(self, in_shape: Shape, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_shape[0], 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(_flat_size(self.features, in_shape), 500)
        self.fc2 = nn.Linear(500, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # Caffe's net has no nonlinearity between the convolutions; only fc1 has a ReLU.
        x = F.max_pool2d(self.conv1(x), 2)
        return F.max_pool2d(self.conv2(x), 2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.features(x))))


class SmallCNN(nn.Module):
    """conv 32 -> pool -> conv 64 -> pool -> 100 -> out, 3x3 convolutions, ReLU."""

    def __init__(self, in_shape: Shape, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_shape[0], 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(_flat_size(self.features, in_shape), 100)
        self.fc2 = nn.Linear(100, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.features(x))))


def _resnet18(in_shape: Shape, num_classes: int) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    # Small inputs: a 3x3 stride-1 stem and no max pool, as for CIFAR (He et al., section 4.2).
    model.conv1 = nn.Conv2d(in_shape[0], 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def _mobilenet_v3_small(in_shape: Shape, num_classes: int) -> nn.Module:
    from torchvision.models import mobilenet_v3_small

    model = mobilenet_v3_small(weights=None, num_classes=num_classes)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(
        in_shape[0], stem.out_channels, 3, stride=1, padding=1, bias=False
    )
    nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    return model


MODELS.add("mlp", ModelEntry(MLP, 1, "LeNet-300-100: a 3-layer perceptron, 266K weights on 28x28"))
MODELS.add("lenet5", ModelEntry(LeNet5, 28, "LeNet-5: 2 conv + 3 fc layers, 61K weights"))
MODELS.add(
    "lenet5-caffe",
    ModelEntry(LeNet5Caffe, 28, "Caffe's LeNet from Deep Compression: 431K weights on 28x28"),
)
MODELS.add("cnn", ModelEntry(SmallCNN, 28, "small CNN: conv 32, conv 64, fc 100; 333K weights"))
MODELS.add(
    "resnet18", ModelEntry(_resnet18, 28, "torchvision ResNet-18, 3x3 stem, no max pool; 11M")
)
MODELS.add(
    "mobilenet_v3_small",
    ModelEntry(_mobilenet_v3_small, 28, "torchvision MobileNetV3-Small, stride-1 stem; 1.5M"),
)
