"""Reference values for the image-trunk tests (worker/src/models/tests.rs).

    python trunks_ref.py OUT_DIR

Writes into OUT_DIR, for each of torchvision's resnet50 and inception_v3 and pretrainedmodels'
bninception: random weights (BatchNorm statistics included) saved by torch.save, a random input
batch and the network's output in eval mode with its classification layer replaced by identity.
bninception's weights are saved in PyTorch's legacy (pre-1.6) format, like the published
bn_inception-52deb4733.pth; the others in the zip format. Also: inception_v3's pooled Mixed_5d /
Mixed_6e / fc outputs (layers_to_extract), torchvision's registry of weight file names, and
TorchScript modules for the TorchScript-trunk tests.
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision

torch.manual_seed(0)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def randomize(model):
    """Random weights and non-trivial BatchNorm statistics, so eval mode is really tested."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def save(name, model, size, legacy=False):
    model = randomize(model).eval()
    torch.save(
        model.state_dict(),
        os.path.join(out, name + ".pth"),
        _use_new_zipfile_serialization=not legacy,
    )
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    np.save(os.path.join(out, name + "_input.npy"), x.numpy())
    return model, x


# ResNet-50: torchvision, fc -> identity.
model, x = save("resnet50", torchvision.models.resnet50(weights=None), 96)
model.fc = torch.nn.Identity()
with torch.no_grad():
    np.save(os.path.join(out, "resnet50_output.npy"), model(x).numpy())

# Inception-v3 (with its auxiliary classifier in the state dict, as the published weights have).
model, x = save(
    "inception_v3",
    torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False),
    107,
)
model.fc = torch.nn.Identity()
taps = {}
hooks = [
    getattr(model, n).register_forward_hook(
        lambda m, i, o, n=n: taps.__setitem__(n, torch.nn.functional.adaptive_avg_pool2d(o, 1).flatten(1))
    )
    for n in ("Mixed_5d", "Mixed_6e")
]
with torch.no_grad():
    y = model(x)
np.save(os.path.join(out, "inception_v3_output.npy"), y.numpy())
np.save(
    os.path.join(out, "inception_v3_taps.npy"),
    torch.cat([taps["Mixed_5d"], taps["Mixed_6e"], y], 1).numpy(),
)
for h in hooks:
    h.remove()

# BN-Inception: pretrainedmodels, last_linear -> identity; legacy file format.
import pretrainedmodels  # noqa: E402

model, x = save("bninception", pretrainedmodels.bninception(pretrained=None), 224, legacy=True)
model.last_linear = torch.nn.Identity()
with torch.no_grad():
    np.save(os.path.join(out, "bninception_output.npy"), model(x).numpy())

# Every weight file name torchvision's registry knows, per architecture.
names = {}
for arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "inception_v3"):
    names[arch] = sorted(
        os.path.basename(w.url) for w in torchvision.models.get_model_weights(arch)
    )
names["bninception"] = [
    os.path.basename(pretrainedmodels.pretrained_settings["bninception"]["imagenet"]["url"])
]
with open(os.path.join(out, "hub_names.json"), "w") as f:
    json.dump(names, f)


# TorchScript trunks: a small convnet, and one whose output is not [batch, features].
class Small(torch.nn.Module):
    def __init__(self, flatten=True):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 16)
        self.flatten = flatten

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        if not self.flatten:
            return y
        return self.fc(y.mean(dim=(2, 3)))


torch.jit.script(Small()).save(os.path.join(out, "small.pt"))
torch.jit.script(Small(flatten=False)).save(os.path.join(out, "wrong_shape.pt"))
print("ok")
