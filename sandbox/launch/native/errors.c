/*
 * SetupError reports (sandbox/launch/errors.py): which step failed, errno, path, detail.
 *
 * The wire form is SetupError.encode(): i32 errno (little-endian), then step NUL path
 * NUL detail, in one write, so the launcher reads a whole report or none. After the
 * report the process exits without exec'ing anything: 125, or 126/127 for "execve"
 * (found but not runnable / not found), as child._program did.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"

/* The error pipe: fd 4 until the program arranges its fds, then ERR_FD (3). */
int report_fd = ERR_W;

static size_t put(char *buf, size_t at, size_t size, const char *s, size_t len)
{
	if (at >= size)
		return size;
	if (len > size - at)
		len = size - at;
	memcpy(buf + at, s, len);
	return at + len;
}

static noreturn void report_and_exit(const char *step, int err, const char *path,
				     const char *detail)
{
	/* Static: this may run after the seccomp filter is loaded (nothing is allocated). */
	static char buf[4 + 16384];
	uint32_t code = (uint32_t)err;
	size_t at = 0;

	buf[at++] = (char)(code & 0xff);
	buf[at++] = (char)((code >> 8) & 0xff);
	buf[at++] = (char)((code >> 16) & 0xff);
	buf[at++] = (char)((code >> 24) & 0xff);
	at = put(buf, at, sizeof(buf), step, strlen(step));
	at = put(buf, at, sizeof(buf), "", 1);
	if (path)
		at = put(buf, at, sizeof(buf), path, strlen(path));
	at = put(buf, at, sizeof(buf), "", 1);
	at = put(buf, at, sizeof(buf), detail, strlen(detail));
	if (write(report_fd, buf, at) < 0) {
		/* As in Python's _report: with the pipe gone there is nobody to tell. */
	}
	if (strcmp(step, "execve") == 0)
		_exit(err == ENOENT ? 127 : 126);
	_exit(EXIT_SETUP);
}

noreturn void fail(const char *step, int err, const char *path)
{
	report_and_exit(step, err, path, "");
}

noreturn void failf(const char *step, int err, const char *path, const char *fmt, ...)
{
	char detail[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	report_and_exit(step, err, path, detail);
}

/* Length of the valid UTF-8 sequence at s, or 0 (Python decoded such bytes with
 * surrogateescape, and repr() shows them as \udcNN). */
static size_t utf8_length(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * Python's repr() of a str, the form the Python child side put in details such as
 * "symlink 'x' is owned by uid N". ASCII is escaped exactly as Python does; valid UTF-8
 * is kept except the Latin-1 controls and the no-break/soft hyphen (not printable to
 * Python); other non-printable code points beyond Latin-1 are kept as they are.
 */
const char *pyrepr(const char *s, char *out, size_t size)
{
	char quote = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';
	const unsigned char *p = (const unsigned char *)s;
	size_t at = 0;
	char esc[16];

	if (size == 0)
		return out;
	at = put(out, at, size, &quote, 1);
	while (*p) {
		size_t n;

		if (*p == '\\' || *p == (unsigned char)quote) {
			esc[0] = '\\';
			esc[1] = (char)*p;
			at = put(out, at, size, esc, 2);
			p++;
		} else if (*p == '\t' || *p == '\n' || *p == '\r') {
			esc[0] = '\\';
			esc[1] = *p == '\t' ? 't' : *p == '\n' ? 'n' : 'r';
			at = put(out, at, size, esc, 2);
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			at = put(out, at, size, esc, 4);
			p++;
		} else if (*p < 0x80) {
			at = put(out, at, size, (const char *)p, 1);
			p++;
		} else if ((n = utf8_length(p)) == 0) {
			snprintf(esc, sizeof(esc), "\\udc%02x", *p);
			at = put(out, at, size, esc, 6);
			p++;
		} else if (n == 2 && (p[0] == 0xc2 && (p[1] < 0xa1 || p[1] == 0xad))) {
			snprintf(esc, sizeof(esc), "\\x%02x", ((p[0] & 0x1f) << 6) | (p[1] & 0x3f));
			at = put(out, at, size, esc, 4);
			p += 2;
		} else {
			at = put(out, at, size, (const char *)p, n);
			p += n;
		}
	}
	at = put(out, at, size, &quote, 1);
	if (at >= size)
		at = size - 1;
	out[at] = '\0';
	return out;
}
