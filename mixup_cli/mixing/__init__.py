"""Mixing: the mixup operation (Zhang et al., 2018, §2) and its variants behind one interface.

core.py     mixup(), MixedBatch, mixed_cross_entropy: the operation itself
pairing.py  who mixes with whom (random pairs or nearest neighbours; all classes or same class)
combine.py  how two inputs become one (interpolation or CutMix boxes)
mixer.py    build_mixer(config): the one batch transform every training path calls
checks.py   which combinations of options make sense (TrainConfig.check calls it)
"""
from .core import MixedBatch, mixed_cross_entropy, mixup, sample_lambda
from .mixer import DEFAULT_ALPHA, PLACEMENTS, TARGETS, Mixer, build_mixer
from .combine import COMBINES
from .pairing import PAIRINGS

__all__ = ["COMBINES", "DEFAULT_ALPHA", "MixedBatch", "Mixer", "PAIRINGS", "PLACEMENTS", "TARGETS", "build_mixer",
           "mixed_cross_entropy", "mixup", "sample_lambda"]
