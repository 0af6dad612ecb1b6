"""Episodic evaluation on frozen features: N-way K-shot episodes, a classifier fitted per episode,
mean accuracy with its 95 % confidence interval (the protocol of Chen et al. 2019, which S2M2's
official test.py follows: 1.96 * std / sqrt(episodes)).

An episode draws N classes, then K support and Q query images of each, without repeats. Episode
i is drawn from (episode seed, i, N, K, Q) and the images' class index alone, so every checkpoint of
the same novel images (dataset, split, per-class subset) evaluated with the same seed sees the same
episodes. The classifiers (CLASSIFIERS) see only the support features:

    logreg   multinomial logistic regression on L2-normalized features, L2 penalty 1/2 |W|^2
             (scikit-learn's default C = 1), fitted by L-BFGS: all episodes at once, since their
             losses are independent
    cosine   the cosine classifier with each class's weight the mean of its normalized support
             features (weight imprinting, Qi et al. 2018): no fitting at all
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import Registry
from ..seeding import derive_seed

CLASSIFIERS: Registry[Callable] = Registry("few-shot classifier")
EPISODES_STREAM = 7  # derive_seed's stream for episodes, apart from training's (seeding.py: 0..3)


@dataclasses.dataclass(frozen=True)
class Episode:
    """Indices into the evaluated images: support [N, K] and query [N, Q], row n of class n."""

    support: np.ndarray
    query: np.ndarray


def check_episode_shape(ways: int, shots: int, queries: int, class_sizes: list[int], role: str = "novel",
                        flags: tuple[str, str] = ("--ways", "--shots")) -> None:
    """One-line refusals of episodes the classes cannot fill; `flags` name the options of ways and
    shots (training's validation episodes take --val-ways and --val-shots)."""
    ways_flag, shots_flag = flags
    if ways < 2:
        raise ConfigError(f"{ways_flag} {ways}: an episode needs at least 2 classes")
    if ways > len(class_sizes):
        raise ConfigError(f"{ways_flag} {ways} is more than the {len(class_sizes)} {role} classes of the split; pass "
                          f"{ways_flag} {len(class_sizes)} or fewer, or give the split more {role} classes")
    smallest = min(class_sizes)
    if shots + queries > smallest:
        raise ConfigError(f"{shots} shots + {queries} queries = {shots + queries} images per class, but a {role} "
                          f"class holds only {smallest}; lower {shots_flag} or --queries")


def sample_episodes(class_index: list[np.ndarray], ways: int, shots: int, queries: int, count: int,
                    seed: int) -> list[Episode]:
    """`count` episodes over the classes whose image indices are `class_index`."""
    check_episode_shape(ways, shots, queries, [len(c) for c in class_index])
    episodes = []
    for i in range(count):
        rng = np.random.default_rng(derive_seed(seed, i, ways, shots, queries, EPISODES_STREAM))
        chosen = rng.choice(len(class_index), size=ways, replace=False)
        picks = [rng.choice(class_index[c], size=shots + queries, replace=False) for c in chosen]
        episodes.append(Episode(np.stack([p[:shots] for p in picks]), np.stack([p[shots:] for p in picks])))
    return episodes


def indices_by_class(labels: torch.Tensor) -> list[np.ndarray]:
    values = labels.cpu().numpy()
    return [np.flatnonzero(values == c) for c in range(int(values.max()) + 1)]


@torch.no_grad()
def extract_features(net, split, device: torch.device, batch_size: int) -> torch.Tensor:
    """The backbone's features of every image of `split` (a TensorSplit), in eval mode, on `device`."""
    was_training = net.training
    net.eval()
    chunks = []
    for start in range(0, len(split), batch_size):
        inputs = split.to_raw(split.inputs[start:start + batch_size].to(device))
        chunks.append(net.features(inputs).float())
    net.train(was_training)
    return torch.cat(chunks)


@CLASSIFIERS.register("logreg")
def logistic_regression(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, ways: int,
                        steps: int = 100) -> torch.Tensor:
    """Query logits [E, NQ, N] of one logistic regression per episode, fitted on support [E, NK, D]."""
    support, query = F.normalize(support, dim=-1), F.normalize(query, dim=-1)
    episodes, _, dim = support.shape
    weight = torch.zeros(episodes, dim, ways, device=support.device, requires_grad=True)
    bias = torch.zeros(episodes, 1, ways, device=support.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        logits = support @ weight + bias
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum") \
            + 0.5 * (weight ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return (query @ weight + bias).detach()


@CLASSIFIERS.register("cosine")
def imprinted_cosine(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
    """Query cosine similarities [E, NQ, N] to each class's mean normalized support feature."""
    support = F.normalize(support, dim=-1)
    one_hot = F.one_hot(labels, ways).to(support.dtype)  # [E, NK, N]
    prototypes = F.normalize(one_hot.transpose(1, 2) @ support, dim=-1)  # [E, N, D]
    return F.normalize(query, dim=-1) @ prototypes.transpose(1, 2)


def episode_accuracies(features: torch.Tensor, episodes: list[Episode], classifier: str,
                       chunk: int = 200) -> np.ndarray:
    """Query accuracy (%) of every episode, the classifier fitted on its support features alone."""
    fit = CLASSIFIERS.get(classifier)
    accuracies = []
    for start in range(0, len(episodes), chunk):
        batch = episodes[start:start + chunk]
        ways, shots = batch[0].support.shape
        queries = batch[0].query.shape[1]
        support = features[torch.as_tensor(np.stack([e.support.reshape(-1) for e in batch]), device=features.device)]
        query = features[torch.as_tensor(np.stack([e.query.reshape(-1) for e in batch]), device=features.device)]
        labels = torch.arange(ways, device=features.device)
        support_labels = labels.repeat_interleave(shots).expand(len(batch), -1)
        query_labels = labels.repeat_interleave(queries).expand(len(batch), -1)
        predicted = fit(support, support_labels, query, ways).argmax(-1)
        accuracies.append(((predicted == query_labels).float().mean(1) * 100).cpu().numpy())
    return np.concatenate(accuracies)


def confidence_interval(accuracies) -> dict:
    """Mean accuracy and the half-width of its 95 % confidence interval, 1.96 * std / sqrt(n), with
    the standard deviation over episodes taken as the official test.py takes it (numpy's, ddof 0)."""
    values = np.asarray(accuracies, dtype=np.float64)
    half = 1.96 * float(values.std()) / math.sqrt(len(values))
    return {"mean": float(values.mean()), "ci95": half, "episodes": int(len(values))}


def episodes_digest(episodes: list[Episode]) -> str:
    """A short fingerprint of the episodes' images, so reports show that they were the same."""
    import hashlib

    digest = hashlib.sha256()
    for e in episodes:
        digest.update(e.support.astype(np.int64).tobytes() + e.query.astype(np.int64).tobytes())
    return digest.hexdigest()[:12]


def evaluate_episodes(features: torch.Tensor, labels: torch.Tensor, ways: int, shots: int, queries: int,
                      count: int, seed: int, classifier: str) -> dict:
    """mean ± 95 % CI over `count` seeded episodes of the images whose features and labels are given."""
    episodes = sample_episodes(indices_by_class(labels), ways, shots, queries, count, seed)
    result = confidence_interval(episode_accuracies(features, episodes, classifier))
    return {"ways": ways, "shots": shots, "queries": queries, "classifier": classifier, **result,
            "episodes_digest": episodes_digest(episodes)}


def format_accuracy(result: Optional[dict]) -> str:
    return "-" if not result else f"{result['mean']:.2f} ± {result['ci95']:.2f}"
