/*
 * Kernel calls made with syscall(2): the new mount API,
 * openat2, pivot_root, close_range, capset/capget and seccomp, so that the helper builds with
 * libc headers that predate their wrappers. Each returns -1 with errno on failure.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "spawn.h"

/* Numbers from 424 up are the same on every architecture. */
#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_fsconfig
#define __NR_fsconfig 431
#endif
#ifndef __NR_fsmount
#define __NR_fsmount 432
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040

/* struct open_how of linux/openat2.h (older headers lack it). */
struct spawn_open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};

/* struct mount_attr of linux/mount.h (not included: it clashes with sys/mount.h). */
struct spawn_mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};

int sys_open_tree(int dirfd, const char *path, unsigned int flags)
{
	return (int)syscall(__NR_open_tree, dirfd, path, flags);
}

/* Attach the detached tree from_fd on the file or directory to_fd refers to. */
int sys_move_mount_fd(int from_fd, int to_fd)
{
	return (int)syscall(__NR_move_mount, from_fd, "", to_fd, "",
			    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct spawn_open_how how = { .flags = flags, .resolve = resolve };

	return (int)syscall(__NR_openat2, dirfd, path, &how, sizeof(how));
}

int sys_fsopen(const char *fstype, unsigned int flags)
{
	return (int)syscall(__NR_fsopen, fstype, flags);
}

int sys_fsconfig(int fd, unsigned int cmd, const char *key, const char *value)
{
	return (int)syscall(__NR_fsconfig, fd, cmd, key, value, 0);
}

int sys_fsmount(int fd, unsigned int flags, unsigned int attrs)
{
	return (int)syscall(__NR_fsmount, fd, flags, attrs);
}

int sys_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set)
{
	struct spawn_mount_attr attr = { .attr_set = attr_set };

	return (int)syscall(__NR_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

int sys_pivot_root(const char *new_root, const char *put_old)
{
	return (int)syscall(__NR_pivot_root, new_root, put_old);
}

int sys_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
	return (int)syscall(__NR_close_range, first, last, flags);
}

/* The kernel's own sigaction, for any signal: the C library's refuses the two it reserves
 * for itself (32, 33), which glibc's posix_spawn leaves ignored in the child it starts.
 * All zeroes is SIG_DFL with no flags and an empty mask in every architecture's layout. */
int sys_default_signal(int sig)
{
	unsigned long action[4] = { 0 };

	return (int)syscall(__NR_rt_sigaction, sig, action, NULL, sizeof(uint64_t));
}

int sys_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
	struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = {
		{ (uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable },
		{ (uint32_t)(effective >> 32), (uint32_t)(permitted >> 32),
		  (uint32_t)(inheritable >> 32) },
	};

	return (int)syscall(__NR_capset, &header, data);
}

int sys_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable)
{
	struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { { 0, 0, 0 }, { 0, 0, 0 } };

	if (syscall(__NR_capget, &header, data) != 0)
		return -1;
	*effective = data[0].effective | ((uint64_t)data[1].effective << 32);
	*permitted = data[0].permitted | ((uint64_t)data[1].permitted << 32);
	*inheritable = data[0].inheritable | ((uint64_t)data[1].inheritable << 32);
	return 0;
}

/* Returns the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0. */
int sys_seccomp_filter(unsigned int flags, const struct sock_fprog *prog)
{
	return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
}
