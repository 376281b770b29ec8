"""Promise: a memory bomb is stopped by the cgroup's memory limit (out-of-memory)."""

CODE = """
chunks = []
while True:
    chunks.append(bytearray(16 << 20))
"""


def test_memory_bomb_ends_with_out_of_memory(sandbox):
    """Allocating past 256M gets the program OOM-killed, and the verdict names it."""
    result = sandbox.python(CODE)
    assert result.verdict == "out-of-memory", result
    assert result.exit_code == 128 + 9
    assert result.peak_memory_bytes is not None
    assert result.peak_memory_bytes <= 256 * 1024 * 1024 + 4 * 1024 * 1024
