/*
 * The child-side privilege timeline: everything between the launcher's posix_spawn and
 * the program's execve, in order.
 *
 * Three processes take part (as in bubblewrap with a pid namespace):
 *
 * - the *holder* (this executable, started by the launcher and moved into the run's
 *   cgroup meanwhile) unshares the namespaces and waits for the launcher to write its id
 *   maps, then forks
 * - *init*, pid 1 of the new pid namespace, which builds the root (a fresh /proc must be
 *   mounted from inside the namespace), waits at the gate until the launcher has checked
 *   that it is in the run's cgroup, and forks
 * - the *program* process, which drops everything and execs.
 *
 * Without a pid namespace the holder does all three parts itself. main() reads top to
 * bottom as the timeline; each step says which attack it stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

/* Die with SIGKILL when the parent dies; re-check the parent (parent > 0) to close the
 * race where it died before the request was made (we would then never get the signal). */
static void pdeathsig(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail("pdeathsig", errno, NULL);
	if (parent > 0 && getppid() != parent)
		failf("pdeathsig", ESRCH, NULL, "the parent is already gone");
}

/* Every signal back to its default action. exec keeps only one thing of the caller's
 * signal state, an ignored disposition, and the launcher hands down what its own caller
 * ignored (nohup, a supervisor ignoring SIGCHLD) plus what Python ignores for itself
 * (SIGPIPE, SIGXFSZ). Ignored SIGCHLD would let the kernel reap pid 1's children, so the
 * program's status could never be read and a crash would be reported as "exited 0";
 * ignored SIGXFSZ would turn RLIMIT_FSIZE from a kill into an error the program can
 * ignore. The program starts as under a shell: nothing ignored, nothing blocked (the mask
 * is emptied by posix_spawn). Signals 32 and 33 included, which glibc's posix_spawn itself
 * leaves ignored. */
static void default_signals(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		/* SIGKILL and SIGSTOP cannot be changed and are never ignored. */
		if (sig != SIGKILL && sig != SIGSTOP && sys_default_signal(sig) < 0)
			fail("signals", errno, NULL);
	}
}

static void send_sync(int fd, const char *msg)
{
	if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		failf("sync", errno, NULL, "sending %.1s", msg);
}

/* One byte of the launcher's next message: anything but `want` (or nothing) means the
 * launcher refused the run and reports why itself. */
static bool receive_sync(int fd, char want)
{
	char got;
	ssize_t n;

	do
		n = read(fd, &got, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 && got == want;
}

/*
 * The launcher's "go" ("G"), with the run's cgroup v1 tasks files attached (none on v2,
 * where the launcher moves us itself). Writing "0" to a v1 tasks file moves the writing
 * thread, and this process has one: so we join the run's groups ourselves, which the
 * kernel does without its global threadgroup lock (a move from outside takes that lock
 * and, after a quiet spell, waits ~11 ms for an RCU grace period). The kernel checks the
 * write against the credentials that opened the file, the launcher's. Before pid 1 is
 * forked, so it and everything it starts are born inside, with the limits set. A file
 * that cannot be written refuses the run; the launcher also checks pid 1 is listed.
 * Returns false when the launcher sent anything but "G" (it reports why itself).
 */
static bool receive_go_and_join(int fd)
{
	char got = 0;
	union {
		char buf[CMSG_SPACE(MAX_JOIN_FDS * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = &got, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	int fds[MAX_JOIN_FDS];
	size_t count = 0;
	ssize_t n;

	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t more = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (count + more > MAX_JOIN_FDS)
			more = MAX_JOIN_FDS - count;
		memcpy(fds + count, CMSG_DATA(c), more * sizeof(int));
		count += more;
	}
	if (n != 1 || got != 'G')
		return false;
	if (msg.msg_flags & MSG_CTRUNC)
		failf("cgroup", EMSGSIZE, NULL, "more than %d cgroup files", MAX_JOIN_FDS);
	for (size_t i = 0; i < count; i++) {
		if (write(fds[i], "0", 1) != 1)
			failf("cgroup", errno, NULL, "joining the run's group (tasks file %zu)", i);
		if (close(fds[i]) < 0)
			failf("cgroup", errno, NULL, "closing tasks file %zu", i);
	}
	return true;
}

/*
 * Wait until the launcher has put this process in the run's cgroup and opened the audit
 * log; then enter the cgroup namespace.
 *
 * Why here: the root is built while the launcher does its own slow part (cgroup and
 * audit setup), and nothing that can run the program's code exists before this point,
 * so every process of the program starts inside the cgroup, with limits already set.
 */
static void gate(const struct context *ctx)
{
	send_sync(SYNC, "R");
	if (!receive_sync(SYNC, 'X'))
		_exit(EXIT_SETUP);
	/* After the move into the cgroup, so that it is the root of what the sandbox sees. */
	if (ctx->new_cgroup && unshare(CLONE_NEWCGROUP) < 0)
		failf("unshare", errno, NULL, "cgroup namespace");
}

/* Inside the namespaces with full capabilities there: root, hostname, network. */
static void inside(const struct context *ctx, struct source *sources)
{
	if (ctx->new_mount)
		build_root(ctx, sources);
	if (ctx->hostname && sethostname(ctx->hostname, strlen(ctx->hostname)) < 0)
		fail("hostname", errno, ctx->hostname);
	if (ctx->loopback)
		loopback_up();
}

/* fds.arrange_fds: 0-2 from stdio, error pipe to 3 and sync to 4 (both close-on-exec),
 * nothing else. Why: any descriptor the launcher (or its caller) holds open would be a
 * way out of the sandbox (a directory fd outside the root, the audit log, a socket). */
static void arrange_fds(void)
{
	static const int keep[] = { 0, 1, 2, ERR_W, SYNC };
	int high[5];

	/* Move everything we keep above the target numbers first, so no dup2 clobbers one. */
	for (int i = 0; i < 5; i++) {
		high[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, 10);
		if (high[i] < 0)
			failf("fds", errno, NULL, "%s", strerror(errno));
	}
	for (int target = 0; target < 3; target++)
		if (dup2(high[target], target) < 0)
			failf("fds", errno, NULL, "%s", strerror(errno));
	if (dup3(high[3], ERR_FD, O_CLOEXEC) < 0 || dup3(high[4], SYNC_FD, O_CLOEXEC) < 0)
		failf("fds", errno, NULL, "%s", strerror(errno));
	if (sys_close_range(SYNC_FD + 1, ~0U, 0) < 0)
		failf("fds", errno, NULL, "close_range: %s", strerror(errno));
	/* Belt and braces: 3 and 4 must vanish at exec even if a dup2 above changes. */
	if (sys_close_range(ERR_FD, SYNC_FD, CLOSE_RANGE_CLOEXEC) < 0)
		failf("fds", errno, NULL, "close_range: %s", strerror(errno));
}

/* rlimits.apply_rlimits: soft = hard, so the program cannot raise them back. */
static void apply_rlimits(const struct context *ctx)
{
	for (size_t i = 0; i < ctx->n_rlimits; i++) {
		const struct rlimit_step *r = &ctx->rlimits[i];
		struct rlimit limit = { .rlim_cur = r->value, .rlim_max = r->value };
		char name[64], value[32];
		size_t n;
		int err;

		if (setrlimit((__rlimit_resource_t)r->resource, &limit) == 0)
			continue;
		/* Python's resource.setrlimit turned EINVAL and EPERM into ValueError, which
		 * the launcher reported as EINVAL; keep that errno. */
		err = (errno == EPERM || errno == EINVAL) ? EINVAL : errno;
		for (n = 0; r->name[n] && n < sizeof(name) - 1; n++)
			name[n] = (r->name[n] >= 'a' && r->name[n] <= 'z') ? (char)(r->name[n] - 32)
									      : r->name[n];
		name[n] = '\0';
		if (r->value == RLIM_INFINITY)
			snprintf(value, sizeof(value), "-1");  /* Python's resource.RLIM_INFINITY */
		else
			snprintf(value, sizeof(value), "%llu", (unsigned long long)r->value);
		failf("rlimits", err, NULL, "RLIMIT_%s=%s", name, value);
	}
}

static const char *read_text(const char *path)
{
	static char buf[65536 + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		fail("verify", errno, path);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		fail("verify", errno, path);
	if (close(fd) < 0)
		fail("verify", errno, path);
	buf[n] = '\0';
	return buf;
}

/* Words of `text` joined by single spaces (Python's " ".join(text.split())). */
static void normalise(const char *text, char *out, size_t size)
{
	size_t at = 0;

	for (const char *p = text; *p;) {
		size_t len;

		while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
			p++;
		if (!*p)
			break;
		len = strcspn(p, " \t\n\v\f\r");
		if (at && at < size - 1)
			out[at++] = ' ';
		if (len > size - 1 - at)
			len = size - 1 - at;
		memcpy(out + at, p, len);
		at += len;
		p += strcspn(p, " \t\n\v\f\r");
	}
	out[at] = '\0';
}

/* Read back what the kernel cannot report as it applies it; abort on any mismatch. */
static void verify(const struct context *ctx)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	struct stat info;
	struct statvfs root;

	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
		fail("verify", errno, NULL);
	if (ruid != ctx->uid || euid != ctx->uid || suid != ctx->uid || rgid != ctx->gid ||
	    egid != ctx->gid || sgid != ctx->gid)
		failf("verify", 0, NULL, "ids are (%u, %u, %u) (%u, %u, %u)", (unsigned)ruid,
		      (unsigned)euid, (unsigned)suid, (unsigned)rgid, (unsigned)egid,
		      (unsigned)sgid);
	if (stat("/proc/self", &info) == 0 && S_ISDIR(info.st_mode)) {
		static const char *const names[] = { "uid_map", "gid_map" };
		const char *wants[] = { ctx->uid_map_text, ctx->gid_map_text };

		verify_status(read_text("/proc/self/status"), ctx->keep_mask);
		for (int i = 0; i < 2; i++) {
			static char got[65536 + 1], repr_got[4 * sizeof(got)], repr_want[65536];
			char path[32];

			if (!wants[i])
				continue;
			snprintf(path, sizeof(path), "/proc/self/%s", names[i]);
			normalise(read_text(path), got, sizeof(got));
			if (strcmp(got, wants[i]) != 0)
				failf("verify", 0, path, "%s, expected %s",
				      pyrepr(got, repr_got, sizeof(repr_got)),
				      pyrepr(wants[i], repr_want, sizeof(repr_want)));
		}
	} else {
		uint64_t eff, prm, inh;
		int nnp;

		if (sys_capget(&eff, &prm, &inh) < 0)
			fail("verify", errno, NULL);
		if (eff != ctx->keep_mask || prm != ctx->keep_mask || inh != ctx->keep_mask)
			failf("verify", 0, NULL, "capabilities 0x%llx 0x%llx 0x%llx",
			      (unsigned long long)eff, (unsigned long long)prm,
			      (unsigned long long)inh);
		verify_bounding_ambient(ctx->keep_mask, ctx->last_cap);
		nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
		if (nnp < 0)
			fail("verify", errno, NULL);
		if (nnp != 1)
			failf("verify", 0, NULL, "no_new_privs is not set");
	}
	if (ctx->new_mount) {
		if (statvfs("/", &root) < 0)
			fail("verify", errno, "/");
		if (!(root.f_flag & ST_RDONLY))
			failf("verify", 0, "/", "the root is not read-only");
	}
}

/* The command as execvp would find it, looked up inside the new root. */
static const char *resolve(const struct context *ctx)
{
	static char candidate[2 * 4096];
	const char *argv0 = ctx->argv[0];
	bool denied = false;
	struct stat info;

	if (strchr(argv0, '/'))
		return argv0;
	for (char **dir = ctx->path_dirs; *dir; dir++) {
		size_t n = (size_t)snprintf(candidate, sizeof(candidate), "%s/%s",
					    **dir ? *dir : ".", argv0);

		if (n >= sizeof(candidate) || stat(candidate, &info) < 0)
			continue;
		if (S_ISREG(info.st_mode) && access(candidate, X_OK) == 0)
			return candidate;
		denied = true;
	}
	fail("execve", denied ? EACCES : ENOENT, argv0);
}

/* The process that becomes the program: drop everything, load seccomp, execve. `parent`
 * is what getppid() must say afterwards: 1 (init) or the launcher. */
static noreturn void program(const struct context *ctx, pid_t parent)
{
	const char *path;
	int listener, failed_cap;

	/* New session, no controlling terminal: TIOCSTI cannot push keystrokes into the
	 * caller's terminal, and the terminal's job-control signals do not reach us. */
	if (setsid() < 0)
		fail("setsid", errno, NULL);
	/* Only 0-2 survive; the launcher's own descriptors (error pipe, sync socket) are
	 * close-on-exec. */
	arrange_fds();
	report_fd = ERR_FD;
	/* Limits before anything the program could use to grow past them. */
	apply_rlimits(ctx);
	/* Bounding set first: dropping needs CAP_SETPCAP, which we lose below. */
	if (drop_bounding(ctx->keep_mask, ctx->last_cap, &failed_cap) < 0)
		failf("capabilities", errno, NULL, "PR_CAPBSET_DROP %d", failed_cap);
	/* The program's own ids; keep-caps holds the keep-list across the uid change. */
	keep_caps(true);
	if (setresgid(ctx->gid, ctx->gid, ctx->gid) < 0 ||
	    setresuid(ctx->uid, ctx->uid, ctx->uid) < 0)
		failf("ids", errno, NULL, "uid %u gid %u", (unsigned)ctx->uid, (unsigned)ctx->gid);
	set_caps(ctx->keep_mask, ctx->keep, ctx->n_keep);
	keep_caps(false);
	/* Set after the uid change, which clears it. */
	pdeathsig(parent);
	/* The working directory, checked with the program's own ids. */
	if (chdir(ctx->cwd) < 0)
		fail("cwd", errno, ctx->cwd);
	/* Never gain privileges through exec (setuid, file caps) from here on; also what
	 * lets an unprivileged process load a seccomp filter. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("no_new_privs", errno, NULL);
	verify(ctx);
	path = resolve(ctx);
	/* Seccomp last, so that the filter need not allow anything the launcher does: after
	 * this, only the listener hand-over and execve itself. */
	listener = load_filter(ctx);
	if (ctx->notify)
		send_listener(listener);
	execve(path, ctx->argv, ctx->env);
	fail("execve", errno, path);
}

/* Pid 1: build the root, pass the gate, fork the program, then only reap. */
static noreturn void init_main(const struct context *ctx, struct source *sources)
{
	pid_t child;
	int failed_cap;

	/* The parent (the holder) is outside this pid namespace, so getppid() reads 0 and
	 * cannot be re-checked; if the holder is already gone the launcher sees it exit and
	 * kills this namespace through its pidfd of pid 1. */
	pdeathsig(0);
	inside(ctx, sources);
	gate(ctx);
	child = fork();
	if (child < 0)
		failf("fork", errno, NULL, "program");
	if (child == 0)
		program(ctx, 1);
	/* From here on pid 1 only waits. It keeps CAP_KILL (to forward signals to a program
	 * running as another uid) and nothing else, cannot gain privileges, and is not
	 * dumpable, so a program that reaches it can neither ptrace it nor read its fds.
	 * pid 1 keeps only the status pipe: not the caller's stdio, not the error pipe
	 * (whose EOF tells the launcher that execve happened), not the sync socket. */
	if (sys_close_range(0, STATUS_W - 1, 0) < 0 || sys_close_range(STATUS_W + 1, ~0U, 0) < 0 ||
	    drop_bounding(1ULL << CAP_KILL, ctx->last_cap, &failed_cap) < 0 ||
	    sys_capset(1ULL << CAP_KILL, 1ULL << CAP_KILL, 0) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		kill(child, SIGKILL);
		_exit(EXIT_SETUP);
	}
	/* Never "exited 0" for a program whose end pid 1 did not see and report. */
	_exit(reap_until(child, STATUS_W) ? 0 : EXIT_SETUP);
}

int main(void)
{
	const struct context *ctx;
	struct source *sources = NULL;
	pid_t pid;
	char msg[32];
	int status;

	/* Nothing but the channels of WIRE.md may reach the sandbox (belt and braces: the
	 * launcher's descriptors are close-on-exec). */
	if (sys_close_range(SYNC + 1, ~0U, 0) < 0)
		failf("fds", errno, NULL, "close_range: %s", strerror(errno));
	ctx = read_context(CONTEXT_FD);
	/* No ignored signal of the launcher's reaches pid 1 or the program. */
	default_signals();
	/* Own process group (with a pid namespace): a terminal's ^C goes to the launcher,
	 * which forwards it; the launcher must not get it twice. */
	if (ctx->new_pid && setpgid(0, 0) < 0)
		fail("setpgid", errno, NULL);
	/* Die with the launcher: a sandbox must never outlive its supervisor. */
	pdeathsig(ctx->launcher_pid);
	/* Root: drop supplementary groups (host gid 0 among them) while we still can; after
	 * setgroups=deny nobody in the sandbox could drop them, and they would keep host
	 * root's group access. */
	if (ctx->drop_groups && setgroups(0, NULL) < 0)
		fail("setgroups", errno, NULL);
	/* All namespaces at once (the user namespace is created first and owns the others). */
	if (unshare(ctx->unshare_flags) < 0)
		failf("unshare", errno, NULL, "flags 0x%x", (unsigned)ctx->unshare_flags);
	/* Bind sources are opened now, with the caller's own credentials, before we become
	 * an unprivileged id of the range (see mounts.c). */
	if (ctx->new_mount)
		sources = open_sources(ctx);
	/* Ask the launcher for id maps and the cgroup; nothing proceeds until it says so. */
	send_sync(SYNC, "U");
	if (!receive_go_and_join(SYNC))
		_exit(EXIT_SETUP);
	/* Become the namespace's own id (root of the range, or the mapped caller), shedding
	 * the caller's host identity before touching anything inside. */
	if (setresgid(ctx->setup_gid, ctx->setup_gid, ctx->setup_gid) < 0 ||
	    setresuid(ctx->setup_uid, ctx->setup_uid, ctx->setup_uid) < 0)
		fail("setup_ids", errno, NULL);
	/* A uid change clears the parent-death signal: set it again. */
	pdeathsig(ctx->launcher_pid);
	if (!ctx->new_pid) {
		inside(ctx, sources);
		gate(ctx);
		program(ctx, ctx->launcher_pid);
	}
	/* unshare(CLONE_NEWPID) applies to children: this fork makes pid 1. */
	pid = fork();
	if (pid < 0)
		failf("fork", errno, NULL, "pid 1");
	if (pid == 0)
		init_main(ctx, sources);
	snprintf(msg, sizeof(msg), "P%d", (int)pid);
	send_sync(SYNC, msg);
	/* Hold pid 1 unreaped until the gate opens: the launcher moves it into the cgroup by
	 * its pid, which must not be recycled meanwhile even if pid 1 dies. The launcher
	 * sends one "X" to each process waiting at the gate. */
	if (!receive_sync(SYNC, 'X')) {
		kill(pid, SIGKILL);
		_exit(EXIT_SETUP);
	}
	/* The holder only waits from here on: it keeps no descriptor at all (source fds,
	 * the caller's stdio, the channels), so none outlives its use. */
	if (sys_close_range(0, ~0U, 0) < 0) {
		/* As in Python: nothing to report to, and nothing depends on it. */
	}
	for (;;) {
		if (waitpid(pid, &status, 0) < 0) {
			if (errno == EINTR)
				continue;
			_exit(EXIT_SETUP);
		}
		if (WIFSIGNALED(status))
			_exit(128 + WTERMSIG(status));
		_exit(WEXITSTATUS(status));
	}
}
