"""Half precision: the model may run in bfloat16, the CAM arithmetic stays float32."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers_core import CPU, scene_image, tiny_clip

from clipcam_utils import models
from clipcam_utils.cams import clipcam


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_bfloat16_model_gives_float32_maps_close_to_fp32(tower: str) -> None:
    full = tiny_clip(tower, seed=1)
    half_model = models._finish(copy.deepcopy(full.model), CPU, torch.bfloat16)
    half = models.ClipModel(half_model, full.name, None, full.tokenizer, full.mean, full.std,
                            models.architecture_facts(half_model), full.default_beta, CPU, torch.bfloat16,
                            full.context_length)  # fmt: skip
    image = scene_image(64, 64)
    a = clipcam(full, image, ["a red circle", "a blue square"])
    b = clipcam(half, image, ["a red circle", "a blue square"])
    assert b.dtype == np.float32 and b.shape == a.shape
    assert next(half.model.parameters()).dtype == torch.bfloat16
    # bfloat16 keeps ~3 significant digits: the maps agree closely but not exactly
    assert np.abs(a - b).mean() < 0.05
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
