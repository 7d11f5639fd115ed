"""The CPU the process runs on and oneDNN's process-wide fp32 matrix-product precision.

Shared by inference (:mod:`.inference`) and the CPU probe (:mod:`.probe`), which measures what the
setting does on this CPU.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), recorded next to measured figures."""
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class _SharedSetting:
    """Who may run under which value of one process-wide setting.

    Blocks that want the value in force run together (concurrent bf16 predictions, concurrent exact
    CAMs); a block that wants another value waits until none is running, and while it waits no new
    block of the value in force is let in (so neither kind starves the other). The setting is
    applied by the first block in and restored by the last one out.
    """

    def __init__(self, read, write):
        self._read, self._write = read, write
        self._cond = threading.Condition()
        self._value: str | None = None  # in force while _holders > 0
        self._last: str | None = None  # the value of the last blocks that ran
        self._holders = 0
        self._previous: str | None = None
        self._waiting: Counter = Counter()  # value -> blocks waiting for it
        self._depth: dict[int, int] = {}  # thread -> blocks it holds (nesting)

    def _may_enter(self, value: str, thread: int) -> bool:
        others_wait = any(n for v, n in self._waiting.items() if v != value)
        if self._holders == 0:
            # free: the value that just ran lets a waiting block of another value go first
            return not (value == self._last and others_wait)
        if value != self._value:
            return False
        # the value in force: join, unless a block of another value waits (then it goes first);
        # a thread already inside joins always (it would otherwise wait for itself)
        return bool(self._depth.get(thread)) or not others_wait

    @contextlib.contextmanager
    def hold(self, value: str):
        me = threading.get_ident()
        with self._cond:
            if self._depth.get(me) and value != self._value:
                raise RuntimeError(f"oneDNN matmul precision {value!r} asked inside a {self._value!r} "
                                   "block of the same thread: finish that block first")
            self._waiting[value] += 1
            try:
                while not self._may_enter(value, me):
                    self._cond.wait()
            finally:
                self._waiting[value] -= 1
            if self._holders == 0:
                self._previous = self._read()
                self._write(value)
                self._value = value
            self._holders += 1
            self._depth[me] = self._depth.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._holders -= 1
                self._depth[me] -= 1
                if not self._depth[me]:
                    del self._depth[me]
                if self._holders == 0:
                    self._write(self._previous)
                    self._last, self._value = self._value, None
                    self._cond.notify_all()


@lru_cache(maxsize=1)
def _matmul_setting() -> _SharedSetting:
    import torch

    setting = torch.backends.mkldnn.matmul
    return _SharedSetting(lambda: setting.fp32_precision,
                          lambda value: setattr(setting, "fp32_precision", value))


def onednn_matmul_precision(value: str | None, device: str = "cpu"):
    """Context manager: run a block with oneDNN's fp32 matrix-product precision set to ``value``
    (``"bf16"``), or exact fp32 (``None``), restoring the previous setting afterwards.

    The setting (``torch.backends.mkldnn.matmul.fp32_precision``) is process-wide, not per thread:
    blocks of the same value run together, a block of another value waits for them
    (:class:`_SharedSetting`), so an exact block never runs while another thread has bf16 set. Nested
    blocks of one thread must keep the value. Other devices than the CPU do not use the setting: a
    no-op there.
    """
    if device != "cpu":
        return contextlib.nullcontext()
    return _matmul_setting().hold(value or "ieee")
