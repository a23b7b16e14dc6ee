"""File formats, read and written: the only package (with :mod:`tf2dasl.data`'s dataset readers) that touches files.

Owns the restricted unpickler (:mod:`.pickles`), the torch-free ``.pth`` reader (:mod:`.pth`), morphable-model
files (:mod:`.morphable_files`), the 3DDFA_V2 importer (:mod:`.import_3ddfa`), model directories (:mod:`.model_files`:
read and checked without TensorFlow; :mod:`.model_dir`: written and loaded as a task model; :mod:`.descriptor`: the
versioned JSON both they and exports use), YAML configs onto dataclasses (:mod:`.yaml_config`), images
(:mod:`.images`), ``.pts`` landmarks (:mod:`.pts`), the ``--boxes`` file (:mod:`.boxes`), meshes (:mod:`.mesh`), the
one output writer every file goes through (:mod:`.outputs`: atomic, checked; :mod:`.streams`: JSON lines and
videos) and an output folder's manifest (:mod:`.run_folder`). Must not import :mod:`tf2dasl.commands`,
:mod:`tf2dasl.training` or :mod:`tf2dasl.evaluate`; model code only in :mod:`.model_dir` and :mod:`.import_3ddfa`,
which build task models.
"""
