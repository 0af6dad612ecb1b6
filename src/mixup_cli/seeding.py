"""Counter-based randomness: every random draw of a run is a pure function of (seed, epoch, step).

Data order, augmentation, mixup's lambda and permutation and dropout are all reseeded from
(seed, epoch, step) before each step, so a run resumed at any step makes exactly the draws the
uninterrupted run made, with no generator state to save.
"""
from __future__ import annotations

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixing all parts (numpy's SeedSequence hashing, so nearby inputs decorrelate)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


# Streams, so that the same (seed, epoch, step) gives independent draws for each purpose.
ORDER, AUGMENT, MIX, MODEL = 0, 1, 2, 3
