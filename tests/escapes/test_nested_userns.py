"""Promise: no nested user namespace (the door to every other namespace and to kernel
attack surface that needs CAP_SYS_ADMIN)."""


def test_unshare_user_is_killed(sandbox):
    """``unshare -U`` dies; the verdict names unshare."""
    result = sandbox.run(["unshare", "-U", "true"])
    assert result.verdict == "seccomp-violation", result
    assert result.denied is not None and result.denied.name == "unshare"
