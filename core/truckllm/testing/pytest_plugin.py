"""TruckLLM's pytest plugin (entry point ``pytest11``): fixtures for plugin authors.

Enabled automatically wherever ``truckllm`` is installed. Fixtures are added as the test kit
grows; importing this module has no side effects.
"""
