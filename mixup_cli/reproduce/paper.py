"""The paper's numbers, as data (Zhang et al., ICLR 2018), for reports that print ours beside them.

Source: the tables of the paper as kept in the project's seed document 000 (`shared/seeds/000_*.txt`,
which holds the paper's tables verbatim). Errors are in percent. Table 2's numbers live with the
corrupted-labels experiment (`corrupt_labels.PAPER_TABLE2`), which prints them beside its own.
"""
from __future__ import annotations

SOURCE = "Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018"

# Figure 3a: CIFAR test error (%), ERM vs mixup (alpha = 1), 200 epochs.
CIFAR = {
    ("cifar10", "preact-resnet18"): {"erm": 5.6, "mixup": 4.2},
    ("cifar10", "wrn28-10"): {"erm": 3.8, "mixup": 2.7},
    ("cifar10", "densenet-bc-190"): {"erm": 3.7, "mixup": 2.7},
    ("cifar100", "preact-resnet18"): {"erm": 25.6, "mixup": 21.1},
    ("cifar100", "wrn28-10"): {"erm": 19.4, "mixup": 17.5},
    ("cifar100", "densenet-bc-190"): {"erm": 19.0, "mixup": 16.8},
}

# Table 3: ImageNet ResNet-101, epsilon 4/255, top-1 / top-5 error (%) under attack.
ATTACKS = {
    "white box": {"erm": {"fgsm": (90.7, 63.1), "ifgsm": (99.9, 93.4)},
                  "mixup": {"fgsm": (75.2, 49.1), "ifgsm": (99.6, 95.8)}},
    "black box": {"erm": {"fgsm": (57.0, 24.8), "ifgsm": (57.3, 18.1)},
                  "mixup": {"fgsm": (46.0, 17.4), "ifgsm": (40.9, 11.8)}},
}

# Table 5's ERM and mixup (AC + RP) rows: median test error (%) of the last 10 of 200 epochs, PreAct
# ResNet-18 on CIFAR-10, by weight decay. Source: the authors' README (github.com/hongyi-zhang/mixup,
# README.md and cifar/README.md), which reports this setting and statistic; the project's copy of the
# paper lost Table 5's numbers, and no reachable copy keeps the other rows.
TABLE5_SOURCE = "the authors' README (hongyi-zhang/mixup), for the ERM and mixup (AC + RP) rows only"
TABLE5 = {"erm-wd1e-4": 5.53, "erm-wd5e-4": 5.18, "mixup-ac-rp-wd1e-4": 4.24, "mixup-ac-rp-wd5e-4": 4.68}
