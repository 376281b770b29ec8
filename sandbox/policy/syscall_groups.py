"""Named groups of Linux system calls for seccomp allow and deny lists.

Policies would be unreadable (and unreviewable) if every profile had to spell out
the few hundred system calls an ordinary program makes, so a policy may name a
group instead: ``allow = ["@system-service"]``, ``deny = ["@mount"]``.  The idea
and most group names follow systemd's ``SystemCallFilter=`` sets, so people who
know those can read our profiles; the memberships are our own and lean towards
the stricter side where systemd is generous (``@system-service`` leaves out
``@aio``/io_uring, ``@keyring``, ``kcmp``, ``personality`` and ``userfaultfd``).

A group lists syscall names and/or other groups (names starting with ``@``).
Names may belong to any architecture libseccomp knows (``socketcall``, ``mmap2``,
the ``*_time64`` calls of 32-bit ABIs, ...), so that a group means the same thing
everywhere; whoever compiles a filter resolves each name for the target
architecture and skips those that do not exist there.  Every name must be known
to the libseccomp we run against (Debian's 2.5.4-1+deb12u1, whose table reaches
Linux 6.7: ``cachestat``, ``fchmodat2``, ``map_shadow_stack`` and
``futex_wait``/``futex_wake``/``futex_requeue`` are in).  Calls newer than that
table (``statmount``, ``listmount``, ``lsm_get_self_attr``, ``lsm_set_self_attr``,
``lsm_list_modules``, ``mseal``, ``uretprobe``, ``setxattrat``, ``getxattrat``,
``listxattrat``, ``removexattrat``, ``open_tree_attr``, ``file_getattr``,
``file_setattr``, and riscv's ``riscv_hwprobe``) are left out: a filter cannot
name them, so they always get the filter's default action.

This module is pure data plus :func:`expand`; it deliberately imports neither
pyseccomp nor cerberus so that validation, documentation and tests can use it
without touching the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

__all__ = ["GROUPS", "SyscallGroup", "expand"]


@dataclass(frozen=True)
class SyscallGroup:
    """One named set of system calls.

    ``members`` holds syscall names and names of other groups (``@...``), sorted
    (so groups come first: ``@`` sorts before ``_`` and letters) and unique.
    """

    name: str
    summary: str
    members: tuple[str, ...]


def _group(name: str, summary: str, members: str) -> SyscallGroup:
    """Build a group from a whitespace-separated member list, sorting it."""
    return SyscallGroup(name=name, summary=summary, members=tuple(sorted(set(members.split()))))


_ALL: tuple[SyscallGroup, ...] = (
    _group(
        "@default",
        "Calls every process makes just to exist (exit, heap, thread and TLS setup, "
        "futexes, sleeping, time, its own ids and limits); denying any of them breaks "
        "everything, so every allow list should start from here.",
        """
        arch_prctl brk cacheflush clock_getres clock_getres_time64 clock_gettime
        clock_gettime64 clock_nanosleep clock_nanosleep_time64 exit exit_group futex
        futex_requeue futex_time64 futex_wait futex_waitv futex_wake get_robust_list
        get_thread_area getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
        getgroups32 getpgid getpgrp getpid getppid getrandom getresgid getresgid32 getresuid
        getresuid32 getrlimit getsid gettid gettimeofday getuid getuid32 membarrier mmap
        mmap2 mprotect munmap nanosleep pause prlimit64 restart_syscall riscv_flush_icache
        rseq rt_sigreturn sched_getaffinity sched_yield set_robust_list set_thread_area
        set_tid_address set_tls sigreturn time ugetrlimit uname
        """,
    ),
    _group(
        "@basic-io",
        "Reading, writing, seeking, duplicating and closing descriptors the process "
        "already holds, and moving bytes between them; harmless on their own because "
        "opening things is controlled elsewhere.",
        """
        _llseek close close_range dup dup2 dup3 fcntl fcntl64 lseek pread64 preadv preadv2
        pwrite64 pwritev pwritev2 read readv sendfile sendfile64 splice tee vmsplice write
        writev
        """,
    ),
    _group(
        "@file-system",
        "Opening, creating, inspecting, renaming and removing files and directories, "
        "xattrs and inotify; which paths exist is decided by the sandbox's mount "
        "namespace, not by this list.",
        """
        access arm_fadvise64_64 cachestat chdir chmod copy_file_range creat faccessat
        faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchmodat2
        fgetxattr flistxattr flock fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs
        fstatfs64 ftruncate ftruncate64 futimesat getcwd getdents getdents64 getxattr
        inotify_add_watch inotify_init inotify_init1 inotify_rm_watch lgetxattr link linkat
        listxattr llistxattr lremovexattr lsetxattr lstat lstat64 mkdir mkdirat mknod
        mknodat name_to_handle_at newfstatat oldfstat oldlstat oldstat open openat openat2
        readahead readdir readlink readlinkat removexattr rename renameat renameat2 rmdir
        setxattr stat stat64 statfs statfs64 statx symlink symlinkat truncate truncate64
        umask unlink unlinkat utime utimensat utimensat_time64 utimes
        """,
    ),
    _group(
        "@io-event",
        "Waiting for readiness on many descriptors (select, poll, epoll, eventfd); "
        "any event loop needs them and they grant no new access.",
        """
        _newselect epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait
        epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64
        pselect6 pselect6_time64 select
        """,
    ),
    _group(
        "@ipc",
        "Local inter-process communication: pipes, memfd, System V message queues, "
        "semaphores and shared memory, POSIX message queues; scoped by the IPC "
        "namespace, needed by shells and most runtimes.",
        """
        ipc memfd_create mq_getsetattr mq_notify mq_open mq_timedreceive
        mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget
        msgrcv msgsnd pipe pipe2 semctl semget semop semtimedop semtimedop_time64 shmat
        shmctl shmdt shmget
        """,
    ),
    _group(
        "@process",
        "Creating, running, waiting for and signalling processes and threads, plus "
        "prctl and voluntary self-restriction (seccomp, Landlock); clone3 is here but "
        "should be answered with ENOSYS because its flags cannot be inspected.",
        """
        clone clone3 execve execveat fork getrusage kill landlock_add_rule
        landlock_create_ruleset landlock_restrict_self pidfd_open pidfd_send_signal prctl
        process_mrelease rt_sigqueueinfo rt_tgsigqueueinfo seccomp setpgid setsid
        swapcontext tgkill tkill vfork wait4 waitid waitpid
        """,
    ),
    _group(
        "@signal",
        "Installing handlers, masking, waiting for and receiving signals (sending "
        "them is in @process); every C runtime uses these.",
        """
        rt_sigaction rt_sigpending rt_sigprocmask rt_sigsuspend rt_sigtimedwait
        rt_sigtimedwait_time64 sigaction sigaltstack signal signalfd signalfd4 sigpending
        sigprocmask sigsuspend
        """,
    ),
    _group(
        "@timer",
        "Interval timers, POSIX timers, timerfd, alarm and process times; they only "
        "schedule wake-ups for the caller.",
        """
        alarm getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime
        timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
        timerfd_gettime64 timerfd_settime timerfd_settime64 times
        """,
    ),
    _group(
        "@memory",
        "Managing the caller's own address space: mapping, protecting, advising, "
        "remapping, locking (bounded by RLIMIT_MEMLOCK) and memory protection keys.",
        """
        brk madvise map_shadow_stack memfd_secret mincore mlock mlock2 mlockall mmap mmap2
        mprotect mremap munlock munlockall munmap pkey_alloc pkey_free pkey_mprotect
        remap_file_pages
        """,
    ),
    _group(
        "@network-io",
        "Creating and using sockets of any family; what the process can reach is "
        "decided by the network namespace, so deny this group for code that must "
        "not even talk over local sockets.",
        """
        accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
        recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown
        socket socketcall socketpair
        """,
    ),
    _group(
        "@sync",
        "Flushing file data and mappings to storage; safe, and programs that save "
        "data treat their failure as fatal.",
        """
        arm_sync_file_range fdatasync fsync msync sync sync_file_range sync_file_range2
        syncfs
        """,
    ),
    _group(
        "@aio",
        "Asynchronous I/O: classic Linux AIO and io_uring; io_uring is a large, "
        "often-exploited kernel surface that bypasses per-syscall filtering, so it is "
        "not in @system-service and should be allowed only on purpose.",
        """
        io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup
        io_submit io_uring_enter io_uring_register io_uring_setup
        """,
    ),
    _group(
        "@chown",
        "Changing file owner and group; the kernel requires CAP_CHOWN for anything "
        "but a no-op or a switch among one's own groups, and archivers fail without "
        "these calls.",
        """
        chown chown32 fchown fchown32 fchownat lchown lchown32
        """,
    ),
    _group(
        "@setuid",
        "Changing user and group ids, supplementary groups and capability sets; "
        "without capabilities the kernel only allows dropping, so allowing them lets "
        "programs shed privilege.",
        """
        capset setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
        setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
        setuid setuid32
        """,
    ),
    _group(
        "@resources",
        "Reading and setting scheduling policy, nice and I/O priority, CPU affinity, "
        "NUMA placement and resource limits; without CAP_SYS_NICE/CAP_SYS_RESOURCE a "
        "process can only lower its own.",
        """
        get_mempolicy getcpu getpriority ioprio_get ioprio_set mbind migrate_pages
        move_pages nice prlimit64 sched_get_priority_max sched_get_priority_min
        sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
        sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
        sched_setscheduler set_mempolicy set_mempolicy_home_node setpriority setrlimit
        """,
    ),
    _group(
        "@credentials",
        "Read-only queries of the caller's user and group ids and capabilities; "
        "they reveal nothing beyond what /proc/self already shows.",
        """
        capget getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
        getresgid getresgid32 getresuid getresuid32 getuid getuid32
        """,
    ),
    _group(
        "@mount",
        "Mounting, unmounting, moving and reconfiguring file systems and changing the "
        "root; the usual first step of a container escape, so untrusted code must "
        "never have it.",
        """
        chroot fsconfig fsmount fsopen fspick mount mount_setattr move_mount open_tree
        pivot_root umount umount2
        """,
    ),
    _group(
        "@privileged",
        "Everything that only makes sense with real (host) privilege: mounting, "
        "modules, raw I/O, reboot, swap, clock, BPF, sysctl, quotas, host naming, "
        "process accounting, fanotify, handle-based open and userfaultfd; deny as a "
        "whole.",
        """
        @bpf @clock @module @mount @raw-io @reboot @swap _sysctl acct fanotify_init
        fanotify_mark nfsservctl open_by_handle_at quotactl quotactl_fd setdomainname
        sethostname syslog userfaultfd vhangup
        """,
    ),
    _group(
        "@debug",
        "Inspecting or changing other processes and the kernel's view of them "
        "(ptrace, cross-process memory access, perf, kcmp, stealing descriptors, "
        "turning off ASLR via personality); denied to keep sandboxed code from "
        "reaching its neighbours.",
        """
        kcmp lookup_dcookie perf_event_open personality pidfd_getfd process_madvise
        process_vm_readv process_vm_writev ptrace rtas s390_runtime_instr
        sys_debug_setcontext
        """,
    ),
    _group(
        "@module",
        "Loading and unloading kernel modules; arbitrary kernel code, never allowed.",
        """
        delete_module finit_module init_module
        """,
    ),
    _group(
        "@raw-io",
        "Direct port and PCI configuration access that bypasses drivers; host "
        "hardware control, never allowed.",
        """
        ioperm iopl pciconfig_iobase pciconfig_read pciconfig_write s390_pci_mmio_read
        s390_pci_mmio_write
        """,
    ),
    _group(
        "@reboot",
        "Rebooting the machine or booting a new kernel; never allowed.",
        """
        kexec_file_load kexec_load reboot
        """,
    ),
    _group(
        "@swap",
        "Enabling and disabling swap devices; host-wide, never allowed.",
        """
        swapoff swapon
        """,
    ),
    _group(
        "@clock",
        "Setting or slewing the system clock; the clock is not namespaced, so this "
        "would change time for the whole host.",
        """
        adjtimex clock_adjtime clock_adjtime64 clock_settime clock_settime64 settimeofday
        stime
        """,
    ),
    _group(
        "@keyring",
        "The kernel key retention service; keys are only partly namespaced and the "
        "code has a record of vulnerabilities, so deny unless a program needs it.",
        """
        add_key keyctl request_key
        """,
    ),
    _group(
        "@namespaces",
        "Creating or joining namespaces after start-up; the sandbox builds the "
        "namespaces itself, and nested user namespaces expose much kernel surface.",
        """
        setns unshare
        """,
    ),
    _group(
        "@obsolete",
        "Calls the kernel no longer implements or that only old binaries use; "
        "denying them costs nothing and shrinks the surface.",
        """
        _sysctl afs_syscall bdflush break create_module ftime get_kernel_syms getpmsg gtty
        idle lock mpx prof profil putpmsg query_module security sgetmask ssetmask stime stty
        sysfs tuxcall ulimit uselib ustat vserver
        """,
    ),
    _group(
        "@cpu-emulation",
        "Legacy CPU modes and segment tables (LDT, vm86, endianness switching); "
        "only emulators need them and they have a history of kernel bugs.",
        """
        modify_ldt subpage_prot switch_endian vm86 vm86old
        """,
    ),
    _group(
        "@bpf",
        "Loading BPF programs and maps; a direct path to running code in the kernel, "
        "never allowed for untrusted code.",
        """
        bpf
        """,
    ),
    _group(
        "@system-service",
        "What an ordinary unprivileged service or command-line tool needs, and the base "
        "of the untrusted profile: the everyday groups plus @chown, @setuid and @resources "
        "(without capabilities the kernel only lets a process drop or lower, and refusing "
        "them breaks privilege-dropping code), ioctl and sysinfo; not @aio (io_uring), nor "
        "any mount, debug, module, raw-io, reboot, swap, clock, keyring, namespace, bpf, "
        "cpu-emulation, obsolete or privileged call.",
        """
        @basic-io @chown @credentials @default @file-system @io-event @ipc @memory
        @network-io @process @resources @setuid @signal @sync @timer ioctl oldolduname
        olduname sysinfo
        """,
    ),
)

GROUPS: Mapping[str, SyscallGroup] = MappingProxyType({g.name: g for g in _ALL})
"""Every group by name (``@...``), read-only."""


@cache
def expand(name: str) -> frozenset[str]:
    """Return the syscall names a group stands for, following nested groups.

    Raises ``KeyError`` if ``name`` (or a group it includes) is not a known group,
    and ``ValueError`` if the groups include each other in a cycle.
    """
    return _expand(name, ())


def _expand(name: str, path: tuple[str, ...]) -> frozenset[str]:
    if name in path:
        raise ValueError("syscall group cycle: " + " -> ".join((*path, name)))
    group = GROUPS[name]
    names: set[str] = set()
    for member in group.members:
        if member.startswith("@"):
            names |= _expand(member, (*path, name))
        else:
            names.add(member)
    return frozenset(names)
