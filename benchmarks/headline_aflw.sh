#!/usr/bin/env bash
# The headline AFLW experiment and docs/results.md's results table: train configs/dasl_mb05_aflw.yaml from the
# imported mb05 (time and peak memory in RUN_DIR.time), then score mb05, the trained model and 2DASL's published
# parameters on the same faces: AFLW2000-3D dev slice with every metric (--dense; a monitor, never selected on), the
# AFLW-wild validation split and the 300-W hold-out (benchmarks/holdout_nme.py), HELEN's held-out faces through the
# whole photo pipeline (`evaluate 300w`).
#   bash benchmarks/headline_aflw.sh [RUN_DIR] [--set KEY=VALUE ...]
#   CONFIG=configs/dasl_mb05_profiled.yaml bash benchmarks/headline_aflw.sh runs/profiled    # another recipe, same table
set -euo pipefail
out=${1:-runs/dasl_mb05_aflw}
shift || true
cfg=${CONFIG:-configs/dasl_mb05_aflw.yaml}
shared=${TF2DASL_SHARED:-../shared}
dev="$shared/data/aflw2000_3d_dev"
scores=${out}_scores
mkdir -p "$scores"
[ -d models/mb05 ] || tf2dasl import-3ddfa "$shared/assets/3ddfa_v2" --weights mb05_120x120 --out models/mb05
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -v -o "$out.time")
[ -d "$out/model" ] || "${timer[@]}" tf2dasl train --config "$cfg" --init models/mb05 --out "$out" "$@" \
  $( [ -d "$out/checkpoints" ] && echo --resume )
ev() {  # NAME [evaluate args...]: AFLW2000-3D with every metric
  local name=$1; shift
  [ -f "$scores/$name.json" ] || tf2dasl evaluate aflw2000 --data "$dev" --dense --json "$scores/$name.json" "$@"
}
ev mb05 --model models/mb05
ev trained --model "$out/model"
ev 2dasl --name "2DASL (published)" --params "$dev/2dasl_published_params.npy" --convention 3ddfa_v1 \
  --bfm "$shared/assets/3ddfa_v2"
for m in mb05 trained; do
  model=models/mb05; [ $m = trained ] && model="$out/model"
  [ -f "$scores/${m}_holdout.json" ] || python benchmarks/holdout_nme.py --config "$cfg" --json "$scores/${m}_holdout.json" \
    "$model"
  [ -f "$scores/${m}_helen.json" ] || tf2dasl evaluate 300w --data "$shared/data/300w/helen_train" \
    --list "$out/holdout.txt" --model "$model" --json "$scores/${m}_helen.json"
done
python benchmarks/ablation_table.py --results \
  "imported mb05_120x120=$scores/mb05.json,$scores/mb05_holdout.json,$scores/mb05_helen.json" \
  "this training ($out)=$scores/trained.json,$scores/trained_holdout.json,$scores/trained_helen.json" \
  "2DASL published parameters=$scores/2dasl.json"
