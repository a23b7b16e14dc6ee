#!/usr/bin/env bash
# The AFLW ablation: each 2DASL self-supervision term added alone to the supervised terms, all of them, and a
# control (the supervised terms with the 2D-point weight 3),
# at a reduced budget (--set overrides of configs/dasl_mb05_aflw.yaml), two seeds per row. Every run writes RUN/model,
# its AFLW2000-3D table (RUN/aflw2000.json, a monitor), its hold-out NMEs (RUN/holdout.json) and the held-out HELEN faces
# through the whole photo pipeline (RUN/helen.json).
#   bash benchmarks/ablation_aflw.sh [RUNS_DIR] [SEEDS...]      then: python benchmarks/ablation_table.py --aflw RUNS_DIR
set -euo pipefail
runs=${1:-runs/ablation}
shift || true
seeds=${*:-"1 2"}
cfg=configs/dasl_mb05_aflw.yaml
shared=${TF2DASL_SHARED:-../shared}
budget=(--set epochs=3 --set steps_per_epoch=400)
# the ablation's base was fixed before the two variants the headline adopted (docs/results.md): 300-W's 18 map points only,
# AFLW's faces drawn as they come
base=(--set 'loss.landmark_points={"68": map18, aflw21: all}' --set data.wild.aflw.yaw_balance=0.0)
[ -d models/mb05 ] || tf2dasl import-3ddfa "$shared/assets/3ddfa_v2" --weights mb05_120x120 --out models/mb05
mkdir -p "$runs"
[ -f "$runs/mb05_aflw2000.json" ] || tf2dasl evaluate aflw2000 --data "$shared/data/aflw2000_3d_dev" --model models/mb05 \
  --json "$runs/mb05_aflw2000.json"
[ -f "$runs/mb05_holdout.json" ] || python benchmarks/holdout_nme.py --config "$cfg" --json "$runs/mb05_holdout.json" models/mb05
helen() {  # MODEL HOLDOUT_LIST OUT_JSON: 300-W's NME of the held-out HELEN faces, detector -> crop -> regression
  [ -f "$3" ] || tf2dasl evaluate 300w --data "$shared/data/300w/helen_train" --list "$2" --model "$1" --json "$3"
}
for seed in $seeds; do
  for row in supervised self_2d self_3d cycle adversarial full landmark3; do
    out="$runs/${row}_s$seed"
    terms=()
    for term in self_2d self_3d cycle adversarial; do
      [ "$row" = full ] || [ "$row" = "$term" ] || terms+=(--set "loss.$term=0")
    done
    # the control: while the map slice is ~0, the 2D self-prediction and cycle terms compare the same points as the
    # supervised 2D term, so supervised + both is close to the supervised terms with the 2D-point weight tripled
    [ "$row" = landmark3 ] && terms+=(--set loss.landmark=3.0)
    [ -d "$out/model" ] || tf2dasl train --config "$cfg" "${budget[@]}" "${base[@]}" --set seed="$seed" "${terms[@]}" \
      --init models/mb05 --out "$out" $( [ -d "$out/checkpoints" ] && echo --resume )
    [ -f "$out/aflw2000.json" ] || tf2dasl evaluate aflw2000 --data "$shared/data/aflw2000_3d_dev" --model "$out/model" \
      --json "$out/aflw2000.json"
    [ -f "$out/holdout.json" ] || python benchmarks/holdout_nme.py --config "$cfg" --json "$out/holdout.json" "$out/model"
    helen "$out/model" "$out/holdout.txt" "$out/helen.json"
    [ -f "$runs/mb05_helen.json" ] || helen models/mb05 "$out/holdout.txt" "$runs/mb05_helen.json"
  done
done
