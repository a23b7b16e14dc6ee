#!/usr/bin/env bash
# The 2DASL experiment and its ablation: the full config, then each self-supervision term removed in turn.
# Every run writes RUN/model and its AFLW2000-3D table (RUN/aflw2000.json). Usage: bash benchmarks/ablation.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
cfg=configs/dasl_mb05_300w.yaml
data=${TF2DASL_SHARED:-../shared}/data/aflw2000_3d_dev
[ -d models/mb05 ] || tf2dasl import-3ddfa "${TF2DASL_SHARED:-../shared}/assets/3ddfa_v2" --weights mb05_120x120 --out models/mb05
tf2dasl evaluate aflw2000 --data "$data" --model models/mb05 --json "$runs/imported_aflw2000.json"
for variant in full no_self_2d no_self_3d no_cycle no_adversarial supervised_only; do
  out="$runs/dasl_mb05_300w_$variant"
  c="$cfg"
  case "$variant" in
    full) ;;
    supervised_only) terms="self_2d self_3d cycle adversarial" ;;
    *) terms=${variant#no_} ;;
  esac
  if [ "$variant" != full ]; then
    c="$runs/$variant.yaml"
    cp "$cfg" "$c"
    for term in $terms; do sed -i -E "s/\b$term: [0-9.]+/$term: 0.0/" "$c"; done
  fi
  [ -d "$out/model" ] || tf2dasl train --config "$c" --init models/mb05 --out "$out" $( [ -d "$out/checkpoints" ] && echo --resume )
  tf2dasl evaluate aflw2000 --data "$data" --model "$out/model" --json "$out/aflw2000.json"
done
