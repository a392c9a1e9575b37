"""clipcam_utils: CLIPCAM (Grad-CAM on CLIP's image-text score) as a small, tested package.

Data flows one way: image + text -> model (`models`) -> saliency (`cams`) -> box (`boxes`) -> metrics
(`evaluation`) -> tables, plots and FiftyOne (`plots`, `fiftyone_export`).
"""

from . import chefer, gem, gradeclip, gscorecam, legrad, maskclip, surgery  # noqa: F401 - each registers its method
from .boxes import box_iou, saliency_to_box
from .cams import CAM_METHODS, Localization, clipcam, gradcam_weights, localize
from .methods import SaliencyMethod, available_methods, method_names, register
from .models import ClipModel, WeightsUnavailableError, load_clip, randomized_copy
from .profiles import use_profile

__all__ = [
    "CAM_METHODS",
    "ClipModel",
    "Localization",
    "SaliencyMethod",
    "WeightsUnavailableError",
    "available_methods",
    "box_iou",
    "clipcam",
    "gradcam_weights",
    "load_clip",
    "localize",
    "method_names",
    "randomized_copy",
    "register",
    "saliency_to_box",
    "use_profile",
]
__version__ = "0.1.0"
