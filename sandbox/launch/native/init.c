/*
 * Pid 1 of the sandbox's pid namespace: reap every zombie,
 * forward signals, report the program's end.
 *
 * Why an init: orphans inside the namespace are re-parented to pid 1, and without a
 * reaper they pile up as zombies until the pids limit is reached; a program written to
 * run as a child (most are) also does not expect to be pid 1, which ignores
 * default-action signals. When the program exits, init reports its status and exits, and
 * the kernel then kills whatever else is left in the namespace: nothing outlives the
 * program.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

static const int forwarded_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
static volatile pid_t forward_to;

static void forward(int signum)
{
	int saved = errno;

	kill(forward_to, signum);
	errno = saved;
}

static void put_le(unsigned char *out, uint64_t value, size_t size)
{
	for (size_t i = 0; i < size; i++)
		out[i] = (unsigned char)(value >> (8 * i));
}

/* Forward signals to `program`, reap all children, report `program`'s end on status_fd
 * as struct "<iqqq": wait status, user µs, system µs, max RSS KiB. Returns true when the
 * program was reaped and reported, false when there was nothing left to reap first. */
bool reap_until(pid_t program, int status_fd)
{
	struct sigaction action;

	memset(&action, 0, sizeof(action));
	action.sa_handler = forward;
	action.sa_flags = SA_RESTART;
	sigemptyset(&action.sa_mask);
	forward_to = program;
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++) {
		if (sigaction(forwarded_signals[i], &action, NULL) < 0) {
			kill(program, SIGKILL);
			_exit(EXIT_SETUP);
		}
	}
	for (;;) {
		struct rusage usage;
		int status;
		pid_t pid = wait4(-1, &status, 0, &usage);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			return false;
		if (pid == program) {
			unsigned char report[4 + 3 * 8];

			put_le(report, (uint32_t)status, 4);
			put_le(report + 4, (uint64_t)((int64_t)usage.ru_utime.tv_sec * 1000000 +
						      usage.ru_utime.tv_usec), 8);
			put_le(report + 12, (uint64_t)((int64_t)usage.ru_stime.tv_sec * 1000000 +
						       usage.ru_stime.tv_usec), 8);
			put_le(report + 20, (uint64_t)(int64_t)usage.ru_maxrss, 8);
			if (write(status_fd, report, sizeof(report)) < 0) {
				/* As in Python: the launcher still sees pid 1 exit. */
			}
			return true;
		}
	}
}
