"""The config file: its schema, loading, editing and field types (kernel-private; plugins take
``Duration`` and ``Secret`` from :mod:`truckllm.kit.options`).

A regular package rather than a namespace one, so that import-linter sees its modules (a plugin
importing ``truckllm._internal.config.schema`` breaks the plugin contract like any other kernel import).
"""
