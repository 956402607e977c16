"""Training throughput of pytorch-metric-learning's MetricLossOnly trainer on the benchmark job
(see run.sh): MLP trunk 64-256-512-512, linear embedder to 128, ContrastiveLoss,
MPerClassSampler m=4, batch 128, RMSprop, 2 threads. Prints iterations per second of training only
(no evaluation), measured after one warm-up epoch. DEVICE=cuda trains on the GPU and THREADS sets
the CPU threads (defaults: cpu, 2)."""
import os
import sys
import time

import torch
from pytorch_metric_learning import losses, samplers, trainers

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
device = torch.device(os.environ.get("DEVICE", "cpu"))
# WIDTH scales the trunk (256-512-512 by default) and BATCH the batch size, as in worker_train.py.
WIDTH = int(os.environ.get("WIDTH", "512"))
BATCH = int(os.environ.get("BATCH", "128"))
torch.manual_seed(0)
ITERATIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
NUM_CLASSES, PER_CLASS, DIM = 100, 40, 64

# Synthetic class-structured features, as the worker's Synthetic dataset (same sizes).
centers = torch.randn(NUM_CLASSES, DIM) * 2
labels = torch.arange(NUM_CLASSES).repeat_interleave(PER_CLASS)
features = centers[labels] + 0.35 * torch.randn(len(labels), DIM)


class Features(torch.utils.data.Dataset):
    def __len__(self):
        return len(labels)

    def __getitem__(self, i):
        return features[i], labels[i]


trunk = torch.nn.Sequential(
    torch.nn.Linear(DIM, WIDTH // 2), torch.nn.ReLU(),
    torch.nn.Linear(WIDTH // 2, WIDTH), torch.nn.ReLU(),
    torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU(),
)
embedder = torch.nn.Linear(WIDTH, 128)
trunk.to(device)
embedder.to(device)
models = {"trunk": trunk, "embedder": embedder}
optimizers = {
    "trunk_optimizer": torch.optim.RMSprop(trunk.parameters(), lr=1e-4),
    "embedder_optimizer": torch.optim.RMSprop(embedder.parameters(), lr=1e-4),
}
sampler = samplers.MPerClassSampler(labels, m=4, batch_size=BATCH, length_before_new_iter=len(labels))
trainer = trainers.MetricLossOnly(
    models=models,
    optimizers=optimizers,
    batch_size=BATCH,
    loss_funcs={"metric_loss": losses.ContrastiveLoss()},
    dataset=Features(),
    sampler=sampler,
    iterations_per_epoch=ITERATIONS,
    dataloader_num_workers=0,
    data_device=device,
)
trainer.train(start_epoch=1, num_epochs=1)  # warm-up
start = time.perf_counter()
trainer.train(start_epoch=2, num_epochs=2)
if device.type == "cuda":
    torch.cuda.synchronize()
elapsed = time.perf_counter() - start
print(f"pml iterations_per_second {ITERATIONS / elapsed:.2f}")
