"""The tool's version, in a module that imports nothing (the launch path reads it)."""

__all__ = ["TOOL_VERSION"]

TOOL_VERSION = "0.1.0"
