"""The kernel's private modules: no plugin imports them (``truckllm.kit`` is the public kit).

Anything here may change between releases without notice; import-linter enforces the rule
for every plugin in this repository (``[tool.importlinter]`` in ``pyproject.toml``).
"""
