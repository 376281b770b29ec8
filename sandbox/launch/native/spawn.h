/*
 * sandbox-spawn: the launcher's child side, from posix_spawn to the program's execve.
 *
 * One file per job: spawn.c the timeline, context.c reads what spawner.py encoded,
 * mounts.c the root, caps.c, seccomp.c, init.c (pid 1's reaping), net.c (loopback),
 * kernel.c the raw syscalls glibc may lack, errors.c the reports. The contract with
 * the launcher (fds, context bytes, messages, exit codes) is WIRE.md.
 *
 * Rules: everything the processes need is decoded from
 * the context before anything else happens, every call's result is checked, every
 * failure is one SetupError report on the error pipe followed by _exit, and nothing is
 * allocated once the seccomp filter is loaded.
 */
#ifndef SANDBOX_SPAWN_H
#define SANDBOX_SPAWN_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sys/mount.h>
#include <sys/types.h>

/* Descriptors at exec (WIRE.md). */
#define CONTEXT_FD 3
#define ERR_W 4
#define STATUS_W 5
#define SYNC 6
/* The program's numbers once its fds are arranged (WIRE.md). */
#define ERR_FD 3
#define SYNC_FD 4

#define EXIT_SETUP 125
/* At most this many cgroup v1 tasks files come with "G" (one per hierarchy used). */
#define MAX_JOIN_FDS 8

/* Kernel constants older libc headers may lack (values from the UAPI headers). */
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC 02000000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x00000002
#endif
#ifndef MOUNT_ATTR_NODEV
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef MOUNT_ATTR_NOEXEC
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef RESOLVE_NO_SYMLINKS
#define RESOLVE_NO_SYMLINKS 0x04
#endif
#ifndef RESOLVE_BENEATH
#define RESOLVE_BENEATH 0x08
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif
#define SPAWN_FSCONFIG_SET_FLAG 0
#define SPAWN_FSCONFIG_SET_STRING 1
#define SPAWN_FSCONFIG_CMD_CREATE 6
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct rlimit_step {
	const char *name;     /* as the policy spells it; reports use it uppercased */
	int resource;         /* RLIMIT_ number */
	uint64_t value;       /* soft = hard = value */
};

struct mount_step {
	const char *kind;     /* bind|tmpfs|proc|dev|mask|readonly */
	const char *src;
	const char *dst;
	bool writable;
	bool optional;
	int64_t size;
	int64_t mode;
};

/* Everything the child side does, decided by the launcher (context.c reads it). */
struct context {
	pid_t launcher_pid;
	int unshare_flags;
	bool new_pid, new_mount, new_cgroup;
	uid_t caller_uid;
	bool drop_groups;
	uid_t setup_uid;
	gid_t setup_gid;
	uid_t uid;
	gid_t gid;
	uint64_t keep_mask;
	int last_cap;
	bool loopback, notify, verify_seccomp;
	const char *hostname;      /* NULL: keep the host's (no uts namespace) */
	const char *cwd;
	const char *uid_map_text;  /* NULL: no user namespace, nothing to verify */
	const char *gid_map_text;
	char **argv;               /* NULL-terminated, at least one entry */
	char **env;                /* NULL-terminated "NAME=value" */
	char **path_dirs;          /* NULL-terminated */
	int *keep;                 /* capabilities to keep, in ambient raise order */
	size_t n_keep;
	struct rlimit_step *rlimits;
	size_t n_rlimits;
	struct mount_step *mounts;
	size_t n_mounts;
	struct sock_fprog filter;  /* prepared here: nothing is allocated after loading it */
};

/* A bind source opened by open_sources (mounts.c). */
enum source_kind { SOURCE_MISSING, SOURCE_SYMLINK, SOURCE_FD };
struct source {
	enum source_kind kind;
	int fd;               /* SOURCE_FD: an O_PATH descriptor */
	bool is_dir;
	char *target;         /* SOURCE_SYMLINK: recreated inside, never followed */
};

/* context.c */
struct context *read_context(int fd);

/* errors.c: SetupError reports (errors.py) */
extern int report_fd;
noreturn void fail(const char *step, int err, const char *path);
noreturn void failf(const char *step, int err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *pyrepr(const char *s, char *out, size_t size);

/* kernel.c: calls without a (portable) glibc wrapper; -1 and errno on failure */
int sys_open_tree(int dirfd, const char *path, unsigned int flags);
int sys_move_mount_fd(int from_fd, int to_fd);
int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve);
int sys_fsopen(const char *fstype, unsigned int flags);
int sys_fsconfig(int fd, unsigned int cmd, const char *key, const char *value);
int sys_fsmount(int fd, unsigned int flags, unsigned int attrs);
int sys_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set);
int sys_pivot_root(const char *new_root, const char *put_old);
int sys_close_range(unsigned int first, unsigned int last, unsigned int flags);
int sys_default_signal(int sig);
int sys_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable);
int sys_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable);
int sys_seccomp_filter(unsigned int flags, const struct sock_fprog *prog);

/* mounts.c */
struct source *open_sources(const struct context *ctx);
void build_root(const struct context *ctx, struct source *sources);

/* caps.c */
int drop_bounding(uint64_t keep_mask, int last_cap, int *failed_cap);
void verify_bounding_ambient(uint64_t keep_mask, int last_cap);
void keep_caps(bool on);
void set_caps(uint64_t keep_mask, const int *keep, size_t n_keep);
void verify_status(const char *status, uint64_t keep_mask);

/* net.c */
void loopback_up(void);

/* seccomp.c */
int load_filter(const struct context *ctx);
void send_listener(int listener);

/* init.c */
bool reap_until(pid_t program, int status_fd);

#endif
