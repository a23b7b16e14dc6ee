#!/usr/bin/env bash
# The 2DASL experiment and its ablation: the full config, then each self-supervision term removed in turn, and the
# full config with the landmark-map slice's learning rate x100 (one- and two-pass inference evaluated for both).
# Every run writes RUN/model and its AFLW2000-3D table (RUN/aflw2000.json). Usage: bash benchmarks/ablation.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
cfg=configs/dasl_mb05_300w.yaml
data=${TF2DASL_SHARED:-../shared}/data/aflw2000_3d_dev
[ -d models/mb05 ] || tf2dasl import-3ddfa "${TF2DASL_SHARED:-../shared}/assets/3ddfa_v2" --weights mb05_120x120 --out models/mb05
tf2dasl evaluate aflw2000 --data "$data" --model models/mb05 --json "$runs/imported_aflw2000.json"
for variant in full no_self_2d no_self_3d no_cycle no_adversarial supervised_only map_lr100; do
  out="$runs/dasl_mb05_300w_$variant"
  case "$variant" in
    full | map_lr100) terms="" ;;
    supervised_only) terms="self_2d self_3d cycle adversarial" ;;
    *) terms=${variant#no_} ;;
  esac
  overrides=()
  for term in $terms; do overrides+=(--set "loss.$term=0"); done
  [ "$variant" = map_lr100 ] && overrides+=(--set optim.map_lr_multiplier=100)
  [ -d "$out/model" ] || tf2dasl train --config "$cfg" "${overrides[@]}" --init models/mb05 --out "$out" \
    $( [ -d "$out/checkpoints" ] && echo --resume )
  tf2dasl evaluate aflw2000 --data "$data" --model "$out/model" --json "$out/aflw2000.json"
  case "$variant" in
    full | map_lr100) tf2dasl evaluate aflw2000 --data "$data" --model "$out/model" --passes 1 \
                        --json "$out/aflw2000_1pass.json" ;;
  esac
done
