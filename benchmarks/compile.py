"""Benchmark: load + validate + compile each profile, and the cost of the filters it makes.

Run by hand with the venv's interpreter (not the pyenv shim):

    .venv/bin/python benchmarks/compile.py [--repeat 20]

Prints, per built-in profile, the median time to load/validate and to compile, the BPF
instruction count, and the number of BPF instructions the kernel executes for a common
syscall (read) and a late one (openat2). Then it compares our docker-default filter with
Docker's default profile compiled by libseccomp's defaults (linear layout, the x86_64,
x86 and x32 architectures of Docker's archMap), syscall by syscall, as the issue's target
asks: ours must execute fewer instructions for every allowed syscall.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyseccomp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.compile import bpf  # noqa: E402
from sandbox.compile.plan_builder import compile_policy  # noqa: E402
from sandbox.policy.docker_import import DOCKER_DEFAULT_CAPABILITIES  # noqa: E402
from sandbox.policy.load import available_profiles, load_profile  # noqa: E402
from sandbox.policy.syscall_table import native_number  # noqa: E402

FLOOR = 5
FIXTURE = ROOT.parent / "shared" / "fixtures" / "docker-default-seccomp.json"
_OPS = {"SCMP_CMP_EQ": pyseccomp.EQ, "SCMP_CMP_NE": pyseccomp.NE, "SCMP_CMP_LT": pyseccomp.LT,
        "SCMP_CMP_LE": pyseccomp.LE, "SCMP_CMP_GT": pyseccomp.GT, "SCMP_CMP_GE": pyseccomp.GE,
        "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ}


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def executed(program: tuple[bpf.Instruction, ...], nr: int) -> int:
    return bpf.simulate(program, bpf.SeccompData(nr=nr)).executed


def docker_reference_filter(path: Path) -> tuple[bpf.Instruction, ...]:
    """Docker's default profile built the way Docker builds it: libseccomp defaults."""
    profile = json.loads(path.read_text())
    caps = set(DOCKER_DEFAULT_CAPABILITIES)
    f = pyseccomp.SyscallFilter(pyseccomp.ERRNO(profile.get("defaultErrnoRet", 1)))
    f.add_arch(pyseccomp.Arch.X86)
    f.add_arch(pyseccomp.Arch.X32)
    for entry in profile["syscalls"]:
        inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if exc.get("arches") and "amd64" in exc["arches"]:
            continue
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        action = {"SCMP_ACT_ALLOW": pyseccomp.ALLOW}.get(
            entry["action"], pyseccomp.ERRNO(entry.get("errnoRet", 1))
        )
        args = [pyseccomp.Arg(a["index"], _OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                for a in entry.get("args") or ()]
        for name in entry["names"]:
            # Names this libseccomp does not know: Docker skips them too.
            with contextlib.suppress(OSError, ValueError):
                f.add_rule(action, name, *args)
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return bpf.decode(out.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    print(f"{'profile':<16}{'load ms':>10}{'compile ms':>12}{'insns':>8}"
          f"{'read':>7}{'openat2':>9}")
    programs = {}
    for name in available_profiles():
        loads, compiles = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            policy = load_profile(name)
            t1 = time.perf_counter()
            plan = compile_policy(policy)
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            compiles.append(t2 - t1)
        program = bpf.decode(plan.seccomp.bpf)
        programs[name] = (policy, program)
        print(f"{name:<16}{median_ms(loads):>10.2f}{median_ms(compiles):>12.2f}"
              f"{len(program):>8}{executed(program, 0):>7}{executed(program, 437):>9}")

    if not FIXTURE.exists():
        print(f"\n(skipping the Docker comparison: {FIXTURE} not found)")
        return 0
    reference = docker_reference_filter(FIXTURE)
    ours_policy, ours = programs["docker-default"]
    allowed = sorted({r.syscall for r in ours_policy.seccomp.rules
                      if r.action.action.grants and native_number(r.syscall) >= 0})
    worse = []
    ours_counts, ref_counts = [], []
    for name in allowed:
        nr = native_number(name)
        a, b = executed(ours, nr), executed(reference, nr)
        ours_counts.append(a)
        ref_counts.append(b)
        # Five instructions is the floor for any filter that checks the architecture
        # (load arch, compare, load number, compare, return): a tie there is the best
        # anyone can do.
        if a > b or (a == b and a > FLOOR):
            worse.append((name, a, b))
    print(f"\ndocker-default vs Docker's profile built by libseccomp defaults "
          f"({len(reference)} insns, linear, 3 arches):")
    print(f"  allowed syscalls compared: {len(allowed)}")
    print(f"  instructions executed, ours:   median {statistics.median(ours_counts):.0f}, "
          f"max {max(ours_counts)}")
    print(f"  instructions executed, Docker: median {statistics.median(ref_counts):.0f}, "
          f"max {max(ref_counts)}")
    print(f"  ratio of medians (ours/Docker): "
          f"{statistics.median(ours_counts) / statistics.median(ref_counts):.2f}")
    nr_read, nr_openat2 = 0, 437
    print(f"  read:    ours {executed(ours, nr_read)}, Docker {executed(reference, nr_read)}")
    print(f"  openat2: ours {executed(ours, nr_openat2)}, Docker {executed(reference, nr_openat2)}")
    if worse:
        print(f"  TARGET MISSED for {len(worse)} syscalls, e.g. {worse[:5]}")
        return 1
    ties = [n for n, a, b in zip(allowed, ours_counts, ref_counts, strict=True) if a == b]
    print("  target met: fewer instructions for every allowed syscall"
          + (f", except a tie at the {FLOOR}-instruction floor for {', '.join(ties)}"
             if ties else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
