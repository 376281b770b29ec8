"""Command-line layer: thin wrappers that call the other layers and map outcomes to exit codes."""
