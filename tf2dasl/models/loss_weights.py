"""The weights of 2DASL's loss terms and the choices beside them (``loss:`` of a training config, mapped from YAML by
:mod:`tf2dasl.io.yaml_config`): which terms exist, how landmark terms pick their points, and which of the teacher's
labels the wild faces keep beside 3D-labelled faces. No TensorFlow: :class:`~tf2dasl.models.dasl.DASLModel` computes
the terms.
"""
from __future__ import annotations

from dataclasses import dataclass

SUPERVISED_TERMS = ("wpdc", "param_l2", "vdc", "anchor68", "landmark")
SELF_SUPERVISED_TERMS = ("self_2d", "self_3d", "cycle", "adversarial")
#: priors on the wild faces' pass through the map of their points (not 2DASL's): ``camera`` keeps the affine
#: camera's depth row, which no 2D term sees, that of a scaled rotation
PRIOR_TERMS = ("camera",)
LOSS_NAMES = SUPERVISED_TERMS + SELF_SUPERVISED_TERMS + PRIOR_TERMS
#: how landmark terms pick points: every annotated point alike, or 2DASL's 18 map points with its weights (one for
#: every landmark set, or per set: ``{"68": "map18", "aflw21": "all"}``)
LANDMARK_POINTS = {"all": "all68", "map18": "map18"}
#: what the wild faces' teacher terms compare beside labelled faces: every configured term against the teacher's
#: labels, or only the whitened L2 of its 50 shape and expression coefficients (pose and the image plane then left to
#: the annotated points)
WILD_TEACHER_PARTS = ("all", "shape_expression")
#: what of the teacher's labels the wild faces beyond ``wild_teacher_max_yaw`` keep: nothing, or the whitened L2 of
#: their shape and expression coefficients
WILD_TEACHER_BEYOND = ("none", "shape_expression")


@dataclass
class LossWeights:
    """Weight of each term (0 switches it off) and how landmark terms pick their points."""

    wpdc: float = 1.0
    param_l2: float = 0.0
    vdc: float = 0.0
    anchor68: float = 0.0
    landmark: float = 1.0
    self_2d: float = 1.0
    self_3d: float = 0.5
    cycle: float = 1.0
    adversarial: float = 0.01
    #: :data:`PRIOR_TERMS`' weight: the wild faces' camera depth row kept that of a scaled rotation
    camera: float = 0.0
    landmark_points: str | dict = "all"
    wpdc_zero_z: bool = True
    #: with 3D-labelled faces in the batch: the weight of the wild faces' teacher terms (WPDC, param L2, VDC, anchor68
    #: against the teacher's labels) beside the labelled faces' own, their annotated points (``landmark``) whole.
    #: 0, the default: the wild faces keep only their points, as when a labelled part replaced the teacher's labels.
    #: Without labelled faces the teacher terms count whole.
    wild_teacher: float = 0.0
    #: which of the teacher's labels those terms compare (:data:`WILD_TEACHER_PARTS`)
    wild_teacher_part: str = "all"
    #: beside labelled faces: only wild faces whose teacher turns them at most this many degrees from frontal (|yaw|
    #: of the teacher's parameters) get its terms; None: every wild face. Their annotated points always count.
    wild_teacher_max_yaw: float | None = None
    #: what of the teacher's labels the wild faces beyond that limit keep (:data:`WILD_TEACHER_BEYOND`)
    wild_teacher_beyond: str = "none"

    def validate(self):
        for n in LOSS_NAMES + ("wild_teacher",):
            if not getattr(self, n) >= 0:
                raise ValueError(f"loss weight {n} must be >= 0")
        if self.wild_teacher_max_yaw is not None and not 0 < self.wild_teacher_max_yaw <= 90:
            raise ValueError(f"wild_teacher_max_yaw must be in (0, 90] degrees or null, got {self.wild_teacher_max_yaw!r}")
        if self.wild_teacher_beyond not in WILD_TEACHER_BEYOND:
            raise ValueError(f"wild_teacher_beyond must be {' or '.join(WILD_TEACHER_BEYOND)}, got "
                             f"{self.wild_teacher_beyond!r}")
        if self.wild_teacher_part not in WILD_TEACHER_PARTS:
            raise ValueError(f"wild_teacher_part must be {' or '.join(WILD_TEACHER_PARTS)}, got "
                             f"{self.wild_teacher_part!r}")
        picks = [self.landmark_points] if isinstance(self.landmark_points, str) else list(self.landmark_points.values())
        if not picks or any(p not in LANDMARK_POINTS for p in picks):
            raise ValueError(f"landmark_points must be {' or '.join(LANDMARK_POINTS)} (or a mapping landmark set -> "
                             f"one of them), got {self.landmark_points!r}")

    def points_for(self, landmark_set: str) -> str:
        """The point selection of one landmark set."""
        lp = self.landmark_points
        return lp if isinstance(lp, str) else lp.get(landmark_set, "all")
