"""Person detectors behind one interface: image in, :class:`Detections` out.

A detector is any callable ``detector(image, key=None) -> Detections`` (the
:class:`Detector` protocol) where ``image`` is (H, W, 3) uint8 RGB and ``key`` names the
image for detectors that look results up (a file name for images, a frame number from 1
for video). One module per kind:

* ``spec`` — :class:`DetectorSpec`, the command line's ``--detector`` text parsed and
  checked once, which builds the detector it names;
* ``torchvision`` — :class:`TorchvisionDetector`: Faster R-CNN v2, RetinaNet v2, FCOS,
  Mask R-CNN v2 (``TORCHVISION_MODELS``), keeping the COCO person class;
* ``files`` — :class:`CocoResultsDetector` (a COCO results JSON written by any detector)
  and :class:`MotDetector` (a MOT ``det.txt`` for video);
* ``simulated`` — :class:`GroundTruthDetector` and :class:`SimulatedDetector`: the boxes
  of an annotated data set, exact or with an imperfect detector's errors
  (:class:`DetectionNoise`, :func:`simulate_detections`), for training and ablations.
"""

from ..structures import Detector
from .files import COCO_PERSON, CocoResultsDetector, MotDetector
from .simulated import DetectionNoise, GroundTruthDetector, SimulatedDetections, SimulatedDetector, simulate_detections
from .spec import DetectorSpec
from .torchvision import TORCHVISION_MODELS, TorchvisionDetector

__all__ = [
    "COCO_PERSON",
    "TORCHVISION_MODELS",
    "CocoResultsDetector",
    "DetectionNoise",
    "Detector",
    "DetectorSpec",
    "GroundTruthDetector",
    "MotDetector",
    "SimulatedDetections",
    "SimulatedDetector",
    "TorchvisionDetector",
    "simulate_detections",
]
