"""A pure-Python model of seccomp's classic BPF: decode, check, disassemble, simulate.

Why: our seccomp filters are compiled by libseccomp into classic BPF, and a filter is
only as good as the decision it makes for each syscall. Loading a filter to find out
is one-way (a filter can never be removed from a process) and only shows the syscalls
this kernel can run: x32 numbers (``nr | 0x40000000``) and i386 (``AUDIT_ARCH_I386``)
cannot be issued here at all, yet a filter must still decide them. So we check every
decision in Python instead, against a model of exactly what the kernel accepts and
runs, and count the instructions each syscall executes so filters can be compared.

The model follows the kernel, not the BPF textbook:

* `validate` accepts exactly what ``seccomp(SECCOMP_SET_MODE_FILTER)`` accepts, i.e.
  ``bpf_check_classic`` (net/core/filter.c) followed by ``seccomp_check_filter``
  (kernel/seccomp.c). Notably ``BPF_MOD`` and the byte/half-word and indirect loads are
  classic BPF but *not* seccomp BPF, and a scratch slot may not be read on any path
  before it is written.
* `simulate` runs the program as the kernel does after that check: loads read the
  64-byte ``struct seccomp_data``; all arithmetic is unsigned 32-bit; division by an X
  of zero ends the program with return value 0 (which is ``SECCOMP_RET_KILL_THREAD``);
  shift counts taken from X use their low five bits, as the kernel's x86-64 JIT and
  interpreter do; an unknown action is treated as ``KILL_PROCESS``.

This module must stay pure (no libseccomp, no syscalls) so it can run anywhere,
including on hosts without seccomp; the tests cross-check it against libseccomp and
against the running kernel.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AUDIT_ARCH_AARCH64",
    "AUDIT_ARCH_I386",
    "AUDIT_ARCH_X86_64",
    "X32_SYSCALL_BIT",
    "Action",
    "Decision",
    "Instruction",
    "SeccompData",
    "decode",
    "disassemble",
    "encode",
    "simulate",
    "validate",
]

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7

# x32 syscalls arrive on the x86_64 entry path with AUDIT_ARCH_X86_64 and this bit set in
# the number; a filter has to tell them apart from native calls by the number alone.
X32_SYSCALL_BIT = 0x40000000

# --- opcode fields (include/uapi/linux/bpf_common.h, filter.h) -------------------------
# Instruction classes (low three bits of the code).
_LD = 0x00
_LDX = 0x01
_ST = 0x02
_STX = 0x03
_ALU = 0x04
_JMP = 0x05
_RET = 0x06
_MISC = 0x07
# Load modes; the only size seccomp allows is BPF_W (0), so it never appears below.
_IMM = 0x00
_ABS = 0x20
_MEM = 0x60
_LEN = 0x80
# Operand source for ALU and jumps, and for RET (K: the constant, A: the accumulator).
_K = 0x00
_X = 0x08
_A = 0x10
# ALU operations.
_ADD = 0x00
_SUB = 0x10
_MUL = 0x20
_DIV = 0x30
_OR = 0x40
_AND = 0x50
_LSH = 0x60
_RSH = 0x70
_NEG = 0x80
_MOD = 0x90  # classic BPF has it; seccomp rejects it (kept for the disassembler only)
_XOR = 0xA0
# Jump operations.
_JA = 0x00
_JEQ = 0x10
_JGT = 0x20
_JGE = 0x30
_JSET = 0x40
# BPF_MISC operations.
_TAX = 0x00
_TXA = 0x80

_MAXINSNS = 4096  # BPF_MAXINSNS: the kernel refuses longer programs
_MEMWORDS = 16  # BPF_MEMWORDS: scratch slots M[0..15]
_SECCOMP_DATA_SIZE = 64  # sizeof(struct seccomp_data)
_U32 = 0xFFFF_FFFF
_MAX_ERRNO = 4095  # the kernel caps SECCOMP_RET_ERRNO data at this

# struct sock_filter is written by libseccomp in host byte order with no padding.
_SOCK_FILTER = struct.Struct("=HBBI")
# struct seccomp_data as the x86-64 / aarch64 kernel lays it out (little-endian).
_SECCOMP_DATA = struct.Struct("<IIQ6Q")
_SECCOMP_WORDS = struct.Struct("<16I")

_ALU_OPS = (_ADD, _SUB, _MUL, _DIV, _OR, _AND, _LSH, _RSH, _XOR)
_COND_JUMPS = (_JEQ, _JGT, _JGE, _JSET)

# Every code seccomp_check_filter lets through (each is also allowed by bpf_check_classic).
# Membership is by exact code, as in the kernel's switch: stray bits make a code unknown.
_SECCOMP_CODES: frozenset[int] = frozenset(
    {
        _LD | _ABS,  # BPF_LD | BPF_W | BPF_ABS
        _LD | _LEN,  # BPF_LD | BPF_W | BPF_LEN
        _LDX | _LEN,  # BPF_LDX | BPF_W | BPF_LEN
        _LD | _IMM,
        _LDX | _IMM,
        _LD | _MEM,
        _LDX | _MEM,
        _ST,
        _STX,
        _RET | _K,
        _RET | _A,
        _ALU | _NEG,
        _MISC | _TAX,
        _MISC | _TXA,
        _JMP | _JA,
    }
    | {_ALU | op | src for op in _ALU_OPS for src in (_K, _X)}
    | {_JMP | op | src for op in _COND_JUMPS for src in (_K, _X)}
)


@dataclass(frozen=True)
class Instruction:
    """One ``struct sock_filter``: 16-bit opcode, two 8-bit jump offsets, 32-bit operand.

    Field ranges are enforced here so that an `Instruction` always fits the wire format;
    whether the opcode means anything is `validate`'s business, not the constructor's
    (a disassembler has to be able to hold garbage to show it).
    """

    code: int
    jt: int
    jf: int
    k: int

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("code", self.code, 0xFFFF),
            ("jt", self.jt, 0xFF),
            ("jf", self.jf, 0xFF),
            ("k", self.k, _U32),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"Instruction.{name} must be an int, got {value!r}")
            if not 0 <= value <= limit:
                raise ValueError(f"Instruction.{name}={value:#x} does not fit in 0..{limit:#x}")


def decode(program: bytes) -> tuple[Instruction, ...]:
    """Split raw ``struct sock_filter`` bytes (as libseccomp exports them) into instructions."""
    if not program:
        raise ValueError("empty BPF program: the kernel rejects a filter with no instructions")
    if len(program) % _SOCK_FILTER.size:
        raise ValueError(
            f"BPF program is {len(program)} bytes, not a multiple of {_SOCK_FILTER.size}"
            " (sizeof(struct sock_filter)): truncated or not BPF"
        )
    return tuple(Instruction(*fields) for fields in _SOCK_FILTER.iter_unpack(program))


def encode(program: Sequence[Instruction]) -> bytes:
    """The inverse of `decode`: the bytes to hand to ``seccomp(2)`` in a ``sock_fprog``."""
    return b"".join(_SOCK_FILTER.pack(i.code, i.jt, i.jf, i.k) for i in program)


@dataclass(frozen=True)
class SeccompData:
    """What a filter sees: ``struct seccomp_data`` (nr, arch, instruction_pointer, args[6]).

    ``nr`` is a C ``int``, so ``-1`` and ``0xffffffff`` are the same number; registers are
    64-bit, so negative args and instruction pointers are taken modulo 2**64. Fewer than
    six ``args`` are padded with zeros (the unused argument registers).
    """

    nr: int
    arch: int = AUDIT_ARCH_X86_64
    instruction_pointer: int = 0
    args: tuple[int, ...] = (0,) * 6

    def __post_init__(self) -> None:
        args = tuple(self.args)
        if len(args) > 6:
            raise ValueError(f"a syscall has at most 6 arguments, got {len(args)}")
        # Frozen: normalise through object.__setattr__ so the stored tuple is hashable.
        object.__setattr__(self, "args", args + (0,) * (6 - len(args)))
        _check_range("nr", self.nr, -(2**31), _U32)
        _check_range("arch", self.arch, 0, _U32)
        _check_range("instruction_pointer", self.instruction_pointer, -(2**63), 2**64 - 1)
        for i, arg in enumerate(self.args):
            _check_range(f"args[{i}]", arg, -(2**63), 2**64 - 1)

    def pack(self) -> bytes:
        """The 64 bytes the kernel hands the filter: nr@0 arch@4 ip@8 args[i]@16+8i."""
        mask64 = 2**64 - 1
        return _SECCOMP_DATA.pack(
            self.nr & _U32,
            self.arch,
            self.instruction_pointer & mask64,
            *(a & mask64 for a in self.args),
        )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"SeccompData.{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"SeccompData.{name}={value} is outside {low}..{high}")


class Action(enum.Enum):
    """The SECCOMP_RET_* actions; the value is the action part of the return value."""

    KILL_PROCESS = 0x8000_0000
    KILL_THREAD = 0x0000_0000
    TRAP = 0x0003_0000
    ERRNO = 0x0005_0000
    USER_NOTIF = 0x7FC0_0000
    TRACE = 0x7FF0_0000
    LOG = 0x7FFC_0000
    ALLOW = 0x7FFF_0000


_ACTION_FULL = 0xFFFF_0000  # SECCOMP_RET_ACTION_FULL
_RET_DATA = 0x0000_FFFF  # SECCOMP_RET_DATA
_ACTIONS_BY_VALUE = {a.value: a for a in Action}
# Actions whose 16 data bits reach the process (errno, si_errno, the tracer's message);
# for the others the kernel ignores them, so printing them would only mislead.
_ACTIONS_WITH_DATA = frozenset({Action.ERRNO, Action.TRAP, Action.TRACE})


@dataclass(frozen=True)
class Decision:
    """A filter's verdict for one syscall and what it cost.

    ``data`` is the raw 16-bit SECCOMP_RET_DATA (for ERRNO the kernel returns
    ``-min(data, 4095)``); ``executed`` counts instructions run, the final ``ret``
    included, which is what filter benchmarks compare.
    """

    action: Action
    data: int
    executed: int

    def __str__(self) -> str:
        if self.action in _ACTIONS_WITH_DATA:
            return f"{self.action.name}({self.data})"
        return self.action.name


def _decide(ret: int, executed: int) -> Decision:
    # The kernel's __seccomp_filter switch sends every unknown action to its
    # KILL_PROCESS branch, so an unknown action is a kill, never a pass.
    action = _ACTIONS_BY_VALUE.get(ret & _ACTION_FULL, Action.KILL_PROCESS)
    return Decision(action=action, data=ret & _RET_DATA, executed=executed)


def _ret_text(k: int) -> str:
    action = _ACTIONS_BY_VALUE.get(k & _ACTION_FULL)
    if action is None:
        return f"#{k:#x}"  # unknown action: show the raw value rather than guess a name
    data = k & _RET_DATA
    if action in _ACTIONS_WITH_DATA:
        return f"{action.name}({data})"
    return action.name if data == 0 else f"{action.name}|{data:#x}"


_ALU_NAMES = {
    _ADD: "add",
    _SUB: "sub",
    _MUL: "mul",
    _DIV: "div",
    _OR: "or",
    _AND: "and",
    _LSH: "lsh",
    _RSH: "rsh",
    _XOR: "xor",
}
_JUMP_NAMES = {_JEQ: "jeq", _JGT: "jgt", _JGE: "jge", _JSET: "jset"}


def _insn_text(ins: Instruction) -> str:
    code, k = ins.code, ins.k
    cls = code & 0x07
    if code not in _SECCOMP_CODES:
        # Not seccomp BPF (e.g. BPF_MOD, byte loads): show it raw instead of pretending.
        return f".insn {code:#06x}, {ins.jt}, {ins.jf}, {k:#x}  ; not allowed in seccomp"
    if code == _LD | _ABS:
        return f"ld [{k}]"
    if code in (_LD | _LEN, _LDX | _LEN):
        return "ld #len" if cls == _LD else "ldx #len"
    if code in (_LD | _IMM, _LDX | _IMM):
        return f"{'ld' if cls == _LD else 'ldx'} #{k:#x}"
    if code in (_LD | _MEM, _LDX | _MEM):
        return f"{'ld' if cls == _LD else 'ldx'} M[{k}]"
    if code in (_ST, _STX):
        return f"{'st' if code == _ST else 'stx'} M[{k}]"
    if code == _RET | _K:
        return f"ret {_ret_text(k)}"
    if code == _RET | _A:
        return "ret a"
    if code == _MISC | _TAX:
        return "tax"
    if code == _MISC | _TXA:
        return "txa"
    if code == _ALU | _NEG:
        return "neg"
    operand = "x" if code & _X else f"#{k:#x}"
    if cls == _ALU:
        return f"{_ALU_NAMES[code & 0xF0]} {operand}"
    if code == _JMP | _JA:
        return f"ja {k}"
    return f"{_JUMP_NAMES[code & 0xF0]} {operand}, {ins.jt}, {ins.jf}"


def disassemble(program: Sequence[Instruction]) -> str:
    """One line per instruction in bpf_asm-like syntax; jump offsets are relative.

    Never raises on a bad program: showing what is wrong is the point of a disassembler.
    """
    return "\n".join(_insn_text(ins) for ins in program)


def validate(program: Sequence[Instruction]) -> None:
    """Raise ValueError, naming the instruction index, unless the kernel would load this.

    Mirrors bpf_check_classic + seccomp_check_filter so that a program passing here is
    one the kernel accepts, and every accepted program runs to a ``ret`` in the simulator.
    """
    n = len(program)
    if n == 0:
        raise ValueError("empty BPF program: the kernel rejects a filter with no instructions")
    if n > _MAXINSNS:
        raise ValueError(
            f"instruction {_MAXINSNS}: program has {n} instructions, the kernel's limit"
            f" (BPF_MAXINSNS) is {_MAXINSNS}"
        )
    for pc, ins in enumerate(program):
        problem = _static_problem(ins, pc, n)
        if problem is not None:
            raise ValueError(f"instruction {pc} ({_insn_text(ins)}): {problem}")
    last = program[-1]
    if last.code not in (_RET | _K, _RET | _A):
        raise ValueError(
            f"instruction {n - 1} ({_insn_text(last)}): the last instruction must be a ret,"
            " otherwise execution can fall off the end"
        )
    _check_scratch_reads(program)


def _static_problem(ins: Instruction, pc: int, n: int) -> str | None:
    """What is wrong with this one instruction at this position, or None."""
    code, k = ins.code, ins.k
    if code not in _SECCOMP_CODES:
        return f"opcode {code:#06x} is not allowed in a seccomp filter"
    if code == _LD | _ABS:
        # seccomp_data is 64 bytes and the kernel only does aligned 32-bit loads from it.
        if k >= _SECCOMP_DATA_SIZE:
            return f"load offset {k} is outside struct seccomp_data ({_SECCOMP_DATA_SIZE} bytes)"
        if k % 4:
            return f"load offset {k} is not 4-byte aligned"
    elif code in (_LD | _MEM, _LDX | _MEM, _ST, _STX):
        if k >= _MEMWORDS:
            return f"scratch slot M[{k}] does not exist (there are {_MEMWORDS})"
    elif code == _ALU | _DIV | _K:
        if k == 0:
            return "division by the constant zero"
    elif code in (_ALU | _LSH | _K, _ALU | _RSH | _K):
        if k >= 32:
            return f"shift by {k} is not less than 32"
    elif code == _JMP | _JA:
        # Jumps are unsigned offsets from the next instruction: forward only, so every
        # program terminates; the target must exist.
        if k >= n - pc - 1:
            return f"jump target {pc + 1 + k} is past the end (last is {n - 1})"
    elif code & 0x07 == _JMP:
        for label, off in (("true", ins.jt), ("false", ins.jf)):
            if pc + off + 1 >= n:
                return f"{label} target {pc + 1 + off} is past the end (last is {n - 1})"
    return None


def _check_scratch_reads(program: Sequence[Instruction]) -> None:
    """Reject reading M[k] on a path where it may not have been written (check_load_and_stores).

    The kernel does not zero the scratch memory per run, so it proves every read is
    preceded by a write on every path. This mirrors its one forward pass exactly,
    including its conservatism, so we reject precisely the programs it rejects.
    """
    all_valid = (1 << _MEMWORDS) - 1
    masks = [all_valid] * len(program)  # slots written on every path into each pc
    valid = 0
    for pc, ins in enumerate(program):
        valid &= masks[pc]
        code = ins.code
        if code in (_ST, _STX):
            valid |= 1 << ins.k
        elif code in (_LD | _MEM, _LDX | _MEM):
            if not valid & (1 << ins.k):
                raise ValueError(
                    f"instruction {pc} ({_insn_text(ins)}): scratch slot M[{ins.k}] may be"
                    " read before it is written"
                )
        elif code == _JMP | _JA:
            masks[pc + 1 + ins.k] &= valid
            valid = all_valid  # the next instruction is only reachable by a jump
        elif code & 0x07 == _JMP:
            masks[pc + 1 + ins.jt] &= valid
            masks[pc + 1 + ins.jf] &= valid
            valid = all_valid


def _alu(op: int, a: int, operand: int) -> int | None:
    """A op operand in unsigned 32-bit arithmetic; None means the program aborts."""
    if op == _ADD:
        return (a + operand) & _U32
    if op == _SUB:
        return (a - operand) & _U32
    if op == _MUL:
        return (a * operand) & _U32
    if op == _DIV:
        # Only reachable with an X of zero: the constant form was rejected by validate.
        # The kernel's converted program returns 0 here (a KILL_THREAD verdict).
        return None if operand == 0 else a // operand
    if op == _OR:
        return a | operand
    if op == _AND:
        return a & operand
    if op == _XOR:
        return a ^ operand
    # Constant shifts are < 32 by validate; for X the kernel uses the low five bits
    # (x86 shl/shr on a 32-bit register, and the interpreter masks to match).
    if op == _LSH:
        return (a << (operand & 31)) & _U32
    if op == _RSH:
        return a >> (operand & 31)
    raise AssertionError(f"unhandled ALU op {op:#x}")  # validate admits no other op


def _jump_taken(op: int, a: int, operand: int) -> bool:
    if op == _JEQ:
        return a == operand
    if op == _JGT:
        return a > operand
    if op == _JGE:
        return a >= operand
    return bool(a & operand)  # _JSET, the only other op validate admits


def simulate(program: Sequence[Instruction], data: SeccompData) -> Decision:
    """Run the filter on one syscall's seccomp_data as the kernel would.

    The program is validated first (ValueError otherwise): the kernel never runs a
    program it would not load, so neither do we.
    """
    validate(program)
    words = _SECCOMP_WORDS.unpack(data.pack())
    a = x = 0  # the kernel starts both registers at zero
    mem = [0] * _MEMWORDS
    pc = 0
    executed = 0
    n = len(program)
    while pc < n:
        ins = program[pc]
        code, k = ins.code, ins.k
        cls = code & 0x07
        executed += 1
        pc += 1
        if cls == _RET:
            return _decide(k if code == _RET | _K else a, executed)
        if cls == _JMP:
            if code == _JMP | _JA:
                pc += k
            else:
                operand = x if code & _X else k
                pc += ins.jt if _jump_taken(code & 0xF0, a, operand) else ins.jf
        elif cls == _ALU:
            if code == _ALU | _NEG:
                a = -a & _U32
            else:
                result = _alu(code & 0xF0, a, x if code & _X else k)
                if result is None:
                    return _decide(0, executed)
                a = result
        elif code == _LD | _ABS:
            a = words[k // 4]
        elif code in (_LD | _LEN, _LDX | _LEN):
            # seccomp rewrites "len" into the constant sizeof(struct seccomp_data).
            if cls == _LD:
                a = _SECCOMP_DATA_SIZE
            else:
                x = _SECCOMP_DATA_SIZE
        elif code == _LD | _IMM:
            a = k
        elif code == _LDX | _IMM:
            x = k
        elif code == _LD | _MEM:
            a = mem[k]
        elif code == _LDX | _MEM:
            x = mem[k]
        elif code == _ST:
            mem[k] = a
        elif code == _STX:
            mem[k] = x
        elif code == _MISC | _TAX:
            x = a
        elif code == _MISC | _TXA:
            a = x
        else:  # pragma: no cover - validate admits no other code
            raise AssertionError(f"instruction {pc - 1}: unhandled opcode {code:#06x}")
    # Unreachable after validate (last instruction is ret, jumps are forward and in range),
    # but a simulator must never invent a verdict, so fail loudly rather than return one.
    raise ValueError(f"instruction {n - 1}: execution fell off the end without a ret")
