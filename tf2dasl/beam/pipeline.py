"""``tf2dasl reconstruct-beam`` as a Beam pipeline: file patterns → photos' JSON records, per-face rows and a
dead letter, on any runner (DirectRunner here; Dataflow, Flink, Spark at scale).

    from tf2dasl.beam import reconstruct_beam
    summary = reconstruct_beam(["photos/*.jpg"], "models/mb05", "export/mb05", "out/run1/",
                               ["--runner=DirectRunner", "--direct_num_workers=2",
                                "--direct_running_mode=multi_processing"])

or, inside a pipeline of your own, ``patterns | ReconstructPhotos(settings, export_dir)``.

The graph: ``MatchAll`` (Beam's FileSystems: local paths, ``gs://``, ``s3://``) → ``Reshuffle`` (the matches
spread over the workers) → ``ReadMatches`` → :class:`~tf2dasl.beam.photos.DetectFn` (decode, detect, box crops) →
``RunInference`` (:class:`~tf2dasl.beam.model_handler.SavedModelHandler`) → :class:`~tf2dasl.beam.photos.RefineFn`
(refined crops) → ``RunInference`` again → :class:`~tf2dasl.beam.photos.FacesFn` (decoded faces, the record) →
the sinks (:mod:`tf2dasl.beam.sinks`). Two RunInference stages, because the refined crop depends on the first
regression; both batch the faces of several photos. Nothing is lost: a photo the steps refuse, and one whose step
or inference batch raised (Beam's ``with_exception_handling``), lands in the dead letter with its reason; a photo
with more faces than ``max_faces`` is listed in the capped records (as ``reconstruct``'s summary lists it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from ..errors import UserError
from ..inference.export_dir import read_export
from ..io.model_files import read_model_spec
from .model_handler import FACES_PER_BATCH, SavedModelHandler
from .photos import CAPPED, DEAD_LETTER, FACE_ROWS, NAMESPACE, DetectFn, FacesFn, PhotoCrops, PhotoSettings, \
    RefineFn, count, dead_letter, photo_detector
from .sinks import WriteResults, require_fresh_prefix
from .staging import local_dir

#: the main output's tag of the steps, and the tag of what raised in them
MAIN, CRASHED = "main", "crashed"


def element_paths(element) -> list[str]:
    """The photo paths inside whatever a step received: a matched file, a photo, a RunInference result or a
    batch of them."""
    if isinstance(element, (list, tuple)) and not isinstance(element, PredictionResult):
        return [p for e in element for p in element_paths(e)]
    if isinstance(element, PredictionResult):
        element = element.example
    if isinstance(element, PhotoCrops):
        return [element.path]
    return [element.metadata.path]


def crash_records(bad, stage: str) -> list[dict]:
    """Beam's dead-letter element ``(input, (exception type, repr, traceback))`` → one dead-letter record per
    photo in the input."""
    element, (_, exc_repr, _) = bad
    return [dead_letter(path, stage, f"{path}: {exc_repr}") for path in element_paths(element)]


def counted(record: dict) -> dict:
    """A dead-letter record on its way out, counted by stage (``failed_<stage>``)."""
    count(f"failed_{record['stage']}")
    return record


class ReconstructPhotos(beam.PTransform):
    """File patterns (a PCollection of str) → ``{"photos", "dead_letter", "capped"[, "faces"]}``: one ``tf2dasl
    reconstruct`` JSON record per photo, one dead-letter record per photo that has none, one ``{"image", "faces",
    "reconstructed"}`` record per photo with more faces than ``settings.max_faces``, and with ``face_rows`` one
    row per face. ``settings``: :class:`~tf2dasl.beam.photos.PhotoSettings`; ``export_dir``: the SavedModel
    export of the same model; ``faces_per_batch``: faces per RunInference batch."""

    def __init__(self, settings: PhotoSettings, export_dir: str, faces_per_batch: int = FACES_PER_BATCH,
                 face_rows: bool = False):
        super().__init__()
        self.settings, self.face_rows = settings, face_rows
        self.handler = SavedModelHandler(export_dir, faces_per_batch)

    def step(self, pcoll, name: str, fn: beam.DoFn, crashed: list):
        result = pcoll | name >> beam.ParDo(fn).with_exception_handling(main_tag=MAIN, dead_letter_tag=CRASHED)
        crashed.append(result[CRASHED] | f"{name}Crashed" >> beam.FlatMap(crash_records, "crash"))
        return result

    def regress(self, pcoll, name: str, crashed: list):
        results, failed = pcoll | name >> RunInference(self.handler).with_exception_handling()
        crashed.append(failed.failed_inferences | f"{name}Failed" >> beam.FlatMap(crash_records, "inference"))
        return results

    def expand(self, patterns):
        crashed = []
        files = (patterns | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
                 | "Spread" >> beam.Reshuffle() | "Read" >> fileio.ReadMatches())
        detected = self.step(files, "Detect", DetectFn(self.settings), crashed)
        results = self.regress(detected[MAIN], "Regress", crashed)
        if self.settings.refine:
            refined = self.step(results, "Refine", RefineFn(self.settings), crashed)
            results = self.regress(refined[MAIN], "RegressRefined", crashed)
        faces = self.step(results, "Faces", FacesFn(self.settings), crashed)
        dead = ((detected[DEAD_LETTER], *crashed) | "DeadLetters" >> beam.Flatten()
                | "CountFailures" >> beam.Map(counted))
        outputs = {"photos": faces[MAIN], "dead_letter": dead, "capped": faces[CAPPED]}
        if self.face_rows:
            outputs["faces"] = faces[FACE_ROWS]
        return outputs


@dataclass
class BeamSummary:
    """What a finished run did, from its Beam counters: photos read, written (with their faces), the dead
    letter by stage, and the photos ``capped`` at ``max_faces``; ``out_prefix`` where the shards are."""

    out_prefix: str
    photos: int = 0
    written: int = 0
    faces: int = 0
    failed: dict = field(default_factory=dict)
    capped: int = 0

    @property
    def failures(self) -> int:
        """Dead-letter photos other than those without a face."""
        return sum(n for stage, n in self.failed.items() if stage != "no_face")

    @property
    def accounted(self) -> bool:
        """Every photo read is either written or in the dead letter."""
        return self.photos == self.written + sum(self.failed.values())

    @property
    def complete(self) -> bool:
        """Every photo read is written with all its faces, or in the dead letter for having no face (``tf2dasl
        reconstruct``'s ``complete``: a capped photo is not)."""
        return self.failures == 0 and self.accounted and not self.capped

    def describe(self) -> str:
        stages = ", ".join(f"{stage} {n}" for stage, n in sorted(self.failed.items()))
        text = (f"{self.photos} photos: {self.written} written with {self.faces} faces to {self.out_prefix}photos-*; "
                f"{sum(self.failed.values())} in {self.out_prefix}dead_letter-*" + (f" ({stages})" if stages else ""))
        if self.capped:
            text += (f"; {self.capped} with more faces than --max-faces, the first reconstructed, in "
                     f"{self.out_prefix}capped-* (a larger --max-faces reconstructs more, with more memory)")
        return text


def counter_value(counter) -> int:
    """A counter's committed value, or its attempted one on runners that do not commit metrics."""
    try:
        return int(counter.committed)
    except Exception:  # Beam raises its own errors (or gives None) where committed metrics are not supported
        return int(counter.attempted)


def summary_of(result, out_prefix: str) -> BeamSummary:
    """A :class:`BeamSummary` from a finished pipeline's counters (:data:`~tf2dasl.beam.photos.NAMESPACE`)."""
    totals: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + counter_value(counter)
    return BeamSummary(out_prefix, totals.get("photos", 0), totals.get("photos_written", 0), totals.get("faces", 0),
                       {k.removeprefix("failed_"): v for k, v in totals.items() if k.startswith("failed_")},
                       totals.get("photos_capped", 0))


def check_inputs(patterns: Sequence[str]) -> None:
    """A :class:`UserError` naming the first pattern that matches no file (an empty run is a mistake)."""
    if not patterns:
        raise UserError("give at least one INPUT_PATTERN (a file, or a glob such as 'photos/*.jpg')")
    for pattern in patterns:
        try:
            found = FileSystems.match([pattern], limits=[1])[0].metadata_list
        except BeamIOError as exc:
            raise UserError(f"{pattern}: cannot be matched ({' '.join(str(exc).split())})") from None
        if not found:
            raise UserError(f"{pattern}: matches no file; check the path (quote globs, 'photos/*.jpg', so that the "
                            "shell does not expand them)")


def check_model(model_dir: str, export_dir: str) -> None:
    """A :class:`UserError` when the model directory or the export is missing, or when they are of different
    models (crop side, channels, crop convention)."""
    spec = read_model_spec(local_dir(model_dir, ("model.json",)))
    meta = read_export(local_dir(export_dir, ("export.json",)))
    theirs = meta["spec"]
    mine = {"input_size": spec.input_size, "channels": spec.channels, "crop_convention": spec.crop_convention}
    other = {k: theirs.get(k) for k in mine}
    if other != mine:
        raise UserError(f"--export-dir {export_dir} is an export of {meta['model_name']} ({other}), --model {model_dir} "
                        f"is {spec.name} ({mine}): export the same model (tf2dasl export {model_dir} --out DIR)")


def reconstruct_beam(patterns: Sequence[str], model_dir: str, export_dir: str, out_prefix: str,
                     pipeline_args: Sequence[str] | PipelineOptions = (), settings: dict | None = None,
                     faces_per_batch: int = FACES_PER_BATCH, parquet: bool = False) -> BeamSummary:
    """Run the pipeline (module docstring) over ``patterns`` into ``out_prefix`` and wait for it; returns its
    :class:`BeamSummary`. ``pipeline_args``: Beam's options (``--runner``, ``--direct_num_workers``, Dataflow's
    ``--project`` ...); ``settings``: :class:`~tf2dasl.beam.photos.PhotoSettings` fields other than the model
    directory (detector, assets, detector_options, max_pixels, refine, max_faces); ``parquet``: also the per-face
    table. Bad patterns, a used prefix, a model and export that do not match, or a detector that cannot be built
    are a :class:`UserError` before any work is sent."""
    check_inputs(patterns)
    require_fresh_prefix(out_prefix)
    photo_settings = PhotoSettings(str(model_dir), **(settings or {}))
    photo_detector(photo_settings)  # a bad --detector, --assets or detector option: one line, nothing sent
    check_model(model_dir, export_dir)
    options = pipeline_args if isinstance(pipeline_args, PipelineOptions) else PipelineOptions(list(pipeline_args))
    with beam.Pipeline(options=options) as p:
        outputs = (p | "Patterns" >> beam.Create(list(patterns))
                   | "Reconstruct" >> ReconstructPhotos(photo_settings, str(export_dir), faces_per_batch, parquet))
        _ = outputs | "Write" >> WriteResults(out_prefix)
    return summary_of(p.result, out_prefix)
