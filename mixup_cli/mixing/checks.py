"""Cross-field checks of the mixing options: combinations that cannot work, or do nothing, fail
before training starts with one line saying what to change."""
from __future__ import annotations

from ..errors import ConfigError

# Options that only act when batches are mixed, with their do-nothing values.
MIXING_ONLY = {"mix_where": "input", "mix_layer": None, "mix_pairs": "rp", "mix_classes": "ac",
               "mix_targets": "mixed", "mix_op": "interpolate", "lam_per_example": False, "mix_prob": 1.0,
               "switch_prob": None, "cutmix_alpha": None, "cutmix_minmax": [], "correct_lam": True,
               "mixup_off_epoch": None}


def model_mixing_points(config, spec) -> list[int] | None:
    """The mixing points the configured model declares (built on the meta device: no memory, fast)."""
    import torch

    from ..models import build_model

    options = dict(config.model_options)
    if config.dropout is not None:
        options["dropout"] = config.dropout
    with torch.device("meta"):
        net = build_model(config.model, spec.num_classes, spec.input_shape, **options)
    points = getattr(net, "mixing_points", None)
    return list(points) if points is not None else None


def check_cutmix_options(config) -> None:
    """The CutMix-only options need CutMix; a switch needs interpolate to switch from."""
    cutmix = config.mix_op == "cutmix" or config.switch_prob is not None
    if config.switch_prob is not None and config.mix_op != "interpolate":
        raise ConfigError("config key 'switch_prob' switches between interpolate and cutmix per batch, so it needs "
                          "config key 'mix_op' interpolate; drop one of them")
    if config.switch_prob is not None and config.mix_where != "input":
        raise ConfigError("config key 'switch_prob' mixes by cutmix, which works on the input only; set config key "
                          "'mix_where' to input")
    for key in ("cutmix_alpha", "cutmix_minmax", "correct_lam"):
        if not cutmix and getattr(config, key) != MIXING_ONLY[key]:
            raise ConfigError(f"config key '{key}' only acts on CutMix; set config key 'mix_op' cutmix or config "
                              f"key 'switch_prob'")
    minmax = config.cutmix_minmax
    if minmax and (len(minmax) != 2 or minmax[0] >= minmax[1]):
        raise ConfigError(f"config key 'cutmix_minmax' takes two ratios min,max with min < max, e.g. 0.2,0.8; "
                          f"got {','.join(map(str, minmax))}")
    off = config.mixup_off_epoch
    if off is not None and off <= config.erm_warmup_epochs:
        raise ConfigError(f"config key 'mixup_off_epoch' ({off}) leaves no mixup epoch after config key "
                          f"'erm_warmup_epochs' ({config.erm_warmup_epochs}); raise it")


def check_mixing(config, spec) -> None:
    """Refuse combinations that make no sense (alpha is filled in already: config.fill_defaults)."""
    if config.alpha == 0:
        given = [k for k, off in MIXING_ONLY.items() if getattr(config, k) != off]
        if given:
            raise ConfigError(f"config key '{given[0]}' only acts on mixed batches, and alpha 0 is plain ERM; "
                              f"drop it or set alpha > 0")
    where = config.mix_where
    if where == "latent" and config.mix_layer is None:
        raise ConfigError("config key 'mix_where' latent needs config key 'mix_layer', the mixing point to mix at "
                          "(e.g. 1)")
    if where != "latent" and config.mix_layer is not None:
        raise ConfigError(f"config key 'mix_layer' only applies when config key 'mix_where' is latent, not {where}; "
                          f"set it to latent or drop config key 'mix_layer'")
    if where in ("latent", "manifold"):
        points = model_mixing_points(config, spec)
        if points is None:
            raise ConfigError(f"model '{config.model}' declares no mixing points, so config key 'mix_where' {where} "
                              f"cannot mix inside it; use input")
        if where == "latent" and config.mix_layer not in points:
            raise ConfigError(f"model '{config.model}' has no mixing point {config.mix_layer}; "
                              f"choose config key 'mix_layer' from {', '.join(map(str, points))}")
        if config.mix_pairs == "knn":
            raise ConfigError(f"config key 'mix_pairs' knn draws partners from outside the batch, whose hidden layers "
                              f"are not computed; use knn with config key 'mix_where' input, or rp with {where}")
        if config.mix_op == "cutmix":
            raise ConfigError(f"config key 'mix_op' cutmix pastes image boxes and works on the input only; set "
                              f"config key 'mix_where' to input, or config key 'mix_op' to interpolate")
        if getattr(config, "accumulate", 1) > 1 and not (where == "latent" and config.mix_layer == 0):  # 0: input
            raise ConfigError(f"config key 'accumulate' splits each batch into micro-batches before the model, so "
                              f"mixing hidden layers (config key 'mix_where' {where}) could pair only within a "
                              f"micro-batch, not as the whole batch would; use mix_where input, or accumulate 1")
    check_cutmix_options(config)
    uses_cutmix = config.mix_op == "cutmix" or config.switch_prob is not None
    if uses_cutmix and len(spec.input_shape) != 3:
        raise ConfigError(f"config key 'mix_op' cutmix needs image inputs (C, H, W), but dataset '{spec.name}' has "
                          f"inputs of shape {tuple(spec.input_shape)}; use interpolate")
