"""Test helpers for TruckLLM and its plugins: fake upstreams, a running gateway, fixtures."""
