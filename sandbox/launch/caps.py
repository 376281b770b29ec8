"""Capabilities: empty every set except the policy's keep-list, then check the result.

Why every set: the bounding set limits what any later exec can gain (file caps, setuid
root inside the namespace); ambient is what survives exec for a non-root uid;
inheritable, permitted and effective are what the process holds now. Child-side.
"""

from __future__ import annotations

from sandbox.launch import kernel as k
from sandbox.launch.errors import SetupError

__all__ = ["drop_bounding", "set_caps", "verify_status"]

PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def drop_bounding(keep_mask: int, last_cap: int) -> None:
    """Drop every capability not kept from the bounding set (needs CAP_SETPCAP: do it first)."""
    for cap in range(last_cap + 1):
        if not keep_mask & (1 << cap):
            try:
                k.prctl(PR_CAPBSET_DROP, cap)
            except OSError as exc:
                raise SetupError("capabilities", exc.errno or 1, None,
                                 f"PR_CAPBSET_DROP {cap}") from None


def keep_caps(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep permitted caps across the uid change that follows."""
    try:
        k.prctl(PR_SET_KEEPCAPS, 1 if on else 0)
    except OSError as exc:
        raise SetupError("capabilities", exc.errno or 1, None, "PR_SET_KEEPCAPS") from None


def set_caps(keep_mask: int, keep: list[int]) -> None:
    """Effective, permitted, inheritable := keep; ambient := keep (so it survives exec)."""
    try:
        k.capset(keep_mask, keep_mask, keep_mask)
        k.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        for cap in keep:
            k.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
    except OSError as exc:
        raise SetupError("capabilities", exc.errno or 1, None, str(exc.strerror)) from None


def verify_status(status: str, keep_mask: int) -> None:
    """Check /proc/self/status text: NoNewPrivs 1, every Cap* set exactly the keep-list."""
    fields = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    expect = {
        "NoNewPrivs": "1",
        "CapInh": f"{keep_mask:016x}",
        "CapPrm": f"{keep_mask:016x}",
        "CapEff": f"{keep_mask:016x}",
        "CapBnd": f"{keep_mask:016x}",
        "CapAmb": f"{keep_mask:016x}",
    }
    for name, want in expect.items():
        got = fields.get(name)
        if got != want:
            raise SetupError("verify", 0, "/proc/self/status", f"{name} is {got}, expected {want}")
