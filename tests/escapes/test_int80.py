"""Promise: the i386 ABI (``int 0x80`` from a 64-bit program) cannot be used to get
around the filter: every such call ends the run."""

from __future__ import annotations

import pytest

SOURCE = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    long nr = %d, ret;
    puts("before");
    fflush(stdout);
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(0), "c"(0), "d"(0) : "memory");
    printf("returned %%ld\n", ret);
    return 0;
}
"""


@pytest.mark.parametrize(("name", "nr"), [("getpid", 20), ("mount", 21), ("unshare", 310),
                                          ("ptrace", 26)])
def test_int80_syscalls_are_killed(sandbox, name, nr):
    """Even i386 getpid dies: only the native ABI is allowed; the verdict says i386."""
    program = sandbox.compile_c(SOURCE % nr, f"int80_{name}")
    bind = f'[filesystem]\nro_bind = [{{ src = "{program.parent}", dst = "/opt/t" }}]'
    result = sandbox.run(["/opt/t/" + program.name], bind)
    assert result.verdict == "seccomp-violation", result
    assert result.denied is not None
    assert (result.denied.arch, result.denied.nr) == ("i386", nr)
    assert b"returned" not in result.stdout
