"""KNN pairing's neighbour lists (issue 21, item 8): computed in blocks, equal to a brute-force search,
with progress reported through the trainer's callbacks and drawn, with an estimate, by the CLI."""
import torch

from conftest import run_inprocess
from mixup_cli.mixing.pairing import nearest_neighbours


def brute_force(features, labels, k, same_class):
    dist = torch.cdist(features.double(), features.double())
    dist.fill_diagonal_(float("inf"))
    if same_class:
        dist[labels[:, None] != labels[None, :]] = float("inf")
    return dist.topk(k, dim=1, largest=False).indices


def test_blocked_neighbours_equal_brute_force_and_report_each_block():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(203, 3, 4, 4, generator=generator)
    labels = torch.randint(3, (203,), generator=generator)
    for same_class in (False, True):
        calls = []
        blocked = nearest_neighbours(features, labels, 7, same_class, chunk=50,
                                     progress=lambda done, total: calls.append((done, total)))
        expected = brute_force(features.reshape(203, -1), labels, 7, same_class)
        assert torch.equal(blocked.sort(1).values, expected.sort(1).values)
        assert calls == [(0, 203), (50, 203), (100, 203), (150, 203), (200, 203), (203, 203)]


def test_train_with_knn_pairs_shows_the_neighbour_search_and_an_estimate(tmp_path):
    result = run_inprocess("train", "--epochs", "1", "--mix-pairs", "knn", "--out", tmp_path / "R")
    assert result.exit_code == 0, result.stderr
    assert "knn neighbours: 1,437 examples, about" in result.stderr, result.stderr
