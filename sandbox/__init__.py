"""sandbox: run untrusted code under a reviewed, kernel-enforced TOML policy.

The public API is imported lazily: ``import sandbox`` costs nothing, and each name pulls
in only the layer it belongs to (the launcher must not pay for the policy parser).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Plan", "Policy", "PolicyError", "compile_policy", "load_policy", "load_profile"]

_LAZY = {
    "load_policy": "sandbox.policy.load",
    "load_profile": "sandbox.policy.load",
    "Policy": "sandbox.policy.model",
    "PolicyError": "sandbox.policy.errors",
    "compile_policy": "sandbox.compile.plan_builder",
    "Plan": "sandbox.plan.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
