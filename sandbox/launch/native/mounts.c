/*
 * The sandbox's filesystem: bind sources opened safely, then a fresh read-only root built.
 *
 * Two halves:
 *
 * - open_sources runs right after unshare, still with the caller's own credentials, and
 *   opens every bind source as an O_PATH descriptor, walking the path one component at
 *   a time with O_NOFOLLOW. So a source is exactly the file the policy named, seen with
 *   the caller's permissions (root's 0700 directories stay reachable for root, never
 *   for an unprivileged caller), and a symlink planted along the way cannot redirect a
 *   bind.
 * - build_root runs as pid 1 of the new pid namespace (a fresh /proc must be mounted
 *   from inside it) and builds a new root on an empty tmpfs from those descriptors with
 *   the new mount API: each bind is cloned detached, made ro,nosuid,nodev recursively
 *   *before* it is attached, attached, then checked with statvfs. Every mount (binds,
 *   tmpfs, proc, /dev, masks) goes onto a descriptor of its mount point, opened beneath
 *   the new root one component at a time without following a link, never onto a path
 *   string that a planted or swapped link could redirect. The old root is detached.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "spawn.h"

/* The device nodes a sandbox gets (as Docker's and bubblewrap's defaults). Binds of the
 * host's nodes, because mknod is impossible in a user namespace. */
static const char *const device_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
#define N_DEVICES (sizeof(device_nodes) / sizeof(device_nodes[0]))
/* Where the new root is assembled; hidden from the host by the private mount namespace. */
#define STAGING "/tmp"
#define MAX_SYMLINKS 40  /* as the kernel's own limit on a path walk */
#define PATH_SIZE (2 * PATH_MAX)

/* Why _open_nofollow failed: an errno, and for a refused symlink a detail. */
struct walk_error {
	int err;
	char detail[PATH_MAX];
};

/* The next component of a path that is neither "" nor "." (as Python's filtered split),
 * or NULL; *len is its length. ".." is a component like any other. */
static const char *component(const char *p, size_t *len)
{
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			return NULL;
		*len = strcspn(p, "/");
		if (!(*len == 1 && p[0] == '.'))
			return p;
		p += *len;
	}
}

static char *concat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

static int walk_fail(struct walk_error *e, int err, int fd, char *queue)
{
	if (fd >= 0)
		close(fd);
	free(queue);
	e->err = err;
	return -1;
}

/*
 * Open `path` as O_PATH without letting an untrusted symlink redirect it.
 *
 * A symlink in the middle of the path is followed only when it is owned by root or by
 * the caller, i.e. when nobody else can have planted it (stops "bind ~/work" becoming
 * "bind /etc/shadow" via ~/work -> /etc made by another user). A symlink as the last
 * component is returned as such: the caller recreates it inside the sandbox rather than
 * binding what it points to (/bin -> usr/bin on merged-/usr hosts).
 */
static int open_nofollow(const char *path, uid_t trusted0, uid_t trusted1, struct source *out,
			 struct walk_error *e)
{
	const int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
	char *queue = strdup(path);
	const char *p = queue, *name;
	char comp[PATH_MAX];
	size_t len, more_len;
	int fd, nfd, hops = 0;
	struct stat info;

	e->detail[0] = '\0';
	if (!queue)
		return walk_fail(e, ENOMEM, -1, NULL);
	fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return walk_fail(e, errno, -1, queue);
	while ((name = component(p, &len))) {
		if (len >= sizeof(comp))
			return walk_fail(e, ENAMETOOLONG, fd, queue);
		memcpy(comp, name, len);
		comp[len] = '\0';
		p = name + len;
		nfd = openat(fd, comp, flags);
		if (nfd < 0 && errno == ENOENT) {
			if (close(fd) < 0)
				return walk_fail(e, errno, -1, queue);
			free(queue);
			out->kind = SOURCE_MISSING;
			return 0;
		}
		if (nfd < 0)
			return walk_fail(e, errno, fd, queue);
		if (fstat(nfd, &info) < 0) {
			int err = errno;

			close(nfd);
			return walk_fail(e, err, fd, queue);
		}
		bool more = component(p, &more_len) != NULL;
		if (S_ISLNK(info.st_mode)) {
			char target[PATH_MAX + 1];
			ssize_t n = readlinkat(nfd, "", target, sizeof(target));
			int err = errno;

			if (close(nfd) < 0 && n >= 0)
				n = -1, err = errno;
			if (n < 0)
				return walk_fail(e, err, fd, queue);
			if ((size_t)n >= sizeof(target))
				return walk_fail(e, ENAMETOOLONG, fd, queue);
			target[n] = '\0';
			if (!more) {
				if (close(fd) < 0)
					return walk_fail(e, errno, -1, queue);
				free(queue);
				out->kind = SOURCE_SYMLINK;
				out->target = strdup(target);
				if (!out->target) {
					e->err = ENOMEM;
					return -1;
				}
				return 0;
			}
			if (info.st_uid != trusted0 && info.st_uid != trusted1) {
				char repr[4 * PATH_MAX];

				snprintf(e->detail, sizeof(e->detail),
					 "symlink %s is owned by uid %u",
					 pyrepr(comp, repr, sizeof(repr)), (unsigned)info.st_uid);
				return walk_fail(e, ELOOP, fd, queue);
			}
			if (++hops > MAX_SYMLINKS) {
				snprintf(e->detail, sizeof(e->detail), "too many symlinks");
				return walk_fail(e, ELOOP, fd, queue);
			}
			if (target[0] == '/') {
				if (close(fd) < 0)
					return walk_fail(e, errno, -1, queue);
				fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (fd < 0)
					return walk_fail(e, errno, -1, queue);
			}
			char *next = concat3(target, "/", p);
			if (!next)
				return walk_fail(e, ENOMEM, fd, queue);
			free(queue);
			queue = next;
			p = queue;
			continue;
		}
		if (more && !S_ISDIR(info.st_mode)) {
			close(nfd);
			return walk_fail(e, ENOTDIR, fd, queue);
		}
		if (close(fd) < 0) {
			int err = errno;

			close(nfd);
			return walk_fail(e, err, -1, queue);
		}
		fd = nfd;
	}
	free(queue);
	if (fstat(fd, &info) < 0)
		return walk_fail(e, errno, fd, NULL);
	out->kind = SOURCE_FD;
	out->fd = fd;
	out->is_dir = S_ISDIR(info.st_mode);
	return 0;
}

/*
 * One source per bind step (in order), then one per device node, then /dev/null again
 * (for masks). A missing source that is not optional, or a refused symlink, stops the
 * run; the device nodes are trusted only when root owns every symlink on the way.
 */
struct source *open_sources(const struct context *ctx)
{
	size_t n = 0, at = 0;
	struct source *sources;
	struct walk_error e;

	for (size_t i = 0; i < ctx->n_mounts; i++)
		n += strcmp(ctx->mounts[i].kind, "bind") == 0;
	sources = calloc(n + N_DEVICES + 1, sizeof(*sources));
	if (!sources)
		fail("bind_source", ENOMEM, NULL);
	for (size_t i = 0; i < ctx->n_mounts; i++) {
		const struct mount_step *step = &ctx->mounts[i];

		if (strcmp(step->kind, "bind") != 0)
			continue;
		if (open_nofollow(step->src, 0, ctx->caller_uid, &sources[at], &e) < 0)
			failf("bind_source", e.err, step->src, "%s", e.detail);
		if (sources[at].kind == SOURCE_MISSING && !step->optional)
			failf("bind_source", ENOENT, step->src, "bind for %s", step->dst);
		at++;
	}
	for (size_t i = 0; i <= N_DEVICES; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/dev/%s", device_nodes[i % N_DEVICES]);
		if (open_nofollow(path, 0, 0, &sources[at], &e) < 0)
			fail("dev", e.err, path);
		if (sources[at].kind != SOURCE_FD)
			failf("dev", ENOENT, path, "not a device node");
		at++;
	}
	return sources;
}

static void close_or_fail(int fd, const char *step, const char *dst)
{
	if (close(fd) < 0)
		fail(step, errno, dst);
}

/*
 * dst made to exist beneath dir_fd (parents too) as a directory, or as an empty file when
 * !is_dir, and returned opened O_PATH; `shown` names it in errors.
 *
 * Each component is created and opened relative to the one before, with openat2 refusing
 * a symlink or a way out, and the mount then goes onto the descriptor. A path string
 * would be resolved again at mount time: a concurrent run sharing a writable bind could
 * swap a link in between the check and the mount, and a read-only bind meant to shield
 * part of that bind (.git in a workspace) would land elsewhere.
 */
static int mountpoint_at(int dir_fd, const char *dst, bool is_dir, const char *shown)
{
	const char *name = dst;
	char comp[NAME_MAX + 1];
	size_t len;
	struct stat info;
	int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		fail("mountpoint", errno, shown);
	while ((name = component(name, &len))) {
		bool last;
		int next;

		if (len > NAME_MAX)
			fail("mountpoint", ENAMETOOLONG, shown);
		memcpy(comp, name, len);
		comp[len] = '\0';
		name += len;
		last = component(name, &len) == NULL;
		if (last && !is_dir) {
			next = openat(fd, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				      0444);
			if ((next < 0 && errno != EEXIST) || (next >= 0 && close(next) < 0))
				fail("mountpoint", errno, shown);
		} else if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
			fail("mountpoint", errno, shown);
		}
		next = sys_openat2(fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC,
				   RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
		if (next < 0 && (errno == ELOOP || errno == EXDEV))
			failf("mountpoint", errno, shown, "%s leaves the root", comp);
		if (next < 0 || fstat(next, &info) < 0)
			fail("mountpoint", errno, shown);
		if (S_ISLNK(info.st_mode))
			failf("mountpoint", ELOOP, shown, "%.*s is a symlink",
			      (int)(name - dst), dst);
		if (!last && !S_ISDIR(info.st_mode))
			fail("mountpoint", ENOTDIR, shown);
		close_or_fail(fd, "mountpoint", shown);
		fd = next;
	}
	return fd;
}

static int mountpoint(int root_fd, const char *dst, bool is_dir)
{
	return mountpoint_at(root_fd, dst, is_dir, dst);
}

/* The kernel cannot report a flag it silently dropped: check what fd is on with statvfs. */
static void verify_fd(int fd, const char *dst, bool readonly, const char *step)
{
	struct statvfs info;
	unsigned long want = ST_NOSUID | (readonly ? ST_RDONLY : 0);

	if (fstatvfs(fd, &info) < 0)
		fail(step, errno, dst);
	if ((info.f_flag & want) != want)
		failf(step, 0, dst, "mount flags 0x%lx lack 0x%lx after mounting", info.f_flag,
		      want);
}

/*
 * Clone the tree at fd detached, set attrs recursively, attach it on to_fd.
 *
 * Setting the flags before attaching means the tree is never visible writable or with
 * suid honoured, not even for an instant, and AT_RECURSIVE covers submounts as well (a
 * plain remount would leave /usr/sub writable).
 */
static void attach_clone_on(int fd, int to_fd, uint64_t attrs, const char *dst,
			    const char *step)
{
	int tree = sys_open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
				 AT_RECURSIVE);
	const char *call = "mount_setattr";
	int err = 0;

	if (tree < 0)
		failf(step, errno, dst, "open_tree");
	if (sys_mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, attrs) < 0)
		err = errno;
	else if (sys_move_mount_fd(tree, to_fd) < 0)
		err = errno, call = "move_mount";
	if (close(tree) < 0 && !err)
		fail(step, errno, dst);
	if (err)
		failf(step, err, dst, "%s: %s", call, strerror(err));
}

static void do_mount(const char *source, const char *path, const char *fstype,
		     unsigned long flags, const char *data, const char *dst, const char *step)
{
	if (mount(source, path, fstype, flags, data) < 0)
		failf(step, errno, dst, "%s", data);
}

/*
 * A new filesystem (options: key, value pairs, a NULL value for a flag, NULL-terminated),
 * made with attrs, attached on to_fd; returns the new mount's root. The new mount API:
 * the flags are on the mount before it is attached, and the target is a descriptor.
 */
static int new_fs_on(int to_fd, const char *fstype, const char *const *options, uint64_t attrs,
		     const char *dst, const char *step)
{
	char detail[256] = "";
	int fs = sys_fsopen(fstype, FSOPEN_CLOEXEC), mnt = -1, err = 0;
	size_t at = 0;

	/* The options as mount(2) data ("mode=0755,size=64k"), for an error report. */
	for (size_t i = 0; options[i] && at < sizeof(detail) - 1; i += 2) {
		int n = snprintf(detail + at, sizeof(detail) - at, "%s%s%s%s", i ? "," : "",
				 options[i], options[i + 1] ? "=" : "",
				 options[i + 1] ? options[i + 1] : "");

		if (n < 0)
			break;
		at += (size_t)n;
	}
	if (fs < 0)
		failf(step, errno, dst, "fsopen %s", fstype);
	for (size_t i = 0; options[i] && !err; i += 2)
		if (sys_fsconfig(fs, options[i + 1] ? SPAWN_FSCONFIG_SET_STRING :
				 SPAWN_FSCONFIG_SET_FLAG, options[i], options[i + 1]) < 0)
			err = errno;
	if (!err && sys_fsconfig(fs, SPAWN_FSCONFIG_CMD_CREATE, NULL, NULL) < 0)
		err = errno;
	if (!err && (mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, (unsigned int)attrs)) < 0)
		err = errno;
	if (!err && sys_move_mount_fd(mnt, to_fd) < 0)
		err = errno;
	if (close(fs) < 0 && !err)
		err = errno;
	if (err)
		failf(step, err, dst, "%s", detail);
	return mnt;
}

/*
 * dst opened as O_PATH beneath the new root, refusing a symlink anywhere on the way (a
 * trailing one is returned as itself) and any way out of the root; -1 with errno.
 *
 * Why not root + dst as a string: before pivot_root an absolute symlink resolves in the
 * host's tree. A program that can write a bind (a workspace) plants secrets -> /home/u/ws/s2
 * in one run; in the next, the mask of /ws/secrets/key.pem would land on the host's copy
 * of the file in this mount namespace, gone once the old root is detached, and the key
 * would stay readable at /ws/s2/key.pem (statvfs, following the same link, agreed).
 * Mounting on the descriptor also leaves no gap for a concurrent run to swap a link in.
 */
static int open_beneath(int root_fd, const char *dst)
{
	while (*dst == '/')
		dst++;
	return sys_openat2(root_fd, *dst ? dst : ".", O_PATH | O_NOFOLLOW | O_CLOEXEC,
			   RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
}

/* open_beneath for a mask or readonly step: -1 when optional and absent. */
static int open_target(int root_fd, const struct mount_step *step, const char *name)
{
	int fd = open_beneath(root_fd, step->dst);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT && step->optional)
		return -1;
	if (errno == ELOOP || errno == EXDEV)
		failf(name, errno, step->dst, "a component is a symlink or leaves the root");
	fail(name, errno, step->dst);
}

/* verify_fd on what dst now resolves to beneath the root (the new mount on top): what
 * the program will find there. */
static void verify_beneath(int root_fd, const char *dst, bool readonly, const char *step)
{
	int fd = open_beneath(root_fd, dst);

	if (fd < 0)
		fail(step, errno, dst);
	verify_fd(fd, dst, readonly, step);
	close_or_fail(fd, step, dst);
}

static void bind_step(int root_fd, const struct mount_step *step, const struct source *src)
{
	const char *dst = step->dst;
	int fd;

	if (src->kind == SOURCE_MISSING)
		return;  /* optional and absent (open_sources refused the rest) */
	if (src->kind == SOURCE_SYMLINK) {
		/* Recreated in its parent directory, created as any mount point is. */
		const char *slash = strrchr(dst, '/');
		char parent[PATH_SIZE];
		size_t len = slash ? (size_t)(slash - dst) : 0;

		if (len >= sizeof(parent))
			fail("mountpoint", ENAMETOOLONG, dst);
		memcpy(parent, dst, len);
		parent[len] = '\0';
		fd = mountpoint(root_fd, parent, true);
		if (symlinkat(src->target, fd, slash ? slash + 1 : dst) < 0)
			failf("bind", errno, dst, "symlink to %s", src->target);
		close_or_fail(fd, "bind", dst);
		return;
	}
	fd = mountpoint(root_fd, dst, src->is_dir);
	attach_clone_on(src->fd, fd, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
			(step->writable ? 0 : MOUNT_ATTR_RDONLY), dst, "bind");
	close_or_fail(src->fd, "bind", dst);
	close_or_fail(fd, "bind", dst);
	verify_beneath(root_fd, dst, !step->writable, "bind");
}

/* A minimal /dev: host device nodes bound in, private pts and shm, the usual links. Built
 * inside its own new tmpfs, through that mount's descriptor. */
static void dev(int root_fd, const struct mount_step *step, const struct source *devices,
		uid_t uid, gid_t gid)
{
	static const char *const links[][2] = {
		{ "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
	};
	static const char *const top[] = { "mode", "0755", "size", "64k", NULL };
	static const char *const pts[] = { "newinstance", NULL, "ptmxmode", "0666", "mode", "0620",
					   NULL };
	const char *dst = step->dst;
	char size[32], uid_s[16], gid_s[16], sub[PATH_SIZE];
	const char *const shm[] = { "mode", "1777", "size", size, "uid", uid_s, "gid", gid_s,
				    NULL };
	int at = mountpoint(root_fd, dst, true), dev_fd, fd;

	snprintf(size, sizeof(size), "%lld", step->size ? (long long)step->size : 64LL << 20);
	snprintf(uid_s, sizeof(uid_s), "%u", (unsigned)uid);
	snprintf(gid_s, sizeof(gid_s), "%u", (unsigned)gid);
	/* nodev on the tmpfs itself: the bound nodes are separate mounts and keep working,
	 * but nothing created here later can be a device. */
	dev_fd = new_fs_on(at, "tmpfs", top, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
			   MOUNT_ATTR_NOEXEC, dst, "dev");
	close_or_fail(at, "dev", dst);
	for (size_t i = 0; i < N_DEVICES; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dst, device_nodes[i]);
		fd = mountpoint_at(dev_fd, device_nodes[i], false, sub);
		attach_clone_on(devices[i].fd, fd, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, sub,
				"dev");
		close_or_fail(fd, "dev", sub);
	}
	/* A private devpts instance: the sandbox cannot reach the host's terminals through it. */
	snprintf(sub, sizeof(sub), "%s/pts", dst);
	fd = mountpoint_at(dev_fd, "pts", true, sub);
	close_or_fail(new_fs_on(fd, "devpts", pts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, sub,
				"dev"), "dev", sub);
	close_or_fail(fd, "dev", sub);
	snprintf(sub, sizeof(sub), "%s/shm", dst);
	fd = mountpoint_at(dev_fd, "shm", true, sub);
	close_or_fail(new_fs_on(fd, "tmpfs", shm, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
				MOUNT_ATTR_NOEXEC, sub, "dev"), "dev", sub);
	close_or_fail(fd, "dev", sub);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i][1], dev_fd, links[i][0]) < 0)
			failf("dev", errno, dst, "%s", links[i][0]);
	/* Nothing may be added to /dev once built (its submounts keep their own flags). */
	if (sys_mount_setattr(dev_fd, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
			      MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) < 0)
		failf("dev", errno, dst, "read-only remount");
	close_or_fail(dev_fd, "dev", dst);
	verify_beneath(root_fd, dst, true, "dev");
}

/* Hide a path: /dev/null over a file, an empty read-only tmpfs over a directory. */
static void mask(int root_fd, const struct mount_step *step, const struct source *null)
{
	const char *dst = step->dst;
	static const char *const empty[] = { "mode", "0555", "size", "4k", NULL };
	struct stat info;
	int fd = open_target(root_fd, step, "mask");

	if (fd < 0)
		return;
	if (fstat(fd, &info) < 0)
		fail("mask", errno, dst);
	if (S_ISDIR(info.st_mode))
		close_or_fail(new_fs_on(fd, "tmpfs", empty, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, dst, "mask"), "mask", dst);
	else if (S_ISLNK(info.st_mode))
		failf("mask", ELOOP, dst, "is a symlink; mask its target instead");
	else
		attach_clone_on(null->fd, fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
				MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, dst, "mask");
	close_or_fail(fd, "mask", dst);
	verify_beneath(root_fd, dst, true, "mask");
}

/* Make an existing path (and everything below it) read-only with a recursive rebind. */
static void readonly(int root_fd, const struct mount_step *step)
{
	const char *dst = step->dst;
	struct stat info;
	int fd = open_target(root_fd, step, "readonly");

	if (fd < 0)
		return;
	/* A link itself made read-only would still lead to its writable target (and the
	 * check below, which does not follow it, would pass). */
	if (fstat(fd, &info) < 0)
		fail("readonly", errno, dst);
	if (S_ISLNK(info.st_mode))
		failf("readonly", ELOOP, dst, "is a symlink; make its target read-only instead");
	attach_clone_on(fd, fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
			dst, "readonly");
	close_or_fail(fd, "readonly", dst);
	verify_beneath(root_fd, dst, true, "readonly");
}

static void tmpfs(int root_fd, const struct mount_step *step, uid_t uid, gid_t gid)
{
	char mode[32], size[32], uid_s[16], gid_s[16];
	const char *options[] = { "mode", mode, "uid", uid_s, "gid", gid_s,
				  step->size ? "size" : NULL, size, NULL };
	int fd = mountpoint(root_fd, step->dst, true);

	snprintf(mode, sizeof(mode), "%llo", (unsigned long long)step->mode);
	snprintf(uid_s, sizeof(uid_s), "%u", (unsigned)uid);
	snprintf(gid_s, sizeof(gid_s), "%u", (unsigned)gid);
	snprintf(size, sizeof(size), "%lld", (long long)step->size);
	close_or_fail(new_fs_on(fd, "tmpfs", options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
				(step->writable ? 0 : MOUNT_ATTR_RDONLY), step->dst, "tmpfs"),
		      "tmpfs", step->dst);
	close_or_fail(fd, "tmpfs", step->dst);
	verify_beneath(root_fd, step->dst, !step->writable, "tmpfs");
}

/* A procfs of the new pid namespace: host processes are not in it. hidepid: the program
 * does not see pid 1 (the launcher's init, another uid) either. */
static void proc(int root_fd, const struct mount_step *step)
{
	static const char *const options[] = { "hidepid", "invisible", NULL };
	int fd = mountpoint(root_fd, step->dst, true);

	close_or_fail(new_fs_on(fd, "proc", options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
				MOUNT_ATTR_NOEXEC, step->dst, "proc"), "proc", step->dst);
	close_or_fail(fd, "proc", step->dst);
}

/* Build the sandbox root from the mount steps and switch to it (pid 1, or the holder
 * without a pid namespace). */
void build_root(const struct context *ctx, struct source *sources)
{
	const char *root = STAGING;
	size_t n_binds = 0, bind_index = 0;
	int root_fd;

	for (size_t i = 0; i < ctx->n_mounts; i++)
		n_binds += strcmp(ctx->mounts[i].kind, "bind") == 0;
	const struct source *devices = sources + n_binds;
	const struct source *null = &devices[N_DEVICES];

	/* Mount events must not travel between the sandbox and the host in either direction. */
	do_mount("", "/", "", MS_REC | MS_PRIVATE, "", "/", "make_private");
	/* The new root: an empty tmpfs; it holds only mount points and symlinks. */
	do_mount("tmpfs", STAGING, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m", "/",
		 "root_tmpfs");
	root_fd = open(STAGING, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		fail("root_tmpfs", errno, "/");
	for (size_t i = 0; i < ctx->n_mounts; i++) {
		const struct mount_step *step = &ctx->mounts[i];
		const char *kind = step->kind;

		if (strcmp(kind, "bind") == 0) {
			bind_step(root_fd, step, &sources[bind_index++]);
		} else if (strcmp(kind, "tmpfs") == 0) {
			tmpfs(root_fd, step, ctx->uid, ctx->gid);
		} else if (strcmp(kind, "proc") == 0) {
			proc(root_fd, step);
		} else if (strcmp(kind, "dev") == 0) {
			dev(root_fd, step, devices, ctx->uid, ctx->gid);
		} else if (strcmp(kind, "mask") == 0) {
			mask(root_fd, step, null);
		} else if (strcmp(kind, "readonly") == 0) {
			readonly(root_fd, step);
		} else {
			char repr[4 * PATH_MAX];

			failf("mounts", EINVAL, step->dst, "unknown mount kind %s",
			      pyrepr(kind, repr, sizeof(repr)));
		}
	}
	for (size_t i = 0; i <= N_DEVICES; i++)
		close_or_fail(devices[i].fd, "dev", NULL);
	close_or_fail(root_fd, "root_tmpfs", "/");
	/* Switch roots: pivot_root(".", ".") stacks the old root on top of the new one, and
	 * the detach removes it, so no path in the sandbox leads to the host's tree. */
	if (chdir(root) < 0 || sys_pivot_root(".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0)
		fail("pivot_root", errno, root);
	/* The root itself is read-only: writable places are only the binds and tmpfs the
	 * policy names. */
	if (sys_mount_setattr(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
			      MOUNT_ATTR_NODEV) < 0)
		fail("root_readonly", errno, "/");
	root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		fail("root_readonly", errno, "/");
	verify_fd(root_fd, "/", true, "root_readonly");
	close_or_fail(root_fd, "root_readonly", "/");
}
