"""Launch cost, side by side: ``sandbox run`` (CLI), ``sandbox.run`` (API) and bubblewrap.

Run by hand (root, from the repository): ``.venv/bin/python benchmarks/launch.py``.
Not a test: timings depend on the machine and its load. Same isolation everywhere: new
user, pid, mount, net, ipc and uts namespaces, a fresh root with read-only /usr (and the
merged-/usr symlinks), /proc, a minimal /dev, a /tmp tmpfs, the compiled ``untrusted``
seccomp filter, all capabilities dropped. The sandbox additionally creates, limits and
removes a cgroup per run and writes four audit records; bubblewrap does neither.

Figures:

* ``python -c pass``: the interpreter's own start-up, the floor for any Python CLI.
* the CLI is the ``sandbox`` console script next to the interpreter (as installed).
* time-to-exec: from spawning the launcher until the program runs (the program is
  ``date +%s.%N``, printing the clock when it starts).
* per-run cost: wall time of one complete run of ``/bin/true``, taken alone (after the
  other variants ran) and in a loop of 10 runs that follow each other (the mean).
* runs/second with 2 running in parallel for a few seconds.
* the API once more without the run's cgroup, which bubblewrap does not make: what the
  cgroup costs (a by-hand comparison only; real runs always have it).

The single-run variants are interleaved (one sample of each per round, in a rotating
order) so that a burst of other work on the machine hits all of them alike; each is
reported as median and 90th percentile. The parallel phases alternate in rounds too. The
load average is printed before and after: a high one means the figures are inflated.

The interpreter is the venv's, called directly (not a pyenv shim). Installed packages
have their bytecode compiled by pip; the repository checkout may not (and this machine
sets PYTHONDONTWRITEBYTECODE), so ``--compile`` (the default) byte-compiles ``sandbox/``
first, as an installation would.
"""

from __future__ import annotations

import argparse
import compileall
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PYTHON = sys.executable
# The command users run: the console script pip installed beside the interpreter (its
# shebang is this interpreter). `python -m sandbox.cli.main` would add runpy and
# importlib.util (~4 ms) that `sandbox run` never loads.
_SCRIPT = os.path.join(os.path.dirname(PYTHON), "sandbox")
CLI = [_SCRIPT] if os.access(_SCRIPT, os.X_OK) else [PYTHON, "-m", "sandbox.cli.main"]


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _p90_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000


def _python_pass() -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-c", "pass"], check=True)
    return time.perf_counter() - start


def _time_to_exec(cmd: list[str], env: dict[str, str] | None = None, **kw: object) -> float:
    """Seconds from spawn until the sandboxed ``date +%s.%N`` read the clock."""
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, env=env, check=False, **kw)  # type: ignore[call-overload]
    stamp = done.stdout.decode().split()
    if done.returncode != 0 or not stamp:
        raise SystemExit(f"failed: {cmd}\n{done.stderr.decode()}")
    return float(stamp[0]) - start


def _wall(cmd: list[str], env: dict[str, str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def _bwrap_cmd(spec: Any, bpf_fd: int, program: list[str]) -> list[str]:
    """bubblewrap with the untrusted profile's isolation, mount step for mount step.

    Derived from the same launch spec the sandbox runs: binds (a source that is a
    symlink recreated as one, as ours does), tmpfs with its size, /proc, /dev, masked
    paths (/dev/null over a file, an empty read-only tmpfs over a directory). Not
    reproducible in bubblewrap, so left out (the sandbox does them on top): the
    read-only rebinds of /proc/sys and friends (bubblewrap binds from the host's
    /proc, not the sandbox's), hidepid, the cgroup and its limits, rlimits, the audit
    record, the verification read-backs.
    """
    cmd = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
           "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    # A masked path exists in the sandbox only below what was mounted there (there is
    # no /sys in it, so /sys/firmware is not masked by either tool).
    mounted = tuple(step["dst"].rstrip("/") + "/" for step in spec.mounts
                    if step["kind"] in ("proc", "dev", "bind", "tmpfs"))
    for step in spec.mounts:
        kind, dst = step["kind"], step["dst"]
        src = step.get("src") or ""
        if kind == "proc":
            cmd += ["--proc", dst]
        elif kind == "dev":
            cmd += ["--dev", dst]
        elif kind == "bind":
            if os.path.islink(src):
                cmd += ["--symlink", os.readlink(src), dst]
            elif os.path.exists(src) or not step["optional"]:
                cmd += ["--bind" if step["writable"] else "--ro-bind", src, dst]
        elif kind == "tmpfs":
            if step["size"]:
                cmd += ["--size", str(step["size"])]
            cmd += ["--perms", f"{step['mode']:o}", "--tmpfs", dst]
        elif kind == "mask" and dst.startswith(mounted) and os.path.lexists(dst):
            if os.path.isdir(dst) and not os.path.islink(dst):
                cmd += ["--tmpfs", dst, "--remount-ro", dst]
            else:
                cmd += ["--ro-bind", "/dev/null", dst]
    cmd += ["--remount-ro", "/", "--seccomp", str(bpf_fd), "--cap-drop", "ALL",
            "--chdir", "/tmp", *program]
    return cmd


def _bwrap_run(spec: Any, program: list[str], capture: bool) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.write(write_end, spec.bpf)  # a 5 KB filter fits in the pipe buffer
    os.close(write_end)
    try:
        return subprocess.run(_bwrap_cmd(spec, read_end, program), pass_fds=(read_end,),
                              capture_output=capture, check=True)
    finally:
        os.close(read_end)


def _no_cgroup() -> None:
    """Make this process's launches skip the run's cgroup: bubblewrap makes none.

    Only to show what the cgroup costs (on this VM five v1 hierarchies: a directory,
    limits, a join and a removal in each per run); a real run never skips it unless its
    policy allows running without limits.
    """
    from sandbox.launch import parent  # noqa: PLC0415 -- after sys.path is set

    parent._open_cgroup = lambda spec, run_id: (None, None)


def _api_once_no_cgroup(spec: object, audit: str) -> float:
    from sandbox.launch import parent  # noqa: PLC0415

    kept = parent._open_cgroup
    _no_cgroup()
    try:
        return _api_once(spec, audit)
    finally:
        parent._open_cgroup = kept


def _api_once(spec: object, audit: str) -> float:
    from sandbox.launch.api import run  # noqa: PLC0415 -- imported after sys.path is set

    start = time.perf_counter()
    result = run(spec, ["/bin/true"], audit_log=audit)
    took = time.perf_counter() - start
    if result.verdict != "exited":
        raise SystemExit(f"API run failed: {result}")
    return took


_LOOP = 10


def _per_run(once: Callable[[], float]) -> float:
    """Mean time per run of ``_LOOP`` runs back to back."""
    return sum(once() for _ in range(_LOOP)) / _LOOP


def _bwrap_tte(spec: Any) -> float:
    start = time.time()
    done = _bwrap_run(spec, ["date", "+%s.%N"], capture=True)
    return float(done.stdout.split()[0]) - start


def _bwrap_wall(spec: Any) -> float:
    start = time.perf_counter()
    _bwrap_run(spec, ["/bin/true"], capture=False)
    return time.perf_counter() - start


def _parallel_worker(kind: str, seconds: float, audit: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from sandbox.launch.api import run, spec_for  # noqa: PLC0415 -- in the worker process

    spec = spec_for("profile:untrusted")
    if kind == "api-no-cgroup":
        _no_cgroup()
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if kind in ("api", "api-no-cgroup"):
            run(spec, ["/bin/true"], audit_log=audit)
        elif kind == "bwrap":
            _bwrap_run(spec, ["/bin/true"], capture=False)
        else:
            subprocess.run([*CLI, "run", "--profile", "untrusted", "--audit-log", audit, "--",
                            "/bin/true"], check=True, stderr=subprocess.DEVNULL, cwd=REPO)
        count += 1
    queue.put(count)


def _parallel_count(kind: str, seconds: float, audit: str) -> int:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_parallel_worker, args=(kind, seconds, audit, queue))
               for _ in range(2)]
    for w in workers:
        w.start()
    total = sum(queue.get() for _ in workers)
    for w in workers:
        w.join()
    return total


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=30, help="rounds (each variant once per round)")
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="parallel phase length per variant (split into rounds)")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the same isolation for bubblewrap needs it here)")
    if not args.no_compile:
        compileall.compile_dir(str(REPO / "sandbox"), quiet=1)
    from sandbox.launch.api import spec_for  # noqa: PLC0415 -- after compileall

    spec = spec_for("profile:untrusted")
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        audit = os.path.join(tmp, "audit.jsonl")
        # The parallel workers inherit it too: every CLI run then uses the warm cache.
        os.environ["SANDBOX_CACHE_DIR"] = os.path.join(tmp, "cache")
        env = dict(os.environ)
        cli = [*CLI, "run", "--profile", "untrusted", "--audit-log", audit, "--"]
        # Warm up: fill the plan cache, the page cache and the bytecode.
        for _ in range(3):
            subprocess.run([*cli, "/bin/true"], env=env, cwd=REPO, check=True,
                           stderr=subprocess.DEVNULL)
            _bwrap_run(spec, ["/bin/true"], capture=False)
            _api_once(spec, audit)

        # Interleaved: each round takes one sample of every variant (in a rotating
        # order), so a burst of load on the machine hits all of them alike.
        variants: dict[str, Callable[[], float]] = {
            "python -c pass": _python_pass,
            "CLI time-to-exec": lambda: _time_to_exec([*cli, "date", "+%s.%N"], env, cwd=REPO),
            "CLI whole run": lambda: _wall([*cli, "/bin/true"], env, cwd=REPO,
                                           stderr=subprocess.DEVNULL),
            "bwrap time-to-exec": lambda: _bwrap_tte(spec),
            "bwrap whole run": lambda: _bwrap_wall(spec),
            "API sandbox.run": lambda: _api_once(spec, audit),
            # "in a loop", as the issue puts it: runs that follow each other, per run.
            "bwrap in a loop": lambda: _per_run(lambda: _bwrap_wall(spec)),
            "API in a loop": lambda: _per_run(lambda: _api_once(spec, audit)),
            "API loop, no cgroup": lambda: _per_run(lambda: _api_once_no_cgroup(spec, audit)),
        }
        samples: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for i in range(args.n):
            for name in names[i % len(names):] + names[:i % len(names)]:
                samples[name].append(variants[name]())
        rounds = 3
        counts = {kind: 0 for kind in ("api", "bwrap", "cli", "api-no-cgroup")}
        for _ in range(rounds):
            for kind in counts:
                counts[kind] += _parallel_count(kind, args.seconds / rounds, audit)
        rates = {kind: count / args.seconds for kind, count in counts.items()}

    py = statistics.median(samples["python -c pass"])
    print(f"{'':26}{'median':>9}{'p90':>9}")
    for name, values in samples.items():
        extra = ""
        if name == "CLI time-to-exec":
            extra = f"   (python -c pass + {(statistics.median(values) - py) * 1000:.1f} ms; " \
                    "target +10 ms)"
        elif name == "API sandbox.run":
            ratio = statistics.median(values) / statistics.median(samples["bwrap whole run"])
            extra = f"   (ratio to bwrap whole run {ratio:.2f})"
        elif name in ("API in a loop", "API loop, no cgroup"):
            ratio = statistics.median(values) / statistics.median(samples["bwrap in a loop"])
            extra = f"   (ratio to bwrap in a loop {ratio:.2f})"
        print(f"{name:26}{_median_ms(values):7.1f}ms{_p90_ms(values):7.1f}ms{extra}")
    print(f"runs/second, 2 parallel:  API {rates['api']:.0f}   bwrap {rates['bwrap']:.0f}   "
          f"CLI {rates['cli']:.0f}   (API without its cgroup {rates['api-no-cgroup']:.0f})")
    print(f"load average (1/5/15 min) before: {load_before}   after: {_load()}  "
          "(other work on the machine skews every figure)")


if __name__ == "__main__":
    main()
