"""sandbox: run untrusted code under a reviewed, kernel-enforced TOML policy.

The public API is imported lazily: ``import sandbox`` costs nothing, and each name pulls
in only the layer it belongs to (the launcher must not pay for the policy parser).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Plan",
    "Policy",
    "PolicyError",
    "Result",
    "Verdict",
    "compile_policy",
    "load_policy",
    "load_profile",
    "run",
]

_LAZY = {
    "load_policy": "sandbox.policy.load",
    "load_profile": "sandbox.policy.load",
    "Policy": "sandbox.policy.model",
    "PolicyError": "sandbox.policy.errors",
    "compile_policy": "sandbox.compile.plan_builder",
    "Plan": "sandbox.plan.model",
    "run": "sandbox.launch.api",
    "Result": "sandbox.launch.verdict",
    "Verdict": "sandbox.launch.verdict",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 -- importing it loads `warnings`; only on first use

    return getattr(importlib.import_module(module), name)
