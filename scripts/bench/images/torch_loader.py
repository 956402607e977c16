"""The reference: PyTorch DataLoader + torchvision ImageFolder + Pillow with the default train
transforms (Resize 256, RandomResizedCrop 227 scale 0.16-1 ratio 0.75-1.33, flip, ToTensor,
ImageNet Normalize), batches of BATCH_SIZE, WORKERS worker processes. Prints images per second of
BATCHES batches, timed from creating the iterator (workers start) to the last batch, and the CPU
seconds of the main process and its workers over the same span (the loader reads a random subset
of exactly BATCHES * BATCH_SIZE images, so workers prefetch nothing beyond the timed batches).

Usage: python torch_loader.py FOLDER WORKERS BATCH_SIZE BATCHES
"""

import json
import os
import sys
import time

import torch
from torchvision import datasets, transforms as T


def main(folder, workers, batch_size, batches):
    transform = T.Compose([
        T.Resize(256),
        T.RandomResizedCrop(227, scale=(0.16, 1), ratio=(0.75, 1.33)),
        T.RandomHorizontalFlip(0.5),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    dataset = datasets.ImageFolder(folder, transform=transform)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    count = batches * batch_size
    indices = [order[i % len(dataset)].item() for i in range(count)]
    subset = torch.utils.data.Subset(dataset, indices)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False,
                                         num_workers=workers, drop_last=True)

    def cpu():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    cpu_start, start = cpu(), time.perf_counter()
    images = 0
    iterator = iter(loader)
    for x, _ in iterator:
        images += x.shape[0]
    seconds = time.perf_counter() - start
    # Joins the workers, so their CPU time is counted among the children's.
    if hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    del iterator
    cpu_seconds = cpu() - cpu_start
    print(json.dumps(dict(images=images, seconds=seconds, images_per_s=images / seconds,
                          cpu_seconds=cpu_seconds, workers=workers, batch_size=batch_size)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
