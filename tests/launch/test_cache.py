"""The compiled-plan cache: hits only while every input is unchanged and trusted."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.compile.plan_builder import compile_policy
from sandbox.launch.spec import LaunchSpec, spec_from_plan
from sandbox.plan import cache
from sandbox.policy.load import load_policy


def _entry(tmp_path, text='extends = "untrusted"\n'):
    policy_file = tmp_path / "p.toml"
    policy_file.write_text(text)
    plan = compile_policy(load_policy(policy_file))
    spec = spec_from_plan(plan)
    where = tmp_path / "cache"
    stored = cache.store(str(policy_file), None, plan, spec, directory=where)
    return policy_file, where, None if stored is None else Path(stored), spec


def test_round_trip(tmp_path):
    """A stored entry reads back as the same spec, and the plan is kept for review."""
    policy_file, where, stored, spec = _entry(tmp_path)
    assert stored is not None and oct(stored.stat().st_mode & 0o777) == "0o600"
    assert stored.with_suffix(".plan.json").exists()
    back = cache.lookup(str(policy_file), None, directory=where)
    assert isinstance(back, LaunchSpec)
    assert back.to_dict() == spec.to_dict()


def test_a_changed_source_is_a_miss(tmp_path):
    """Editing the policy (same path) invalidates the entry."""
    policy_file, where, _, _ = _entry(tmp_path)
    policy_file.write_text('extends = "untrusted"\n# edited\n')
    assert cache.lookup(str(policy_file), None, directory=where) is None


def test_overlay_text_is_part_of_the_key(tmp_path):
    """The same base with different command-line additions is a different entry."""
    policy_file, where, _, _ = _entry(tmp_path)
    assert cache.lookup(str(policy_file), "extends = 'x'\n", directory=where) is None


def test_corrupt_entry_is_ignored(tmp_path):
    """Garbage in an entry is a miss, not an error."""
    policy_file, where, stored, _ = _entry(tmp_path)
    stored.write_bytes(b"\x00garbage")
    assert cache.lookup(str(policy_file), None, directory=where) is None


def test_tampered_bpf_is_ignored(tmp_path):
    """An entry whose filter does not match its recorded hash is a miss."""
    import marshal

    policy_file, where, stored, _ = _entry(tmp_path)
    entry = marshal.loads(stored.read_bytes())
    entry["spec"]["bpf"] = entry["spec"]["bpf"][:-8] + b"\x06\x00\x00\x00\x00\x00\xff\x7f"
    stored.write_bytes(marshal.dumps(entry))
    os.chmod(stored, 0o600)
    assert cache.lookup(str(policy_file), None, directory=where) is None


def test_untrusted_permissions_are_ignored(tmp_path):
    """An entry others could write (mode, directory mode) is never used."""
    policy_file, where, stored, _ = _entry(tmp_path)
    os.chmod(stored, 0o644)
    assert cache.lookup(str(policy_file), None, directory=where) is None
    os.chmod(stored, 0o600)
    os.chmod(where, 0o777)
    assert cache.lookup(str(policy_file), None, directory=where) is None
    os.chmod(where, 0o700)
    assert cache.lookup(str(policy_file), None, directory=where) is not None


def test_cache_dir_locations():
    """Root uses /var/cache/sandbox; others $XDG_CACHE_HOME/sandbox or ~/.cache/sandbox."""
    assert str(cache.cache_dir(euid=0)) == "/var/cache/sandbox"
    assert str(cache.cache_dir(euid=1000, environ={"XDG_CACHE_HOME": "/x"})) == "/x/sandbox"
    assert str(cache.cache_dir(euid=1000, environ={"HOME": "/h"})) == "/h/.cache/sandbox"
