"""Put a search over syscall-number ranges in front of libseccomp's filter.

libseccomp's binary tree tests one syscall number per node, so even the commonest call
(read, number 0) walks a dozen instructions, while a linear filter reaches it in five.
Most syscalls need no argument check, and neighbouring numbers usually share a decision,
so this front decides them by *ranges*: a search whose first test peels off the lowest
range (read, write, open, close, stat… are all there), then a balanced search over the
rest. Whatever the front is not sure of — another architecture, a syscall with argument
rules, a number beyond the highest one libseccomp knows — it hands to libseccomp's
program, appended unchanged, which decides it exactly as it would alone. A test checks
that the combined program and libseccomp's own decide every syscall number identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.compile.bpf import Instruction, decode, encode

__all__ = ["prepend_fast_path"]

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JA = 0x05  # BPF_JMP | BPF_JA
_RET_K = 0x06  # BPF_RET | BPF_K
_OFFSET_NR, _OFFSET_ARCH = 0, 4
_MAX_SHORT_JUMP = 255  # jt/jf are 8 bits; longer jumps go through `ja`


@dataclass(frozen=True)
class _Run:
    """Syscall numbers from ``start`` up to the next run's start share ``ret`` (None: defer)."""

    start: int
    ret: int | None


@dataclass(frozen=True)
class _Defer:
    """A placeholder for "jump to libseccomp's program", resolved once the front is laid out."""


_Code = list[Instruction | _Defer]


def _runs(decisions: Sequence[int | None]) -> list[_Run]:
    runs: list[_Run] = []
    for number, ret in enumerate(decisions):
        if not runs or runs[-1].ret != ret:
            runs.append(_Run(number, ret))
    if not runs or runs[-1].ret is not None:
        runs.append(_Run(len(decisions), None))  # beyond the known numbers: libseccomp decides
    return runs


def _leaf(run: _Run) -> _Code:
    return [_Defer() if run.ret is None else Instruction(_RET_K, 0, 0, run.ret)]


def _split(boundary: int, left: _Code, right: _Code) -> _Code:
    """``nr >= boundary`` goes to ``right``, the rest to ``left`` (laid out first)."""
    if len(left) <= _MAX_SHORT_JUMP:
        return [Instruction(_JGE_K, len(left), 0, boundary), *left, *right]
    return [Instruction(_JGE_K, 0, 1, boundary), Instruction(_JA, 0, 0, len(left)), *left, *right]


def _balanced(runs: Sequence[_Run]) -> _Code:
    if len(runs) == 1:
        return _leaf(runs[0])
    middle = len(runs) // 2
    return _split(runs[middle].start, _balanced(runs[:middle]), _balanced(runs[middle:]))


def _search(runs: Sequence[_Run]) -> _Code:
    # The lowest range is where the hottest syscalls live; one test reaches it.
    if len(runs) <= 2:
        return _balanced(runs)
    return _split(runs[1].start, _leaf(runs[0]), _balanced(runs[1:]))


def prepend_fast_path(program: bytes, native_arch: int, decisions: Sequence[int | None]) -> bytes:
    """Return ``program`` with a range search in front of it.

    ``decisions[nr]`` is the seccomp return value for native syscall ``nr`` when it does
    not depend on arguments, or None to let ``program`` decide. ``native_arch`` is the
    AUDIT_ARCH value the front accepts; any other architecture goes to ``program``.
    """
    body: _Code = [
        Instruction(_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        Instruction(_JEQ_K, 1, 0, native_arch),
        _Defer(),
        Instruction(_LD_W_ABS, 0, 0, _OFFSET_NR),
        *_search(_runs(decisions)),
    ]
    front = [
        Instruction(_JA, 0, 0, len(body) - index - 1) if isinstance(item, _Defer) else item
        for index, item in enumerate(body)
    ]
    return encode([*front, *decode(program)])
