"""Typed wire schemas the kernel decodes and encodes with msgspec."""
