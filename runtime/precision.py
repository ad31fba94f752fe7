"""Mixed precision and memory layout: what ``runtime.amp`` / ``runtime.channels_last`` resolve
to on the device at hand, and :func:`autocast_view`, how a loss written in float32 calls a network
that runs in 16 bits."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
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

    def memory_format(self, tensor: torch.Tensor) -> torch.Tensor:
        """A 4-d batch in the layout the model runs in (channels_last when on)."""
        if self.channels_last and tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        return tensor


def native_bf16(device: torch.device) -> bool:
    """True on a GPU whose tensor cores run bfloat16 (compute capability 8.0 and up: A100, H100,
    RTX 30xx on). ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only emulated
    (V100, T4), and there fp16 with a GradScaler is several times faster."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(runtime: RuntimeConfig, device: torch.device) -> Precision:
    """``auto`` means on for CUDA (bf16 where the GPU runs it natively, else fp16 with a
    GradScaler) and off on the CPU, where autocast is slower and changes results."""
    cuda = device.type == "cuda"
    amp = runtime.amp
    if amp == "auto":
        amp = ("bf16" if native_bf16(device) else "fp16") if cuda else "off"
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    channels_last = runtime.channels_last == "on" or (runtime.channels_last == "auto" and cuda)
    return Precision(dtype, dtype is torch.float16, channels_last, pin_memory=cuda)


def to_float32(value):
    """Every floating tensor in ``value`` (a tensor, list, tuple, dict or dataclass of them) as
    float32; anything else unchanged."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(to_float32(item) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(item) for item in value)
    if isinstance(value, dict):
        return {key: to_float32(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: to_float32(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        )
    return value


class _AutocastCall:
    """A callable of the model run under autocast, its tensors handed back in float32."""

    def __init__(self, function, precision: Precision, device: torch.device):
        self._function, self._precision, self._device = function, precision, device

    def __call__(self, *args, **kwargs):
        with self._precision.autocast(self._device):
            return to_float32(self._function(*args, **kwargs))

    def __getattr__(self, name: str):
        return _wrap(getattr(self._function, name), self._precision, self._device)


def _wrap(value, precision: Precision, device: torch.device):
    if isinstance(value, torch.nn.Module) or inspect.ismethod(value):
        return _AutocastCall(value, precision, device)
    return value


def autocast_view(model: torch.nn.Module, precision: Precision, device: torch.device):
    """``model`` as a loss sees it: calling it, one of its methods (``model.encode(x)``) or one of
    its submodules runs under the precision's autocast and returns float32 tensors; other
    attributes are the model's. So a learned method's loss, written in float32, keeps its SSIM,
    Sobel and L1 terms in float32 (16 bits lose digits of values near 1) while the network runs in
    bf16/fp16. Without autocast it is ``model`` itself."""
    if precision.dtype is None:
        return model
    return _AutocastCall(model, precision, device)
