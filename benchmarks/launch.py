"""Launch cost, side by side: ``sandbox run`` (CLI), ``sandbox.run`` (API) and bubblewrap.

Run by hand (root, from the repository): ``.venv/bin/python benchmarks/launch.py``.
Not a test: timings depend on the machine and its load. Same isolation everywhere: new
user, pid, mount, net, ipc and uts namespaces, a fresh root with read-only /usr (and the
merged-/usr symlinks), /proc, a minimal /dev, a /tmp tmpfs, the compiled ``untrusted``
seccomp filter, all capabilities dropped. The sandbox additionally creates, limits and
removes a cgroup per run and writes four audit records; bubblewrap does neither.

Figures:

* ``python -c pass``: the interpreter's own start-up, the floor for any Python CLI.
* time-to-exec: from spawning the launcher until the program runs (the program is
  ``date +%s.%N``, printing the clock when it starts).
* per-run cost: wall time of one complete run of ``/bin/true``.
* runs/second with 2 running in parallel for a few seconds.

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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PYTHON = sys.executable


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _python_pass(n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        out.append(time.perf_counter() - start)
    return out


def _time_to_exec(cmd: list[str], n: int, env: dict[str, str], **kw: object) -> list[float]:
    """Seconds from spawn until the sandboxed ``date +%s.%N`` read the clock."""
    out = []
    for _ in range(n):
        start = time.time()
        done = subprocess.run(cmd, capture_output=True, env=env, check=False, **kw)  # type: ignore[call-overload]
        stamp = done.stdout.decode().split()
        if done.returncode != 0 or not stamp:
            raise SystemExit(f"failed: {cmd}\n{done.stderr.decode()}")
        out.append(float(stamp[0]) - start)
    return out


def _wall(cmd: list[str], n: int, env: dict[str, str], **kw: object) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        out.append(time.perf_counter() - start)
    return out


def _bwrap_cmd(bpf_fd: int, program: list[str]) -> list[str]:
    cmd = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
           "--hostname", "sandbox", "--die-with-parent", "--new-session",
           "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32"):
        path = Path("/") / name
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.exists():
            cmd += ["--ro-bind", str(path), f"/{name}"]
    for etc in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.exists(etc):
            cmd += ["--ro-bind", etc, etc]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--remount-ro", "/",
            "--seccomp", str(bpf_fd), "--cap-drop", "ALL", "--chdir", "/tmp", *program]
    return cmd


def _bwrap_run(bpf: bytes, program: list[str], capture: bool) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.write(write_end, bpf)  # a 5 KB filter fits in the pipe buffer
    os.close(write_end)
    try:
        return subprocess.run(_bwrap_cmd(read_end, program), pass_fds=(read_end,),
                              capture_output=capture, check=True)
    finally:
        os.close(read_end)


def _api_loop(spec: object, n: int, audit: str) -> list[float]:
    from sandbox.launch.api import run  # noqa: PLC0415 -- imported after sys.path is set

    out = []
    for _ in range(n):
        start = time.perf_counter()
        result = run(spec, ["/bin/true"], audit_log=audit)
        out.append(time.perf_counter() - start)
        if result.verdict != "exited":
            raise SystemExit(f"API run failed: {result}")
    return out


def _parallel_worker(kind: str, seconds: float, audit: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from sandbox.launch.api import run, spec_for  # noqa: PLC0415 -- in the worker process

    spec = spec_for("profile:untrusted")
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if kind == "api":
            run(spec, ["/bin/true"], audit_log=audit)
        elif kind == "bwrap":
            _bwrap_run(spec.bpf, ["/bin/true"], capture=False)
        else:
            subprocess.run([PYTHON, "-m", "sandbox.cli.main", "run", "--profile", "untrusted",
                            "--audit-log", audit, "--", "/bin/true"], check=True,
                           stderr=subprocess.DEVNULL, cwd=REPO)
        count += 1
    queue.put(count)


def _parallel(kind: str, seconds: float, audit: str) -> float:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_parallel_worker, args=(kind, seconds, audit, queue))
               for _ in range(2)]
    for w in workers:
        w.start()
    total = sum(queue.get() for _ in workers)
    for w in workers:
        w.join()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=30, help="runs per measurement")
    parser.add_argument("--seconds", type=float, default=5.0, help="parallel phase length")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the same isolation for bubblewrap needs it here)")
    if not args.no_compile:
        compileall.compile_dir(str(REPO / "sandbox"), quiet=1)
    from sandbox.launch.api import spec_for  # noqa: PLC0415 -- after compileall

    spec = spec_for("profile:untrusted")
    with tempfile.TemporaryDirectory() as tmp:
        audit = os.path.join(tmp, "audit.jsonl")
        env = {**os.environ, "SANDBOX_CACHE_DIR": os.path.join(tmp, "cache")}
        cli = [PYTHON, "-m", "sandbox.cli.main", "run", "--profile", "untrusted",
               "--audit-log", audit, "--"]
        # Warm up: fill the plan cache, the page cache and the bytecode.
        for _ in range(3):
            subprocess.run([*cli, "/bin/true"], env=env, cwd=REPO, check=True,
                           stderr=subprocess.DEVNULL)
            _bwrap_run(spec.bpf, ["/bin/true"], capture=False)
        _api_loop(spec, 3, audit)

        py = _python_pass(args.n)
        cli_tte = _time_to_exec([*cli, "date", "+%s.%N"], args.n, env, cwd=REPO)
        cli_wall = _wall([*cli, "/bin/true"], args.n, env, cwd=REPO,
                         stderr=subprocess.DEVNULL)
        api = _api_loop(spec, args.n * 3, audit)
        bw_tte = []
        bw = []
        for _ in range(args.n):
            start = time.time()
            done = _bwrap_run(spec.bpf, ["date", "+%s.%N"], capture=True)
            bw_tte.append(float(done.stdout.split()[0]) - start)
        for _ in range(args.n * 3):
            start = time.perf_counter()
            _bwrap_run(spec.bpf, ["/bin/true"], capture=False)
            bw.append(time.perf_counter() - start)
        rates = {kind: _parallel(kind, args.seconds, audit) for kind in ("api", "bwrap", "cli")}

    print(f"python -c pass            {_median_ms(py):7.1f} ms")
    print(f"CLI time-to-exec          {_median_ms(cli_tte):7.1f} ms   "
          f"(python -c pass + {_median_ms(cli_tte) - _median_ms(py):.1f} ms; target +10 ms)")
    print(f"CLI whole run (/bin/true) {_median_ms(cli_wall):7.1f} ms")
    print(f"bwrap time-to-exec        {_median_ms(bw_tte):7.1f} ms")
    print(f"bwrap whole run           {_median_ms(bw):7.1f} ms")
    print(f"API sandbox.run per run   {_median_ms(api):7.1f} ms   "
          f"(ratio to bwrap {statistics.median(api) / statistics.median(bw):.2f})")
    print(f"runs/second, 2 parallel:  API {rates['api']:.0f}   bwrap {rates['bwrap']:.0f}   "
          f"CLI {rates['cli']:.0f}")
    print(f"load average at the end:  {os.getloadavg()[0]:.2f} (other work on the machine "
          "skews every figure)")


if __name__ == "__main__":
    main()
