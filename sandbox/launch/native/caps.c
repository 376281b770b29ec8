/*
 * Capabilities: empty every set except the policy's keep-list, then check the result.
 *
 * Why every set: the bounding set limits what any later exec can gain (file caps, setuid
 * root inside the namespace); ambient is what survives exec for a non-root uid;
 * inheritable, permitted and effective are what the process holds now.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "spawn.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#endif
#ifndef PR_CAP_AMBIENT_RAISE
#define PR_CAP_AMBIENT_RAISE 2
#endif
#ifndef PR_CAP_AMBIENT_IS_SET
#define PR_CAP_AMBIENT_IS_SET 1
#endif
#ifndef PR_CAP_AMBIENT_CLEAR_ALL
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* Drop every capability not kept from the bounding set (needs CAP_SETPCAP: do it first).
 * Returns -1 with errno and *failed_cap on failure: pid 1 must kill the program then,
 * the program reports it. */
int drop_bounding(uint64_t keep_mask, int last_cap, int *failed_cap)
{
	for (int cap = 0; cap <= last_cap; cap++) {
		if (keep_mask & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			*failed_cap = cap;
			return -1;
		}
	}
	return 0;
}

/* PR_SET_KEEPCAPS: keep permitted caps across the uid change that follows. */
void keep_caps(bool on)
{
	if (prctl(PR_SET_KEEPCAPS, on ? 1 : 0, 0, 0, 0) < 0)
		failf("capabilities", errno, NULL, "PR_SET_KEEPCAPS");
}

/* Effective, permitted, inheritable := keep; ambient := keep (so it survives exec). */
void set_caps(uint64_t keep_mask, const int *keep, size_t n_keep)
{
	/* The detail names the call ("capset: ...") as the launcher's reports do. */
	if (sys_capset(keep_mask, keep_mask, keep_mask) < 0)
		failf("capabilities", errno, NULL, "capset: %s", strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		failf("capabilities", errno, NULL, "prctl(%d): %s", PR_CAP_AMBIENT,
		      strerror(errno));
	for (size_t i = 0; i < n_keep; i++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, keep[i], 0, 0) < 0)
			failf("capabilities", errno, NULL, "prctl(%d): %s", PR_CAP_AMBIENT,
			      strerror(errno));
}

/* The value of the last "name:" line in /proc/self/status text, stripped, or NULL. */
static const char *status_field(const char *status, const char *name, char *out, size_t size)
{
	size_t name_len = strlen(name);
	const char *line = status, *found = NULL;
	size_t found_len = 0;

	while (*line) {
		size_t len = strcspn(line, "\n");
		const char *colon = memchr(line, ':', len);

		if (colon && (size_t)(colon - line) == name_len &&
		    memcmp(line, name, name_len) == 0) {
			const char *v = colon + 1, *end = line + len;

			while (v < end && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\v' ||
					   *v == '\f'))
				v++;
			while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
					   end[-1] == '\v' || end[-1] == '\f'))
				end--;
			found = v;
			found_len = (size_t)(end - v);
		}
		line += len + (line[len] == '\n');
	}
	if (!found)
		return NULL;
	if (found_len >= size)
		found_len = size - 1;
	memcpy(out, found, found_len);
	out[found_len] = '\0';
	return out;
}

/* The bounding and ambient sets, asked of the kernel capability by capability: what
 * CapBnd and CapAmb say when there is no /proc to read them from. */
void verify_bounding_ambient(uint64_t keep_mask, int last_cap)
{
	uint64_t bounding = 0, ambient = 0;

	for (int cap = 0; cap <= last_cap; cap++) {
		int in_bounding = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		int in_ambient = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);

		if (in_bounding < 0 || in_ambient < 0)
			failf("verify", errno, NULL, "reading capability %d", cap);
		bounding |= (uint64_t)(in_bounding == 1) << cap;
		ambient |= (uint64_t)(in_ambient == 1) << cap;
	}
	if (bounding != keep_mask || ambient != keep_mask)
		failf("verify", 0, NULL, "bounding 0x%" PRIx64 ", ambient 0x%" PRIx64
		      ", expected 0x%" PRIx64, bounding, ambient, keep_mask);
}

/* Check /proc/self/status text: NoNewPrivs 1, every Cap* set exactly the keep-list. */
void verify_status(const char *status, uint64_t keep_mask)
{
	static const char *const names[] = { "NoNewPrivs", "CapInh", "CapPrm", "CapEff",
					     "CapBnd", "CapAmb" };
	char want[32], value[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *got = status_field(status, names[i], value, sizeof(value));

		if (i == 0)
			snprintf(want, sizeof(want), "1");
		else
			snprintf(want, sizeof(want), "%016" PRIx64, keep_mask);
		if (!got || strcmp(got, want) != 0)
			failf("verify", 0, "/proc/self/status", "%s is %s, expected %s", names[i],
			      got ? got : "None", want);
	}
}
