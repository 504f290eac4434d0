"""The naive baseline: what a first PyTorch prototype of the same product would do.

Pillow decodes the whole 12-megapixel JPEG (no DCT downscale), torchvision's usual
eval transforms resize and crop it on the CPU (``Resize(size)`` with antialiasing,
``CenterCrop(size)``), and the *same architecture* (``GraderNet`` with the card's
backbone, eval mode, ``torch.inference_mode``) runs in eager mode with
``torch.set_num_threads`` equal to the service's ORT thread count. Weights are random:
speed does not depend on them.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.harness.common import percentiles


def naive_latency(card: Any, uploads: Sequence[bytes], *, threads: int) -> dict[str, Any]:
    """Per-photo milliseconds, one photo at a time, for ``uploads``."""
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from benchmarks.harness.models import torch_twin

    torch.set_num_threads(threads)
    module, backbone = torch_twin(card)
    size = card.preprocess.input_size
    tf = T.Compose([T.Resize(size, antialias=True), T.CenterCrop(size), T.PILToTensor()])

    def once(data: bytes) -> float:
        start = time.perf_counter()
        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB")  # full-size decode
        x = tf(rgb).permute(1, 2, 0).unsqueeze(0).contiguous()  # uint8 NHWC, like the graph
        with torch.inference_mode():
            module(x)
        return (time.perf_counter() - start) * 1000.0

    once(uploads[0])  # warm-up: allocator, kernels
    times = [once(d) for d in uploads]
    return {
        "per_photo_ms": percentiles(times),
        "torch_threads": threads,
        "backbone": backbone,
        "input_size": size,
        "steps": "PIL full decode + torchvision Resize/CenterCrop/PILToTensor + "
        "torch eager GraderNet (eval, inference_mode)",
    }
