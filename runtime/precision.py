"""Mixed precision and memory layout: what ``runtime.amp`` / ``runtime.channels_last`` resolve
to on the device at hand."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from configs.schema import RuntimeConfig


@dataclass(frozen=True)
class Precision:
    """Resolved speed switches: autocast dtype (None = off), GradScaler, channels_last."""

    dtype: torch.dtype | None
    scaler: bool
    channels_last: bool
    pin_memory: bool

    @property
    def amp_dtype_name(self) -> str:
        return "off" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    @property
    def name(self) -> str:
        """What the arithmetic runs in: ``fp32`` without autocast, else ``bfloat16``/``float16``."""
        return "fp32" if self.dtype is None else self.amp_dtype_name

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def make_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(device.type, enabled=self.scaler)


def resolve_precision(runtime: RuntimeConfig, device: torch.device) -> Precision:
    """``auto`` means on for CUDA (bf16 where supported, else fp16 with a GradScaler) and off on
    the CPU, where autocast is slower and changes results."""
    cuda = device.type == "cuda"
    amp = runtime.amp
    if amp == "auto":
        amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "off"
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    channels_last = runtime.channels_last == "on" or (runtime.channels_last == "auto" and cuda)
    return Precision(dtype, dtype is torch.float16, channels_last, pin_memory=cuda)
