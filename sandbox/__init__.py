"""sandbox: run untrusted code under a reviewed, kernel-enforced TOML policy."""
