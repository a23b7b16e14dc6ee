#!/usr/bin/env bash
# The profiling ablation (docs/profiling.md): what profiled faces add to the headline recipe, whether the wild faces keep their teacher terms
# beside them, and what 2DASL's terms add to profiled faces, at the reduced budget of benchmarks/ablation_aflw.sh
# (3 epochs of 400 steps), two seeds per row. Rows:
#   headline        configs/dasl_mb05_aflw.yaml (teacher anchors + 2D points + 2DASL's four terms on the wild faces)
#   teacher_kept    the headline + profiled faces, the wild faces keeping their teacher terms (loss.wild_teacher=1)
#   teacher_half    the same with the wild faces' teacher terms at half weight (loss.wild_teacher=0.5)
#   profiled_allpoints  the same with the wild faces' teacher terms dropped (wild_teacher 0: chosen on these
#                   held-out faces; the wild faces keep their 2D points, all 21 of AFLW's)
#   profiled        configs/dasl_mb05_profiled.yaml: the same with AFLW's points compared through 2DASL's 18 map
#                   points (no ears, no chin: loss.landmark_points {"68": all, aflw21: map18})
#   teacher_kept_map18  the shipped config with the wild faces keeping their teacher terms (loss.wild_teacher=1)
#   teacher_shape   the shipped config with the wild faces' teacher terms on their shape and expression only
#                   (loss.wild_teacher=1, loss.wild_teacher_part=shape_expression)
#   teacher_near    the shipped config with the wild faces keeping their teacher terms only where the teacher's
#                   |yaw| is 60 degrees or less (loss.wild_teacher=1, loss.wild_teacher_max_yaw=60)
#   teacher_near_shape  the same, the faces beyond 60 degrees keeping the teacher's shape and expression
#                   (loss.wild_teacher_beyond=shape_expression)
#   teacher_near_camera  teacher_near with the camera prior on the wild faces (loss.camera=10)
#   profiled_2dasl  profiled faces alone as the 3D labels, the wild faces through 2DASL's terms only (teacher=false):
#                   2DASL's own recipe with profiled faces in 300W-LP's place
#   profiled_only   profiled faces alone, no 2DASL term (teacher=false, self terms 0)
# Every row but headline, profiled, teacher_kept_map18, teacher_shape and the teacher_near rows compares all of AFLW's 21 points
# (loss.landmark_points=all), as they were run.
# Every run writes RUN/model, RUN/aflw2000.json (every metric, --dense; a monitor), RUN/holdout.json (AFLW split and
# HELEN hold-out crops) and RUN/helen.json (HELEN's held-out faces through the photo pipeline).
#   bash benchmarks/ablation_profiled.sh [RUNS_DIR] [SEEDS...]   then: python benchmarks/profiled_table.py RUNS_DIR
#   ROWS="profiled headline" bash benchmarks/ablation_profiled.sh ...   (some rows only)
set -euo pipefail
runs=${1:-runs/ablation_profiled}
shift || true
seeds=${*:-"1 2"}
shared=${TF2DASL_SHARED:-../shared}
dev="$shared/data/aflw2000_3d_dev"
budget=(--set epochs=3 --set steps_per_epoch=400)
rows=${ROWS:-"headline teacher_kept teacher_half profiled_allpoints profiled teacher_kept_map18 teacher_shape
             teacher_near teacher_near_shape teacher_near_camera profiled_2dasl profiled_only"}
all21=(--set loss.landmark_points=all)
[ -d models/mb05 ] || tf2dasl import-3ddfa "$shared/assets/3ddfa_v2" --weights mb05_120x120 --out models/mb05
mkdir -p "$runs"
score() {  # MODEL OUT_PREFIX HOLDOUT_LIST: every evaluation of one model
  [ -f "$2aflw2000.json" ] || tf2dasl evaluate aflw2000 --data "$dev" --model "$1" --dense --json "$2aflw2000.json"
  [ -f "$2holdout.json" ] || python benchmarks/holdout_nme.py --config configs/dasl_mb05_aflw.yaml \
    --json "$2holdout.json" "$1"
  [ -f "$2helen.json" ] || tf2dasl evaluate 300w --data "$shared/data/300w/helen_train" --list "$3" --model "$1" \
    --json "$2helen.json"
}
for seed in $seeds; do
  for row in $rows; do
    out="$runs/${row}_s$seed"
    cfg=configs/dasl_mb05_profiled.yaml
    case $row in
      headline) cfg=configs/dasl_mb05_aflw.yaml; extra=() ;;
      teacher_kept) extra=("${all21[@]}" --set loss.wild_teacher=1) ;;
      teacher_half) extra=("${all21[@]}" --set loss.wild_teacher=0.5) ;;
      profiled_allpoints) extra=("${all21[@]}") ;;
      profiled) extra=() ;;
      teacher_kept_map18) extra=(--set loss.wild_teacher=1) ;;
      teacher_shape) extra=(--set loss.wild_teacher=1 --set loss.wild_teacher_part=shape_expression) ;;
      teacher_near) extra=(--set loss.wild_teacher=1 --set loss.wild_teacher_max_yaw=60) ;;
      teacher_near_shape) extra=(--set loss.wild_teacher=1 --set loss.wild_teacher_max_yaw=60
                                 --set loss.wild_teacher_beyond=shape_expression) ;;
      teacher_near_camera) extra=(--set loss.wild_teacher=1 --set loss.wild_teacher_max_yaw=60 --set loss.camera=10) ;;
      profiled_2dasl) extra=("${all21[@]}" --set teacher=false) ;;
      profiled_only) extra=("${all21[@]}" --set teacher=false --set loss.self_2d=0 --set loss.self_3d=0
                            --set loss.cycle=0 --set loss.adversarial=0) ;;
      *) echo "unknown row $row" >&2; exit 2 ;;
    esac
    [ -d "$out/model" ] || tf2dasl train --config "$cfg" "${budget[@]}" --set seed="$seed" "${extra[@]}" \
      --init models/mb05 --out "$out" $( [ -d "$out/checkpoints" ] && echo --resume )
    score "$out/model" "$out/" "$out/holdout.txt"
    [ -f "$runs/mb05_helen.json" ] || score models/mb05 "$runs/mb05_" "$out/holdout.txt"
  done
done
