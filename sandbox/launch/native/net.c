/*
 * network.mode = "loopback": bring lo up in the new network namespace and check that it
 * took effect.
 *
 * Why an ioctl and not netlink: setting one flag on one interface is a single
 * SIOCSIFFLAGS. The kernel assigns 127.0.0.1/8 and ::1 to lo by itself when it goes up
 * in a fresh namespace. A failure refuses the run rather than starting a program that
 * expects 127.0.0.1.
 */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spawn.h"

/* The report netns.loopback_up made of a NetworkSetupError.from_oserror. */
static noreturn void failed(const char *what, int err)
{
	const char *hint = (err == EPERM || err == EACCES)
		? " (private networking needs root; use loopback or none)" : "";

	failf("network", err, "lo", "network step 'loopback' failed: %s: %s%s (%s)", what,
	      strerror(err), hint, strerror(err));
}

static unsigned short lo_flags(int sock)
{
	struct ifreq req;

	memset(&req, 0, sizeof(req));
	strcpy(req.ifr_name, "lo");
	if (ioctl(sock, SIOCGIFFLAGS, &req) < 0)
		failed("SIOCGIFFLAGS lo", errno);
	return (unsigned short)req.ifr_flags;
}

void loopback_up(void)
{
	struct ifreq req;
	unsigned short after;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (sock < 0)
		failed("socket(AF_INET)", errno);
	memset(&req, 0, sizeof(req));
	strcpy(req.ifr_name, "lo");
	req.ifr_flags = (short)(lo_flags(sock) | IFF_UP);
	if (ioctl(sock, SIOCSIFFLAGS, &req) < 0)
		failed("SIOCSIFFLAGS lo up", errno);
	/* Verify: the ioctl can succeed on an interface that then does not run. */
	after = lo_flags(sock);
	if (close(sock) < 0)
		fail("network", errno, "lo");
	if (!(after & IFF_UP))
		failf("network", EIO, "lo", "network step 'loopback' failed: lo is still down "
		      "after SIOCSIFFLAGS (flags 0x%x)", after);
}
