/*
 * Loading the compiled filter and handing over its listener (the supervisor's side is seccomp_notify.py).
 *
 * The filter comes in compiled (the context's bpf): the helper does not compile, so what
 * the kernel enforces is exactly what the launcher audited. Loading is the last step
 * before execve; from here on the program side makes only the calls the spec builder
 * ran through the BPF simulator (prctl(PR_GET_SECCOMP, 0, 0, 0, 0), sendmsg on fd 4,
 * write of an error report, execve), and allocates nothing.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "spawn.h"

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif

/* Load the filter; returns the listener fd when notifying, else -1. */
int load_filter(const struct context *ctx)
{
	int result = sys_seccomp_filter(ctx->notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0,
					&ctx->filter);

	if (result < 0)
		failf("seccomp", errno, NULL, "SECCOMP_SET_MODE_FILTER");
	if (ctx->verify_seccomp) {
		/* The filter allows this call (the simulator checked it when the spec was
		 * built; verify_seccomp is 0 otherwise). */
		int mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);

		if (mode < 0)
			failf("seccomp", errno, NULL, "PR_GET_SECCOMP");
		if (mode != 2)
			failf("seccomp", 0, NULL, "PR_GET_SECCOMP says mode %d, not 2", mode);
	}
	return ctx->notify ? result : -1;
}

/* Hand the listener to the supervisor. Once sendmsg returns, the message in flight holds
 * the listener open, so exec (which closes our copy) cannot orphan the notifier. */
void send_listener(int listener)
{
	char byte = 'N';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;

	memset(&control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
	if (sendmsg(SYNC_FD, &msg, 0) < 0)
		failf("seccomp", errno, NULL, "handing over the listener");
}
