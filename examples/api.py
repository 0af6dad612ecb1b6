"""The Python API in one script: train 2 epochs of mixup on the embedded digits, load the best model,
evaluate it, and take one manual mixup step.   ./run python examples/api.py   (about 10 s on a CPU)"""
import tempfile
from pathlib import Path

import numpy as np
import torch

import mixup_cli

with tempfile.TemporaryDirectory() as tmp:
    # Any TrainConfig key is a keyword (the CLI's flags, with _ for -); `out` is the run directory.
    config = mixup_cli.TrainConfig(epochs=2, alpha=1.0, out=str(Path(tmp) / "run"), device="cpu")
    summary = mixup_cli.train(config)  # the summary `mixup train --json` prints; files land in config.out
    print(f"trained {summary['epochs']} epochs: test error {summary['test_error']:.2f}% "
          f"(best {summary['best_test_error']:.2f}% at epoch {summary['best_epoch']})")

    model = mixup_cli.load_model(summary["best_checkpoint"])  # eval mode, takes raw-scale inputs
    test = mixup_cli.load_dataset("digits", "test")  # torch Dataset of (raw-scale image, label)
    inputs, labels = next(iter(torch.utils.data.DataLoader(test, batch_size=len(test))))
    with torch.no_grad():
        error = 100 * (model(inputs).argmax(dim=1) != labels).float().mean().item()
    print(f"best.pt on the {len(test)} test digits: {error:.2f}% error")

    # One training step of mixup by hand (the paper's Figure 1a) on a fresh network.
    net = mixup_cli.build_model("small-cnn", num_classes=10, input_shape=(1, 8, 8))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    batch = mixup_cli.mixup(inputs[:64], labels[:64], alpha=1.0, rng=np.random.default_rng(0))
    loss = batch.loss(net(batch.inputs))  # lam * CE(y) + (1 - lam) * CE(y[perm])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"one mixup step: lambda {batch.lam:.3f}, loss {loss.item():.4f}")
