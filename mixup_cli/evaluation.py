"""Top-1/top-5 error and loss of a model over a split, accumulated on the device."""
from __future__ import annotations

from typing import Iterable, Optional

import torch
import torch.nn.functional as F


def topk_errors(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[int, torch.Tensor]:
    """Number of examples whose label is not among the k highest logits, per k (a device tensor)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top == labels[:, None]
    return {k: (~hits[:, :k].any(dim=1)).sum() for k in ks if k <= logits.shape[1]}


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable, num_classes: int,
             autocast_dtype: Optional[torch.dtype] = None, all_reduce=None) -> dict:
    """{'loss', 'top1_error', 'top5_error', 'n'}; errors in percent, top5 None under 5 classes."""
    was_training = model.training
    model.eval()
    totals = None
    n = 0
    for inputs, labels in batches:
        with torch.autocast(inputs.device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            logits = model(inputs)
        logits = logits.float()
        errors = topk_errors(logits, labels)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        step = torch.stack([loss, errors[1].float(), errors.get(5, errors[1]).float()])
        totals = step if totals is None else totals + step
        n += len(labels)
    model.train(was_training)
    if all_reduce is not None:  # data-parallel: each rank saw its shard; sum the counts over ranks
        # A rank whose shard is empty still takes part, with zeros on the model's device (NCCL
        # reduces device tensors only).
        device = totals.device if totals is not None else next(model.parameters()).device
        local = totals if totals is not None else torch.zeros(3, device=device)
        summed = all_reduce(torch.cat([local, torch.tensor([float(n)], device=device)]))
        totals, n = summed[:3], int(summed[3].item())
    if totals is None:
        raise ValueError("evaluation got no examples")
    loss, top1, top5 = totals.tolist()  # the one host sync of the evaluation
    return {
        "loss": loss / n,
        "top1_error": 100.0 * top1 / n,
        "top5_error": 100.0 * top5 / n if num_classes >= 5 else None,
        "n": n,
    }
