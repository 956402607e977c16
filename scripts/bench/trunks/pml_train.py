"""PML's side of the trunk benchmark (run.sh): pytorch-metric-learning's MetricLossOnly trainer
with torchvision's resnet50 or pretrainedmodels' bninception (classification layer replaced by
identity, as the original benchmarker does), a 128-d Linear embedder, ContrastiveLoss, the
original's RMSprop optimizers and freeze_trunk_batchnorm, on the batches in IMAGES / LABELS (.npy,
the ones the worker trains on). Prints one JSON line like `metricbench-worker bench-trunk`.

    python pml_train.py TRUNK IMAGES LABELS STEPS WARMUP [DEVICE] [AMP_DTYPE]
"""
import json
import sys
import time

import numpy as np
import torch

trunk_name, images, labels = sys.argv[1], sys.argv[2], sys.argv[3]
steps, warmup = int(sys.argv[4]), int(sys.argv[5])
device = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
amp = sys.argv[7] if len(sys.argv) > 7 else ""
from pytorch_metric_learning import losses, trainers  # noqa: E402

x = torch.from_numpy(np.load(images))
y = torch.from_numpy(np.load(labels)).long()
batch = 32
if trunk_name == "bninception":
    import pretrainedmodels

    trunk = pretrainedmodels.bninception(pretrained=None)
    trunk.last_linear = torch.nn.Identity()
    width = 1024
else:
    import torchvision

    trunk = getattr(torchvision.models, trunk_name)(weights=None)
    trunk.fc = torch.nn.Identity()
    width = trunk_name in ("resnet18", "resnet34") and 512 or 2048
trunk = trunk.to(device)
embedder = torch.nn.Sequential(torch.nn.Linear(width, 128)).to(device)
opts = {
    "trunk_optimizer": torch.optim.RMSprop(trunk.parameters(), lr=1e-6, weight_decay=5e-5, momentum=0.9),
    "embedder_optimizer": torch.optim.RMSprop(embedder.parameters(), lr=1e-6, weight_decay=1e-4, momentum=0.9),
}


class Batches(torch.utils.data.Dataset):
    def __len__(self):
        return len(y)

    def __getitem__(self, i):
        return x[i], y[i]


class Sequential(torch.utils.data.Sampler):
    """The batches in file order, like the worker's."""

    def __len__(self):
        return len(y)

    def __iter__(self):
        return iter(range(len(y)))


stamps = []
trainer = trainers.MetricLossOnly(
    models={"trunk": trunk, "embedder": embedder},
    optimizers=opts,
    batch_size=batch,
    loss_funcs={"metric_loss": losses.ContrastiveLoss()},
    dataset=Batches(),
    sampler=Sequential(),
    iterations_per_epoch=steps + warmup,
    dataloader_num_workers=0,
    freeze_trunk_batchnorm=True,
    end_of_iteration_hook=lambda t: (torch.cuda.synchronize() if device.type == "cuda" else None, stamps.append(time.perf_counter())),
)
if amp:
    # PML has no autocast option; wrap its loss computation the way a user would.
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    inner = trainer.calculate_loss

    def calculate_loss(curr_batch):
        with torch.autocast("cuda", dtype=dtype):
            return inner(curr_batch)

    trainer.calculate_loss = calculate_loss
trainer.train(num_epochs=1)
seconds = stamps[-1] - stamps[warmup - 1] if warmup > 0 else stamps[-1] - stamps[0]
measured = steps if warmup > 0 else steps - 1
print(json.dumps({
    "side": "pml", "trunk": trunk_name, "device": str(device), "mixed_precision": amp or None,
    "batch": batch, "size": x.shape[-1], "steps": measured, "seconds": seconds,
    "steps_per_s": measured / seconds, "images_per_s": measured * batch / seconds,
    "threads": torch.get_num_threads(),
    "last_loss": float(trainer.losses["total_loss"]),
}))
