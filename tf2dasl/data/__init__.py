"""Training data: sample listings (:mod:`.sources`), landmark sets (:mod:`.landmark_sets`), loading
(:mod:`.loading`), augmentation (:mod:`.augment`), teacher labels (:mod:`.teacher`), the data configs
(:mod:`.data_config`), tf.data pipelines (:mod:`.pipeline`, :mod:`.datasets`) and the calibration faces of the
int8 exports (:mod:`.calibration`).

Owns reading datasets and turning them into batches; imports no model code (a teacher is a callable here). The
package imports none of its modules: listing and reading samples (:mod:`.sources`, used by evaluation too) needs no
TensorFlow, the pipelines do.
"""
