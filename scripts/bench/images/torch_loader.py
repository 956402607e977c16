"""The reference: PyTorch DataLoader + torchvision ImageFolder + Pillow with the default train
transforms (Resize 256, RandomResizedCrop 227 scale 0.16-1 ratio 0.75-1.33, flip, ToTensor,
ImageNet Normalize), batches of BATCH_SIZE, WORKERS worker processes. Prints images per second of
BATCHES batches, timed from creating the iterator (workers start) to the last batch.

Usage: python torch_loader.py FOLDER WORKERS BATCH_SIZE BATCHES
"""

import json
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
    sampler = torch.utils.data.RandomSampler(dataset, replacement=False,
                                             generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                         num_workers=workers, drop_last=True)
    start = time.perf_counter()
    images = 0
    for k, (x, _) in enumerate(loader):
        images += x.shape[0]
        if k + 1 == batches:
            break
    seconds = time.perf_counter() - start
    print(json.dumps(dict(images=images, seconds=seconds, images_per_s=images / seconds,
                          workers=workers, batch_size=batch_size)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
