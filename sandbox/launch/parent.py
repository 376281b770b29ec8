"""The parent-side timeline: prepare, spawn, map ids, cgroup, release, supervise.

Read `launch` top to bottom: it is the order of events on the launcher's side, each step
with the reason it is there. The child side is the native ``sandbox-spawn``
(``native/spawn.c``, started by spawner.py). Everything the child needs is computed here
*before* it starts (it looks nothing up); what only the parent needs (audit writer, the
verdict's dataclasses) is imported after, while the child is busy, so the two costs
overlap; so is creating the run's cgroup (step 5).
"""

from __future__ import annotations

import _socket
import _thread
import errno
import os
import select
import sys
import time

from sandbox.launch import seccomp_notify, spawner, userns
from sandbox.launch.context import NAMESPACE_FLAGS, ChildContext
from sandbox.launch.errors import SetupError
from sandbox.launch.rlimits import resolve_rlimits
from sandbox.launch.supervise import Observed, Supervisor

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
# The C module: `signal` builds three enums on import, on the launch path (the typing
# stubs only know `signal`).
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal
if TYPE_CHECKING:
    from typing import Any

    from sandbox.launch.spec import LaunchSpec
    from sandbox.launch.verdict import Result

__all__ = ["IO", "launch"]

_LAST_CAP: list[int] = []
# When this process next sweeps stale cgroups (see step 6 of `launch`).
_SWEEP_INTERVAL_S = 1.0
_NEXT_SWEEP = [0.0]
# Set to a list to record (step, time.perf_counter()) for each parent-side step: the
# benchmark's breakdown of where a launch spends its time.
TRACE: list[tuple[str, float]] | None = None


def _mark(step: str) -> None:
    if TRACE is not None:
        TRACE.append((step, time.perf_counter()))


class IO:
    """Where the program's standard streams come from and go to.

    ``stdin``: None (/dev/null), an fd (passed as is) or bytes (fed through a pipe).
    ``stdout``/``stderr``: an fd to relay to, None to capture into the Result.
    ``relay``: False passes the output fds straight through (no counting; only when
    no output limit applies).
    """

    __slots__ = ("relay", "stderr", "stdin", "stdout")

    def __init__(self, stdin: int | bytes | None = None, stdout: int | None = None,
                 stderr: int | None = None, relay: bool = True) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.relay = relay


def _last_cap() -> int:
    if not _LAST_CAP:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as handle:
                _LAST_CAP.append(int(handle.read()))
        except OSError:
            _LAST_CAP.append(40)
    return _LAST_CAP[0]


def _map_words(ranges: list[tuple[int, int, int]]) -> str:
    return " ".join(f"{a} {b} {c}" for a, b, c in ranges)


def prepare(spec: LaunchSpec, argv: list[str], *, cwd: str | None,
            env: dict[str, str] | None) -> ChildContext:
    """Decide everything the child will do, before it starts. Raises SetupError."""
    if not argv:
        raise SetupError("argv", errno.EINVAL, None, "no command given")
    namespaces = set(spec.namespaces)
    if spec.network not in ("none", "loopback", "private", "host"):
        # Fail closed: a network mode this launcher cannot build is not silently "host".
        raise SetupError("network", errno.EOPNOTSUPP, None,
                         f"network mode {spec.network!r} is not supported by this launcher")
    if spec.network != "host" and "net" not in namespaces:
        raise SetupError("network", errno.EINVAL, None,
                         f"network mode {spec.network!r} needs a network namespace")
    if spec.mounts and "mount" not in namespaces:
        raise SetupError("mounts", errno.EINVAL, None, "mount steps need a mount namespace")
    if "user" not in namespaces and os.geteuid() != 0:
        raise SetupError("unshare", errno.EPERM, None, "without a user namespace only root can")
    ctx = ChildContext()
    ctx.argv = list(argv)
    ctx.launcher_pid = os.getpid()
    ctx.unshare_flags = 0
    for name in spec.namespaces:
        if name != "cgroup":
            ctx.unshare_flags |= NAMESPACE_FLAGS[name]
    ctx.new_pid = "pid" in namespaces
    ctx.new_mount = "mount" in namespaces
    ctx.new_cgroup = "cgroup" in namespaces
    ctx.caller_uid = os.geteuid()
    ctx.drop_groups = os.geteuid() == 0 and "user" in namespaces
    ctx.setup_uid = userns.setup_ids(spec.uid_map, spec.uid) if "user" in namespaces else 0
    ctx.setup_gid = userns.setup_ids(spec.gid_map, spec.gid) if "user" in namespaces else 0
    ctx.uid_map_text = _map_words(spec.uid_map) if "user" in namespaces else None
    ctx.gid_map_text = _map_words(spec.gid_map) if "user" in namespaces else None
    ctx.mounts = spec.mounts
    ctx.hostname = spec.hostname if "uts" in namespaces else None
    ctx.loopback = spec.network == "loopback"
    ctx.uid = spec.uid
    ctx.gid = spec.gid
    ctx.keep = list(spec.caps_keep)
    ctx.keep_mask = 0
    for cap in ctx.keep:
        ctx.keep_mask |= 1 << cap
    ctx.last_cap = _last_cap()
    ctx.rlimits = resolve_rlimits(spec.rlimits)
    environment: dict[str, str] = {}
    for name, value in spec.env:
        if value is not None:
            environment[name] = value
        elif name in os.environ:
            environment[name] = os.environ[name]
    if env:
        environment.update(env)
    ctx.env = environment
    ctx.cwd = cwd or spec.process_cwd
    ctx.path_dirs = environment.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")
    ctx.notify = spec.notify_bpf is not None
    bpf = spec.notify_bpf if spec.notify_bpf is not None else spec.bpf
    ctx.bpf = bpf
    ctx.verify_seccomp = spec.verify_seccomp
    return ctx


class _Audit:
    """The run's audit log; emits are best-effort once the program runs."""

    def __init__(self, log: Any, run_id: str, spec: LaunchSpec, argv: list[str]) -> None:
        self.log = log
        self.run_id = run_id
        self.spec = spec
        self.argv = argv
        self.started = False
        self.problems: list[str] = []

    def emit(self, event: str, **fields: object) -> None:
        self.emit_many([(event, fields)])

    def emit_many(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Write the records in one batch, preceded by ``run.start`` if not yet written."""
        if not self.started:
            self.started = True
            records = [self._start_record(), *records]
        if self.log is None or not records:
            return
        try:
            self.log.emit_many([(event, {"run_id": self.run_id, **fields})
                                for event, fields in records])
        except (OSError, ValueError) as exc:
            self.problems.append(f"audit {', '.join(e for e, _ in records)}: {exc}")

    def start(self) -> None:
        """Write ``run.start`` (once)."""
        self.emit_many([])

    def _start_record(self) -> tuple[str, dict[str, Any]]:
        spec = self.spec
        try:
            cwd = os.getcwd()
        except OSError:
            cwd = "?"
        return ("run.start", {
            "host": os.uname().nodename, "caller_uid": os.getuid(),
            "caller_gid": os.getgid(), "argv": list(self.argv), "cwd": cwd,
            "policy_name": spec.policy_name, "policy_sha256": spec.policy_sha256,
            "bpf_sha256": spec.bpf_sha256, "tool_version": spec.tool_version,
            "kernel": os.uname().release,
            "libseccomp_version": spec.libseccomp_version or None,
            "plan_summary": spec.plan_summary(),
        })

    def head(self) -> str | None:
        if self.log is None:
            return None
        try:
            return str(self.log.head())
        except (OSError, ValueError):
            return None


def _open_audit(spec: LaunchSpec, path: str | None) -> tuple[Any, str | None]:
    """(log or None, note). Fails closed when the policy requires the audit record."""
    from sandbox.audit.writer import AuditLog, AuditUnavailable, default_log_file  # noqa: PLC0415

    target = path or spec.audit_log or default_log_file()
    try:
        return AuditLog.open(target), None
    except AuditUnavailable as exc:
        if spec.audit_required:
            raise SetupError("audit", exc.errno or errno.EIO, str(target), str(exc)) from None
        return None, f"running without an audit record: {exc}"


def _open_cgroup(spec: LaunchSpec, run_id: str) -> tuple[Any, str | None]:
    """(RunCgroup or None, degraded note). Refuses the run unless degrading is allowed."""
    from sandbox.launch.cgroups import CgroupUnavailable, RunCgroup  # noqa: PLC0415

    try:
        return RunCgroup.create(run_id, spec,  # type: ignore[arg-type]
                                pid_namespace="pid" in spec.namespaces), None
    except CgroupUnavailable as exc:
        reason = getattr(exc, "reason", str(exc))
        if spec.needs_cgroup() and "cgroup-limits" not in spec.degrade:
            raise SetupError("cgroup", exc.errno or errno.EACCES, getattr(exc, "path", None),
                             f"{reason}; set degrade = [\"cgroup-limits\"] to run without "
                             "memory/pids/cpu limits") from None
        return None, f"no cgroup: {reason}"


class _CgroupMove:
    """Move the holder into the run's cgroup on a helper thread (v2; v1 joins itself).

    Why a thread: the first move into a cgroup from outside after a quiet spell waits
    for an RCU grace period (5-30 ms on a loaded 2-CPU VM) before the kernel takes its
    lock. On its own thread that wait overlaps the child's unshare, the id maps, the
    audit log and pid 1's root build instead of following them. Why the holder: it is
    the first process of the run, it exists as soon as it is spawned, and its pid is
    ours until we reap it; pid 1 and the program then start inside (pid 1 is moved
    again in case it was forked before the move finished). The thread starts after the
    spawn and is joined before the gate opens and before the holder can be reaped.
    """

    def __init__(self, cgroup: Any, holder: int) -> None:
        self.error: SetupError | None = None
        self._done = _thread.allocate_lock()
        if cgroup is not None:
            self._done.acquire()
            _thread.start_new_thread(self._run, (cgroup, holder))

    def _run(self, cgroup: Any, holder: int) -> None:
        try:
            cgroup.attach(holder)
        except OSError as exc:
            self.error = SetupError("cgroup", exc.errno or errno.EIO, None, f"attach: {exc}")
        except BaseException as exc:  # reported by the launching thread, which raises it
            self.error = SetupError("cgroup", errno.EIO, None, f"{type(exc).__name__}: {exc}")
        finally:
            self._done.release()

    def finish(self) -> None:
        """Wait for the thread (if one runs), whatever happened."""
        with self._done:
            pass

    def result(self) -> None:
        """Wait for the thread; SetupError if the move failed."""
        self.finish()
        if self.error is not None:
            raise self.error


def launch(spec: LaunchSpec, argv: list[str], *, io: IO | None = None, cwd: str | None = None,
           env: dict[str, str] | None = None, audit_log: str | None = None,
           forward_signals: bool = False) -> Result:
    """Run ``argv`` in a sandbox built from ``spec``; return the Result (never raises for
    a sandbox problem: that is verdict ``setup-failed``)."""
    started = time.monotonic()
    run_id = os.urandom(16).hex()
    io = io or IO()
    # 1. Decide everything before fork; a plan this launcher cannot apply stops here.
    notes: list[str] = []
    cgroup: Any = None
    try:
        ctx = prepare(spec, argv, cwd=cwd, env=env)
        # 1b. A private network: pin the allowed names and write the sandbox's
        #     /etc/hosts and /etc/resolv.conf now, so pid 1 binds them read-only while it
        #     builds the root; the link itself needs the child's namespace (step 6b).
        prepared = _prepare_network(spec, run_id, ctx) if spec.network == "private" else None
    except SetupError as exc:
        if cgroup is not None:
            _remove_cgroup(cgroup)
        return _setup_failed(spec, argv, run_id, started, exc, None, notes)
    _mark("prepared")
    # 2. The channels. All close-on-exec; the child moves what it keeps to fixed numbers.
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    sync, sync_child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    stdin_fd, stdin_w, stdin_data, close_after_spawn = _stdin(io)
    outputs: dict[int, int | None] = {}
    child_out: list[int] = []
    stdout_r = None
    for target in (io.stdout, io.stderr):
        if io.relay or target is None:
            r, w = os.pipe2(os.O_CLOEXEC)
            outputs[r] = target
            child_out.append(w)
            close_after_spawn.append(w)
            if stdout_r is None:
                stdout_r = r
        else:
            child_out.append(target)
    ctx.stdio = (stdin_fd, child_out[0], child_out[1])
    _mark("channels")
    # 3. Start the child side, the native sandbox-spawn, with posix_spawn: nothing of
    #    this process is copied (see spawner.py for why that matters), and the helper
    #    gets exactly its channels and the context, no other descriptor of ours.
    try:
        pid = spawner.spawn(ctx, ctx.stdio, err_w, status_w, sync_child.fileno())
    except SetupError as exc:
        for fd in (err_r, err_w, status_r, status_w, *outputs, *close_after_spawn):
            os.close(fd)
        sync.close()
        sync_child.close()
        if stdin_w is not None:
            os.close(stdin_w)
        _end_network(None, prepared)
        return _setup_failed(spec, argv, run_id, started, exc, None, notes)
    _mark("spawned")
    # 4. The parent keeps only its own ends.
    for fd in (err_w, status_w, *close_after_spawn):
        os.close(fd)
    sync_child.close()
    pidfd = os.pidfd_open(pid)
    audit: _Audit | None = None
    net: Any = None
    init_pid: int | None = None
    init_pidfd: int | None = None
    mover: _CgroupMove | None = None
    join: list[int] = []
    join_sent = False
    try:
        # 5. While the child unshares (a new network namespace takes a millisecond): the
        #    run's cgroup, its limits written and read back (no group, no run, unless the
        #    policy allows running without limits). On v1 the holder joins it by itself
        #    (see V1Group.join_fds: no global lock, no RCU wait), through the group's
        #    tasks files handed over with "G" below. Otherwise the holder is moved into it
        #    on a helper thread (see _CgroupMove: that move waits for an RCU grace
        #    period, which should start as early as possible); the group is made on this
        #    thread first, so the helper thread only waits in the kernel.
        cgroup, note = _open_cgroup(spec, run_id)
        if note:
            notes.append(note)
        join = _join_fds(cgroup)
        _mark("cgroup_created")
        mover = _CgroupMove(None if join else cgroup, pid)
        # 6. The child has its namespaces: write its id maps through a pidfd-checked
        #    /proc handle; only then may it go on (as an id of its own namespace).
        if sync.recv(16) != b"U":
            raise _child_failed(err_r)
        _mark("unshared")
        if "user" in spec.namespaces:
            userns.write_id_maps(pid, pidfd, userns.map_text(spec.uid_map),
                                 userns.map_text(spec.gid_map), spec.setgroups_deny)
        _mark("id_maps")
        if join:
            sync.sendmsg([b"G"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                   b"".join(fd.to_bytes(4, sys.byteorder) for fd in join))])
            for fd in join:
                os.close(fd)
            join_sent = True
        else:
            sync.send(b"G")
        # The audit log (fail closed: no record, no run), while pid 1 builds the root
        # and the helper thread waits in the kernel: not earlier, where its imports
        # would hold the interpreter lock the helper thread needs to create the group.
        log, note = _open_audit(spec, audit_log)
        if note:
            notes.append(note)
        _mark("audit_open")
        audit = _Audit(log, run_id, spec, argv)
        # A launcher killed with SIGKILL cannot remove its cgroup; later runs remove
        # such leftovers, here, where the launcher waits for pid 1 to build the root
        # anyway: the first run of every launcher process, then at most once a second
        # (a sweep lists every hierarchy: a loop of runs need not pay it each time).
        if cgroup is not None and time.monotonic() >= _NEXT_SWEEP[0]:
            from sandbox.launch.cgroups import cleanup_stale  # noqa: PLC0415

            _NEXT_SWEEP[0] = time.monotonic() + _SWEEP_INTERVAL_S
            try:
                cleanup_stale()
            except OSError:
                pass
        # run.start states what is about to run, not what was applied, so it may be
        # written before exec: here, while waiting, if rendering costs no import (the
        # first run of a process renders after exec instead, see on_exec).
        if log is not None:
            from sandbox.audit.writer import rendering_ready  # noqa: PLC0415 -- loaded

            if rendering_ready():
                audit.start()
        _mark("stale_swept")
        # 6b. The private link while pid 1 builds the root: the veth into the holder's
        #     network namespace, both filters, then the link up (net_private). The
        #     program cannot exist yet: the gate (step 7) is still closed.
        if prepared is not None:
            net = _attach_network(prepared, pid)
        _mark("network")
        # 7. The process that will fork the program must be in the cgroup before the
        #    gate ("X") opens. With a pid namespace that is pid 1. On v1 the holder
        #    joined before forking it, so pid 1 is only checked to be listed; otherwise
        #    the holder may have forked it before its own move finished, so it is moved
        #    too, as soon as its host pid arrives ("P") and the holder's move is done
        #    (the lock is then warm: this move is fast). Its pid cannot be recycled
        #    under us: the holder does not reap it before the gate opens. Without a pid
        #    namespace it is the holder itself, our own unreaped child. Nothing of the
        #    program exists before the gate opens, and the gate opens only after the
        #    moves were verified.
        ready = attached = False
        while not (ready and attached):
            msg = _next_message(sync, init_pidfd, err_r)
            if not msg:
                raise _child_failed(err_r)
            if msg.startswith(b"P"):
                init_pid = int(msg[1:])
                try:
                    init_pidfd = os.pidfd_open(init_pid)
                except OSError as exc:
                    raise SetupError("pidfd", exc.errno or errno.ESRCH, None,
                                     "pid 1") from None
                mover.result()
                _mark("holder_moved")
                if join_sent:
                    _check_joined(cgroup, init_pid, err_r)
                else:
                    _attach(cgroup, init_pid, err_r)
                attached = True
            elif msg == b"R":
                _mark("child_at_gate")
                ready = True
                if not ctx.new_pid:
                    mover.result()
                    _mark("holder_moved")
                    if join_sent:
                        _check_joined(cgroup, pid, err_r)
                    attached = True
        _mark("cgroup_attached")
        # One "X" for each process waiting at the gate: pid 1 and the holder (which
        # keeps pid 1 unreaped until then), or the holder alone.
        sync.send(b"X")
        if ctx.new_pid:
            sync.send(b"X")
    except SetupError as exc:
        # The helper thread must be done before the holder is reaped: until then it
        # may still write the holder's pid, which reaping would free for reuse.
        if mover is not None:
            mover.finish()
        if not join_sent:
            for fd in join:
                seccomp_notify.close_quietly(fd)
        _abort(pid, pidfd, init_pidfd)
        for fd in (err_r, status_r, *outputs):
            os.close(fd)
        sync.close()
        if stdin_w is not None:
            os.close(stdin_w)
        if cgroup is not None:
            _remove_cgroup(cgroup)
        _end_network(net, prepared)
        return _setup_failed(spec, argv, run_id, started, exc, audit, notes)

    def on_exec() -> None:
        # The program runs: only now pay for rendering these records (run.start first,
        # unless it was written while pid 1 built the root), all in one write.
        assert audit is not None
        # Each step below was applied and verified before exec (a failure would have
        # ended the run with setup-failed), so the record states what the program got.
        steps: list[tuple[str, dict[str, Any]]] = [
            ("namespaces", {"created": list(spec.namespaces), "hostname": spec.hostname,
                            "network": spec.network}),
            ("idmap", {"mode": spec.idmap_mode, "uid_map": [list(r) for r in spec.uid_map],
                       "gid_map": [list(r) for r in spec.gid_map],
                       "setgroups": "deny" if spec.setgroups_deny else "allow"}),
            ("mounts", {"steps": len(spec.mounts), "root": "tmpfs, read-only",
                        "binds": [m.get("dst") for m in spec.mounts if m.get("kind") == "bind"]}),
            ("rlimits", dict(spec.rlimits)),
            ("capabilities", {"kept": list(spec.capability_names), "sets": "all five"}),
            ("no_new_privs", {"verified": True}),
        ]
        if cgroup is not None:
            steps.append(("cgroup", cgroup.describe()))
        steps.extend(("degraded", {"note": line}) for line in notes)
        steps.append(("seccomp", {"notifier": ctx.notify, "instructions": spec.instructions}))
        if net is not None:
            steps.append(("network", {
                "mode": "private", "egress": net.plan.egress, "interface": net.host_if,
                "address": net.sandbox_address, "gateway": net.host_address,
                "pinned": {k: list(v) for k, v in net.pinned.items()},
                "warnings": list(net.warnings)}))
        audit.emit_many([("run.step", {"step": step, "details": details})
                         for step, details in steps])

    supervisor = Supervisor(
        holder_pid=pid, holder_pidfd=pidfd, err_r=err_r, sync=sync, status_r=status_r,
        outputs=outputs, stdout_r=stdout_r, stdin_w=stdin_w, stdin_data=stdin_data,
        cgroup=cgroup, wall_time_s=spec.wall_time_s, cpu_time_s=spec.cpu_time_s,
        output_limit=spec.output_bytes, on_exec=on_exec,
    )
    supervisor.init_pidfd = init_pidfd
    previous = _install_forwarding(supervisor) if forward_signals else {}
    _mark("released")
    try:
        seen = supervisor.run(started)
        _mark("program_done")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        # 8. Only when every process is gone: the listener, the pidfds, the cgroup.
        supervisor.kill(None)
        usage = _remove_cgroup(cgroup) if cgroup is not None else None
        leftovers: list[int | None] = [supervisor.listener, supervisor.init_pidfd, pidfd,
                                       err_r, status_r, *outputs, supervisor.stdin_w]
        for leftover in leftovers:
            if leftover is not None:
                seccomp_notify.close_quietly(leftover)
        sync.close()
        # After every process is gone: cut and remove the link, read the flow record.
        flows = _end_network(net, prepared)
    _mark("cleaned_up")
    wall = time.monotonic() - started
    if net is not None:
        notes.extend(net.warnings)
    from sandbox.launch.verdict import decide  # noqa: PLC0415 -- after the program ran

    result = decide(spec=spec, ctx=ctx, seen=seen, usage=usage, wall=wall, started=started,
                    run_id=run_id, notes=notes)
    assert audit is not None
    if result.setup_error is not None:
        audit.start()
    elif result.denied is not None:
        d = result.denied
        audit.emit("run.denied", kind="syscall", syscall=d.name or "unknown", nr=d.nr or 0,
                   arch=d.arch, args=list(d.args), rule=d.rule or "default action",
                   origin=d.origin, count=1)
    if net is not None:
        _emit_flows(audit, net.plan, flows)
    audit.emit("run.end", verdict=result.verdict.value, exit_code=result.exit_code,
               signal=result.signal, wall_s=result.wall_s, user_s=result.user_s,
               sys_s=result.sys_s, peak_memory_bytes=result.peak_memory_bytes,
               max_pids=result.max_pids, output_bytes=result.output_bytes,
               detail=result.detail)
    _mark("decided")
    finished = _finish(result, audit)
    _mark("audited")
    return finished


def _finish(result: Result, audit: _Audit | None) -> Result:
    import dataclasses  # noqa: PLC0415 -- the result exists, so it is already imported

    head = audit.head() if audit is not None else None
    notes = tuple(result.notes) + tuple(audit.problems if audit is not None else ())
    if audit is not None and audit.log is not None:
        audit.log.close()
    return dataclasses.replace(result, audit_head=head, notes=notes)


def _prepare_network(spec: LaunchSpec, run_id: str, ctx: ChildContext) -> Any:
    """Pin names, write /etc/hosts and /etc/resolv.conf, add their read-only binds."""
    from sandbox.launch import net_private  # noqa: PLC0415 -- only private runs pay for it
    from sandbox.launch.net_types import NetworkSetupError  # noqa: PLC0415
    from sandbox.plan.model import EgressTarget, PrivateNetworkPlan  # noqa: PLC0415

    private = spec.network_private
    if private is None:
        raise SetupError("network", errno.EINVAL, None, "mode private without its settings")
    plan = PrivateNetworkPlan(
        allow=tuple(EgressTarget(n, h, p, o) for n, h, p, o in private["allow"]),
        egress=private["egress"], subnet=private["subnet"], mtu=private["mtu"])
    try:
        net_private.cleanup_stale()  # a dead launcher's veth and files, found by name
        prepared = net_private.prepare(run_id, plan, hostname=ctx.hostname)
        binds = prepared.write_etc()
    except NetworkSetupError as exc:
        raise SetupError("network", exc.errno or errno.EIO, None,
                         f"{exc.step}: {exc.reason}") from None
    ctx.mounts = [*ctx.mounts, *({"kind": "bind", "src": src, "dst": dst, "writable": False,
                                  "optional": False, "size": 0, "mode": 0o644,
                                  "origin": "network.private"} for src, dst in binds)]
    return prepared


def _attach_network(prepared: Any, pid: int) -> Any:
    """Connect the holder's network namespace to the host through the filter."""
    from sandbox.launch.net_private import PrivateNetwork  # noqa: PLC0415
    from sandbox.launch.net_types import NetworkSetupError  # noqa: PLC0415

    try:
        return PrivateNetwork.attach(prepared, pid)
    except NetworkSetupError as exc:
        raise SetupError("network", exc.errno or errno.EIO, None,
                         f"{exc.step}: {exc.reason}") from None


def _end_network(net: Any, prepared: Any) -> list[Any]:
    """Remove the link, filter and /etc files; the flow record read on the way out."""
    if net is None:
        if prepared is not None:
            try:
                prepared.remove_etc()
            except OSError:
                pass
        return []
    try:
        net.teardown()
    except OSError as exc:
        print(f"sandbox: could not remove the run's network: {exc}", file=sys.stderr)
    try:
        return list(net.denied_flows())
    except OSError:
        return []


_FLOWS_PER_RECORD = 256


def _emit_flows(audit: _Audit, plan: Any, flows: list[Any]) -> None:
    """One network ``run.denied`` record per flow (blocked, or all in audit mode), bounded.

    Bounded because the flows come from an untrusted program: one scanning a /16 must
    not fill the log; past the bound, a ``run.step`` ``egress`` says how many were left out.
    """
    from sandbox.launch.network import denied_event_fields  # noqa: PLC0415

    rule = "egress audit" if plan.egress == "audit" else "egress allowlist"
    # The allow list's line: where a reviewer goes to let a blocked flow through.
    origin = plan.allow[0].origin if plan.allow else None
    for flow in flows[:_FLOWS_PER_RECORD]:
        audit.emit("run.denied", **denied_event_fields(flow), rule=rule, origin=origin)
    if len(flows) > _FLOWS_PER_RECORD:
        audit.emit("run.step", step="egress", details={
            "egress": plan.egress, "flows": len(flows),
            "not_shown": len(flows) - _FLOWS_PER_RECORD})


def _stdin(io: IO) -> tuple[int, int | None, bytes, list[int]]:
    """(fd the child gets, pipe end we feed or None, bytes to feed, fds to close once spawned)."""
    if isinstance(io.stdin, bytes):
        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(w, False)
        return r, w, io.stdin, [r]
    if isinstance(io.stdin, int):
        return io.stdin, None, b"", []
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return null, None, b"", [null]


def _child_failed(err_r: int) -> SetupError:
    """The child stopped before asking for its maps: its report, or a generic error."""
    data = b""
    while True:
        chunk = os.read(err_r, 4096)
        if not chunk:
            break
        data += chunk
    if data:
        return SetupError.decode(data)
    return SetupError("child", errno.ECHILD, None, "the child died before unsharing")


def _attach(cgroup: Any, target: int, err_r: int) -> None:
    """Move ``target`` into the run's cgroup (if there is one); SetupError on failure.

    A target that already died (its pid still held, unreaped) cannot be moved; then the
    child's own report of why it died is the better error, if it wrote one.
    """
    if cgroup is None:
        return
    try:
        cgroup.attach(target)
    except OSError as exc:
        raise _pending_report(err_r) or SetupError(
            "cgroup", exc.errno or errno.EIO, None, f"attach: {exc}") from None


def _next_message(sync: _socket.socket, init_pidfd: int | None, err_r: int) -> bytes:
    """The child's next message, or SetupError if pid 1 ends before sending one.

    Why watch pid 1: once it exists, the holder waits at the gate holding its ends of
    the channels, so a pid 1 that fails while building the root produces neither a
    message nor an end-of-file; its report is already in the error pipe.
    """
    if init_pidfd is not None:
        watch = select.poll()
        watch.register(sync.fileno(), select.POLLIN)
        watch.register(init_pidfd, select.POLLIN)
        ready = {fd for fd, _ in watch.poll()}
        if sync.fileno() not in ready:
            raise _pending_report(err_r) or SetupError(
                "init", errno.ECHILD, None, "pid 1 ended before the root was ready")
    return sync.recv(16)


def _join_fds(cgroup: Any) -> list[int]:
    """The group's files the holder joins through (v1), or [] (none, or v2)."""
    if cgroup is None:
        return []
    from sandbox.launch.cgroups import CgroupUnavailable  # noqa: PLC0415 -- loaded with the group

    try:
        return list(cgroup.join_fds())
    except CgroupUnavailable as exc:
        raise SetupError("cgroup", exc.errno or errno.EIO, getattr(exc, "path", None),
                         str(exc)) from None


def _check_joined(cgroup: Any, target: int, err_r: int) -> None:
    """The process that forks the program joined the run's group (fail closed if not)."""
    try:
        inside = cgroup.contains(target)
    except OSError:
        inside = False
    if not inside:
        raise _pending_report(err_r) or SetupError(
            "cgroup", 0, None, f"pid {target} is not in the run's group")


def _pending_report(err_r: int) -> SetupError | None:
    """The child's error report if it wrote one already (without waiting for it)."""
    os.set_blocking(err_r, False)
    try:
        report = os.read(err_r, 4096)
    except OSError:
        report = b""
    os.set_blocking(err_r, True)
    return SetupError.decode(report) if report else None


def _abort(pid: int, pidfd: int, init_pidfd: int | None) -> None:
    """Kill the child (and pid 1 of its namespace, if it exists) and reap it."""
    if init_pidfd is not None:
        try:
            signal.pidfd_send_signal(init_pidfd, signal.SIGKILL)
        except OSError:
            pass
        os.close(init_pidfd)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(pidfd)


def _remove_cgroup(cgroup: Any) -> Any:
    usage = None
    try:
        cgroup.remove()  # kills whatever is left first
    except OSError as exc:
        print(f"sandbox: could not remove the run's cgroup: {exc}", file=sys.stderr)
    try:
        usage = cgroup.usage()
    except OSError:
        usage = None
    return usage


def _install_forwarding(supervisor: Supervisor) -> dict[int, Any]:
    """CLI only: SIGTERM/SIGINT/SIGHUP to the launcher go to the program, not kill us."""
    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous[signum] = signal.signal(signum, lambda s, _f: supervisor.forward(s))
    return previous


def _setup_failed(spec: LaunchSpec, argv: list[str], run_id: str, started: float,  # noqa: PLR0917
                  error: SetupError, audit: _Audit | None, notes: list[str]) -> Result:
    from sandbox.launch.verdict import Result, Verdict, exit_code_for  # noqa: PLC0415

    code = exit_code_for(Verdict.SETUP_FAILED, None, None)
    result = Result(
        verdict=Verdict.SETUP_FAILED, exit_code=code, signal=None, detail=str(error),
        wall_s=time.monotonic() - started, user_s=0.0, sys_s=0.0, peak_memory_bytes=None,
        max_pids=None, output_bytes=0, run_id=run_id, setup_error=error, notes=tuple(notes),
    )
    if audit is not None:
        audit.start()
        audit.emit("run.end", verdict=result.verdict.value, exit_code=result.exit_code,
                   signal=None, wall_s=result.wall_s, user_s=0.0, sys_s=0.0,
                   peak_memory_bytes=None, max_pids=None, output_bytes=0, detail=result.detail)
    return _finish(result, audit)


__all__ += ["Observed"]
