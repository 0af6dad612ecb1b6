"""Few-shot learning with manifold mixup on a self-supervised feature manifold: S2M2 ("Charting the
Right Manifold: Manifold Mixup for Few-shot Learning", Mangla et al., WACV 2020) and its baselines.

    splits.py      class splits: cifar-fs (Bertinetto et al.'s 64/16/20) or declared base/val/novel
    network.py     backbone + cosine classifier + rotation head; the rotation loss
    training.py    the stages of Algorithm 1 and the baselines, in a run directory that resumes exactly
    episodes.py    seeded N-way K-shot episodes, classifiers on frozen features, mean ± 95 % CI
    evaluation.py  a checkpoint's accuracy on its split's novel classes
"""
from .episodes import CLASSIFIERS, confidence_interval, evaluate_episodes, sample_episodes
from .evaluation import evaluate_fewshot
from .network import CosineClassifier, FewShotNet, rotate_batch
from .splits import ClassSplit, cifar_fs, parse_split
from .training import FEWSHOT_RUN, FewShotCallbacks, train_fewshot

__all__ = ["CLASSIFIERS", "ClassSplit", "CosineClassifier", "FEWSHOT_RUN", "FewShotCallbacks", "FewShotNet",
           "cifar_fs", "confidence_interval", "evaluate_episodes", "evaluate_fewshot", "parse_split", "rotate_batch",
           "sample_episodes", "train_fewshot"]
