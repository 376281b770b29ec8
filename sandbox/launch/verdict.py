"""How a run ended: one verdict word, the exit code the CLI returns, and what the run used.

Why one verdict: a reviewer (or a grading script) needs a single answer to "why did it
stop?" that does not depend on guessing from exit codes; the verdict names the limit or
rule that ended the run, and `exit_code` follows ``docker run`` / GNU ``timeout``.
"""

from __future__ import annotations

import errno
import os
import signal as _signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.launch.errors import SetupError

if TYPE_CHECKING:
    from sandbox.launch.context import ChildContext
    from sandbox.launch.spec import LaunchSpec
    from sandbox.launch.supervise import Observed

from sandbox.verdicts import Verdict

__all__ = ["DeniedSyscall", "Result", "Verdict", "decide", "exit_code_for"]




@dataclass(frozen=True)
class DeniedSyscall:
    """The syscall that a kill rule caught: name (None if unknown), number, ABI, arguments.

    ``rule`` and ``origin`` say which policy entry denied it, so the denial can be traced
    to the line to change (or to keep).
    """

    name: str | None
    nr: int | None
    arch: str
    args: tuple[int, ...] = ()
    rule: str | None = None
    origin: str | None = None

    def describe(self) -> str:
        """One line for humans and for the audit record's `detail`."""
        name = self.name or "unknown syscall"
        nr = f" (nr {self.nr}, {self.arch})" if self.nr is not None else f" ({self.arch})"
        why = f", rule {self.rule}" if self.rule else ""
        at = f" at {self.origin}" if self.origin else ""
        return f"{name}{nr}{why}{at}"


@dataclass(frozen=True)
class Result:
    """The outcome of one run, with usage; `to_dict` is the ``--json`` form."""

    verdict: Verdict
    exit_code: int
    signal: int | None
    detail: str | None
    wall_s: float
    user_s: float
    sys_s: float
    peak_memory_bytes: int | None
    max_pids: int | None
    output_bytes: int
    run_id: str
    stdout: bytes = b""
    stderr: bytes = b""
    denied: DeniedSyscall | None = None
    setup_error: SetupError | None = None
    time_to_exec_s: float | None = None
    audit_head: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping (output bytes are not included; they went to the streams)."""
        out: dict[str, object] = {
            "run_id": self.run_id,
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "signal_name": _signal_name(self.signal),
            "detail": self.detail,
            "wall_s": round(self.wall_s, 6),
            "user_s": round(self.user_s, 6),
            "sys_s": round(self.sys_s, 6),
            "peak_memory_bytes": self.peak_memory_bytes,
            "max_pids": self.max_pids,
            "output_bytes": self.output_bytes,
            "time_to_exec_s": (
                None if self.time_to_exec_s is None else round(self.time_to_exec_s, 6)
            ),
            "audit_head": self.audit_head,
            "notes": list(self.notes),
        }
        if self.denied is not None:
            out["denied"] = {
                "syscall": self.denied.name, "nr": self.denied.nr, "arch": self.denied.arch,
                "args": list(self.denied.args), "rule": self.denied.rule,
                "origin": self.denied.origin,
            }
        if self.setup_error is not None:
            err = self.setup_error
            out["setup_error"] = {
                "step": err.step, "errno": err.errno, "path": err.path, "detail": err.detail,
            }
        return out


def _signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    try:
        return _signal.Signals(number).name
    except ValueError:
        return None


def exit_code_for(verdict: Verdict, code: int | None, signal: int | None) -> int:
    """The CLI exit code: the program's, 128+N for signal N, 124 for a time limit."""
    if verdict in (Verdict.TIMEOUT, Verdict.CPU_LIMIT):
        return 124
    if verdict is Verdict.SETUP_FAILED:
        return code if code in (126, 127) else 125
    if signal is not None:
        return 128 + signal
    return code if code is not None else 125


_SIGSYS = 31
_SIGKILL = 9
_SIGXCPU = 24


def _syscall_name(
    arch: str, nr: int, spec: LaunchSpec
) -> tuple[str | None, str | None, str | None]:
    """(name, rule, origin) for a denied syscall: from the plan's rules for the native ABI,
    else libseccomp's table (loaded only now, after the run)."""
    import platform  # noqa: PLC0415

    if arch == platform.machine() and nr in spec.kill_rules:
        name, via, origin = spec.kill_rules[nr]
        return name, via, origin
    try:
        import pyseccomp  # noqa: PLC0415 -- only after a denial, never on the launch path

        arch_token = pyseccomp.Arch.X86 if arch == "i386" else getattr(
            pyseccomp.Arch, arch.upper(), None)
        if arch_token is None:
            return None, None, None
        name = pyseccomp.resolve_syscall(arch_token, nr)
        text = name.decode() if isinstance(name, bytes) else str(name)
        rule = "architectures (only the native ABI is allowed)" if arch != platform.machine() \
            else "default action"
        return text, rule, None
    except Exception:
        return None, None, None


def decide(*, spec: LaunchSpec, ctx: ChildContext, seen: Observed, usage: Any, wall: float,
           started: float, run_id: str, notes: list[str]) -> Result:
    """Turn what the supervisor saw into one verdict, the exit code and the usage figures."""
    code: int | None = None
    sig: int | None = None
    user_s = sys_s = 0.0
    if seen.program_report is not None:
        status, utime, stime, _rss = seen.program_report
        user_s, sys_s = utime / 1e6, stime / 1e6
    elif seen.child_status is not None:
        status = seen.child_status
        if seen.child_rusage is not None:
            user_s, sys_s = seen.child_rusage.ru_utime, seen.child_rusage.ru_stime
    else:
        status = None
    if status is not None:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
        elif os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            if seen.program_report is None and ctx.new_pid and code > 128:
                # The holder mirrors pid 1, which died by a signal before reporting.
                sig, code = code - 128, None
    if usage is not None and usage.user_s is not None and usage.sys_s is not None:
        user_s, sys_s = max(user_s, usage.user_s), max(sys_s, usage.sys_s)
    peak = usage.peak_memory_bytes if usage is not None else None
    max_pids = usage.max_pids if usage is not None else None
    denied: DeniedSyscall | None = None
    error: SetupError | None = None
    detail: str | None = None
    if seen.error_bytes:
        error = SetupError.decode(seen.error_bytes)
        verdict = Verdict.SETUP_FAILED
        code = 127 if error.step == "execve" and error.errno == errno.ENOENT else (
            126 if error.step == "execve" else 125)
        sig = None
        detail = str(error)
    elif seen.exec_time is None and seen.notification is None:
        error = SetupError("child", errno.ECHILD, None,
                           "the sandbox ended before the program was executed")
        verdict, code, sig, detail = Verdict.SETUP_FAILED, 125, None, str(error)
    elif seen.notification is not None:
        nr, arch, args = seen.notification
        name, rule, origin = _syscall_name(arch, nr, spec)
        denied = DeniedSyscall(name, nr, arch, args, rule, origin)
        verdict, sig, code, detail = Verdict.SECCOMP_VIOLATION, _SIGSYS, None, denied.describe()
    elif seen.killed == "timeout":
        verdict, detail = Verdict.TIMEOUT, f"wall time limit of {spec.wall_time_s:g} s reached"
    elif seen.killed == "output-limit":
        verdict, detail = Verdict.OUTPUT_LIMIT, f"output limit of {spec.output_bytes} bytes reached"
    elif seen.killed == "cpu-limit" or (
        sig in (_SIGKILL, _SIGXCPU) and spec.cpu_time_s is not None
        and user_s + sys_s >= _rlimit_cpu(ctx, spec.cpu_time_s) - 0.05
    ):
        verdict, detail = Verdict.CPU_LIMIT, f"CPU time limit of {spec.cpu_time_s:g} s reached"
    elif sig == _SIGSYS:
        denied = DeniedSyscall(None, None, "unknown")
        verdict, detail = Verdict.SECCOMP_VIOLATION, "killed by the seccomp filter (SIGSYS)"
    elif usage is not None and usage.oom_killed and (sig is not None or code != 0):
        verdict = Verdict.OUT_OF_MEMORY
        detail = f"memory limit of {spec.memory_bytes} bytes reached"
    elif usage is not None and usage.pids_limit_hit and (sig is not None or code != 0):
        verdict, detail = Verdict.PIDS_LIMIT, f"process limit of {spec.pids} reached"
    elif sig is not None:
        verdict = Verdict.SIGNALED
    else:
        verdict = Verdict.EXITED
    if verdict in (Verdict.TIMEOUT, Verdict.OUTPUT_LIMIT) and sig is None and code is None:
        sig = _SIGKILL
    exit_code = exit_code_for(verdict, code, sig)
    return Result(
        verdict=verdict, exit_code=exit_code, signal=sig, detail=detail, wall_s=wall,
        user_s=user_s, sys_s=sys_s, peak_memory_bytes=peak, max_pids=max_pids,
        output_bytes=seen.output_bytes, run_id=run_id, stdout=bytes(seen.stdout),
        stderr=bytes(seen.stderr), denied=denied, setup_error=error,
        time_to_exec_s=None if seen.exec_time is None else seen.exec_time - started,
        notes=tuple(notes),
    )


def _rlimit_cpu(ctx: ChildContext, fallback: float) -> float:
    for name, _number, value in ctx.rlimits:
        if name == "cpu":
            return float(min(value, fallback))
    return fallback
