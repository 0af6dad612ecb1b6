#!/usr/bin/env bash
# The digits version of Table 5 (§3.8): every ablation row on the embedded digits, small CNN, CPU.
#   examples/table5-digits.sh OUT_DIR [EPOCHS] [WEIGHT_DECAYS...]
#   e.g. examples/table5-digits.sh runs/table5-digits 15 1e-4 5e-4
# Each row is one `mixup train`; the table (median test error of the last 10 epochs, as the paper
# reports) is printed by examples/table5_summary.py OUT_DIR.
set -euo pipefail
out="${1:?usage: table5-digits.sh OUT_DIR [EPOCHS] [WEIGHT_DECAYS...]}"
epochs="${2:-15}"
shift $(( $# >= 2 ? 2 : 1 ))
decays=("${@:-1e-4}")
[ "${#decays[@]}" -gt 0 ] || decays=(1e-4)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The trainer to call; MIXUP="mixup" uses an installed one instead of this checkout's.
if [ -n "${MIXUP:-}" ]; then read -r -a mixup <<< "$MIXUP"; else mixup=("$here/run" mixup); fi
# name|flags: the rows of Table 5; "Layer k" is the small CNN's mixing point k (it has 2 stages).
rows=(
  "erm|--alpha 0"
  "mixup-ac-rp|--alpha 1"
  "mixup-ac-knn|--alpha 1 --mix-pairs knn"
  "latent-layer1|--alpha 1 --mix-where latent --mix-layer 1"
  "latent-layer2|--alpha 1 --mix-where latent --mix-layer 2"
  "inputs-only-sc-knn|--alpha 1 --mix-targets inputs-only --mix-pairs knn --mix-classes sc"
  "inputs-only-ac-knn|--alpha 1 --mix-targets inputs-only --mix-pairs knn"
  "inputs-only-sc-rp|--alpha 1 --mix-targets inputs-only --mix-classes sc"
  "inputs-only-ac-rp|--alpha 1 --mix-targets inputs-only"
  "label-smoothing-0.1|--alpha 0 --label-smoothing 0.1"
  "mixup-label-smoothing-0.1|--alpha 1 --label-smoothing 0.1"
  "gaussian-noise-0.1|--alpha 0 --input-noise 0.1"
)
# examples/table5_summary.py prints the rows in the paper's order, whatever order they ran in.
for wd in "${decays[@]}"; do
  mkdir -p "$out/wd$wd"
  for row in "${rows[@]}"; do
    name="${row%%|*}"; flags="${row#*|}"
    dir="$out/wd$wd/$name"
    [ -f "$dir/summary.json" ] && continue
    echo "== $name wd=$wd" >&2
    # shellcheck disable=SC2086
    "${mixup[@]}" train --epochs "$epochs" --weight-decay "$wd" $flags --out "$dir" --force >"$dir.log" 2>&1 \
      || echo "   failed: see $dir.log" >&2
  done
done
echo "table: ./run python examples/table5_summary.py $out" >&2
