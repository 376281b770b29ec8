/*
 * The launch context (fd 3): the bytes spawner.encode_context wrote, in WIRE.md's layout,
 * decoded into a struct context before anything else happens.
 *
 * Why validate what our own launcher wrote: the helper runs with the caller's privileges
 * and acts on these values (ids to become, capabilities to keep), so a truncated or
 * inconsistent context must stop the run, never be read as zeros. In particular an id of
 * -1 would mean "unchanged" to setresuid and keep the caller's identity.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"

#define MAX_CONTEXT (64u << 20)
#define NONE 0xFFFFFFFFu
#define MAX_ID 0xFFFFFFFEu  /* (uid_t)-1 means "unchanged" to setresuid */

struct reader {
	const unsigned char *p;
	const unsigned char *end;
};

static noreturn void malformed(const char *what, const char *field)
{
	failf("context", EINVAL, NULL, "%s%s", what, field);
}

static void *xalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size);

	if (!p)
		failf("context", ENOMEM, NULL, "allocating the context");
	return p;
}

static const unsigned char *take(struct reader *r, size_t n, const char *field)
{
	const unsigned char *p = r->p;

	if ((size_t)(r->end - r->p) < n)
		malformed("truncated at ", field);
	r->p += n;
	return p;
}

static uint32_t u32(struct reader *r, const char *field)
{
	const unsigned char *p = take(r, 4, field);

	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t u64(struct reader *r, const char *field)
{
	const unsigned char *p = take(r, 8, field);
	uint64_t value = 0;

	for (int i = 7; i >= 0; i--)
		value = value << 8 | p[i];
	return value;
}

static int64_t i64(struct reader *r, const char *field)
{
	return (int64_t)u64(r, field);
}

static bool flag(int64_t value, const char *field)
{
	if (value != 0 && value != 1)
		malformed("not 0 or 1: ", field);
	return value == 1;
}

static int64_t in_range(int64_t value, int64_t low, int64_t high, const char *field)
{
	if (value < low || value > high)
		malformed("out of range: ", field);
	return value;
}

/* A count of items that each take at least `least` bytes: never more than what is left. */
static size_t count(struct reader *r, size_t least, const char *field)
{
	uint32_t n = u32(r, field);

	if ((size_t)n > (size_t)(r->end - r->p) / least)
		malformed("truncated at ", field);
	return n;
}

/* str (u32 length + bytes, no NUL) as a NUL-terminated copy; optstr gives NULL for none. */
static char *text(struct reader *r, const char *field, bool optional)
{
	uint32_t len = u32(r, field);
	const unsigned char *bytes;
	char *copy;

	if (len == NONE) {
		if (optional)
			return NULL;
		malformed("missing: ", field);
	}
	bytes = take(r, len, field);
	if (memchr(bytes, '\0', len))
		malformed("NUL byte in ", field);
	copy = xalloc((size_t)len + 1, 1);
	memcpy(copy, bytes, len);
	return copy;
}

static char **texts(struct reader *r, const char *field)
{
	size_t n = count(r, 4, field);
	char **list = xalloc(n + 1, sizeof(*list));

	for (size_t i = 0; i < n; i++)
		list[i] = text(r, field, false);
	return list;
}

static unsigned char *read_all(int fd, size_t *length)
{
	size_t size = 65536, used = 0;
	unsigned char *buf = xalloc(size, 1);

	for (;;) {
		ssize_t n;

		if (used == size) {
			if (size >= MAX_CONTEXT)
				failf("context", EINVAL, NULL, "larger than %u bytes", MAX_CONTEXT);
			size *= 2;
			buf = realloc(buf, size);
			if (!buf)
				failf("context", ENOMEM, NULL, "allocating the context");
		}
		n = read(fd, buf + used, size - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			failf("context", errno, NULL, "reading fd %d", fd);
		if (n == 0)
			break;
		used += (size_t)n;
	}
	*length = used;
	return buf;
}

static void read_mounts(struct reader *r, struct context *ctx)
{
	/* each step: three str and four i64 */
	ctx->n_mounts = count(r, 3 * 4 + 4 * 8, "mounts");
	ctx->mounts = xalloc(ctx->n_mounts, sizeof(*ctx->mounts));
	for (size_t i = 0; i < ctx->n_mounts; i++) {
		struct mount_step *m = &ctx->mounts[i];

		m->kind = text(r, "mount kind", false);
		m->src = text(r, "mount src", false);
		m->dst = text(r, "mount dst", false);
		m->writable = flag(i64(r, "mount writable"), "mount writable");
		m->optional = flag(i64(r, "mount optional"), "mount optional");
		m->size = in_range(i64(r, "mount size"), 0, INT64_MAX, "mount size");
		m->mode = in_range(i64(r, "mount mode"), 0, 07777, "mount mode");
	}
}

static void read_filter(struct reader *r, struct context *ctx)
{
	uint32_t len = u32(r, "bpf");
	const unsigned char *bytes = take(r, len, "bpf");
	struct sock_filter *insns;

	if (len % sizeof(struct sock_filter) != 0)
		malformed("not whole instructions: ", "bpf");
	if (len / sizeof(struct sock_filter) > USHRT_MAX)
		malformed("too many instructions: ", "bpf");
	/* A copy: the instructions must be aligned, and the context buffer is freed. */
	insns = xalloc(len / sizeof(struct sock_filter), sizeof(struct sock_filter));
	memcpy(insns, bytes, len);
	ctx->filter.len = (unsigned short)(len / sizeof(struct sock_filter));
	ctx->filter.filter = insns;
}

struct context *read_context(int fd)
{
	struct context *ctx = xalloc(1, sizeof(*ctx));
	size_t length;
	unsigned char *data = read_all(fd, &length);
	struct reader r = { data, data + length };
	uint64_t mask = 0;

	if (close(fd) < 0)
		failf("context", errno, NULL, "closing fd %d", fd);
	if (memcmp(take(&r, 8, "magic"), "SBXSPWN1", 8) != 0)
		malformed("bad magic", "");
	ctx->launcher_pid = (pid_t)in_range(i64(&r, "launcher_pid"), 1, INT_MAX, "launcher_pid");
	ctx->unshare_flags = (int)in_range(i64(&r, "unshare_flags"), 0, INT_MAX, "unshare_flags");
	ctx->new_pid = flag(i64(&r, "new_pid"), "new_pid");
	ctx->new_mount = flag(i64(&r, "new_mount"), "new_mount");
	ctx->new_cgroup = flag(i64(&r, "new_cgroup"), "new_cgroup");
	ctx->caller_uid = (uid_t)in_range(i64(&r, "caller_uid"), 0, MAX_ID, "caller_uid");
	ctx->drop_groups = flag(i64(&r, "drop_groups"), "drop_groups");
	ctx->setup_uid = (uid_t)in_range(i64(&r, "setup_uid"), 0, MAX_ID, "setup_uid");
	ctx->setup_gid = (gid_t)in_range(i64(&r, "setup_gid"), 0, MAX_ID, "setup_gid");
	ctx->uid = (uid_t)in_range(i64(&r, "uid"), 0, MAX_ID, "uid");
	ctx->gid = (gid_t)in_range(i64(&r, "gid"), 0, MAX_ID, "gid");
	ctx->keep_mask = u64(&r, "keep_mask");
	ctx->last_cap = (int)in_range(i64(&r, "last_cap"), 0, 63, "last_cap");
	ctx->loopback = flag(i64(&r, "loopback"), "loopback");
	ctx->notify = flag(i64(&r, "notify"), "notify");
	ctx->verify_seccomp = flag(i64(&r, "verify_seccomp"), "verify_seccomp");
	ctx->hostname = text(&r, "hostname", true);
	ctx->cwd = text(&r, "cwd", false);
	ctx->uid_map_text = text(&r, "uid_map_text", true);
	ctx->gid_map_text = text(&r, "gid_map_text", true);
	ctx->argv = texts(&r, "argv");
	if (!ctx->argv[0])
		malformed("empty: ", "argv");
	ctx->env = texts(&r, "env");
	ctx->path_dirs = texts(&r, "path_dirs");
	ctx->n_keep = count(&r, 8, "keep");
	ctx->keep = xalloc(ctx->n_keep, sizeof(*ctx->keep));
	for (size_t i = 0; i < ctx->n_keep; i++) {
		ctx->keep[i] = (int)in_range(i64(&r, "keep"), 0, 63, "keep");
		mask |= 1ULL << ctx->keep[i];
	}
	if (mask != ctx->keep_mask)
		malformed("does not match keep: ", "keep_mask");
	ctx->n_rlimits = count(&r, 4 + 8 + 8, "rlimits");
	ctx->rlimits = xalloc(ctx->n_rlimits, sizeof(*ctx->rlimits));
	for (size_t i = 0; i < ctx->n_rlimits; i++) {
		ctx->rlimits[i].name = text(&r, "rlimit name", false);
		ctx->rlimits[i].resource = (int)in_range(i64(&r, "rlimit resource"), 0, INT_MAX,
							 "rlimit resource");
		ctx->rlimits[i].value = u64(&r, "rlimit value");
	}
	read_mounts(&r, ctx);
	read_filter(&r, ctx);
	if (memcmp(take(&r, 4, "trailer"), "END!", 4) != 0)
		malformed("bad trailer", "");
	if (r.p != r.end)
		malformed("trailing bytes", "");
	free(data);
	return ctx;
}
