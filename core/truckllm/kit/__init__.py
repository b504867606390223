"""The plugin kit: every kernel helper a plugin may import, and nothing else.

A plugin imports from the kernel only

- ``truckllm`` itself (``hookimpl``, ``HOOKSPEC_VERSION``), :mod:`truckllm.hookspecs`,
  :mod:`truckllm.types` and :mod:`truckllm.errors`: the hook API;
- the modules of this package, the helpers the built-in plugins are made of;
- in its tests, the test kit as well.

Every other module of ``truckllm`` is the kernel's own and may change in any release. The kit
follows the rule of the hooks: within one ``HOOKSPEC_VERSION`` it only grows (a name once here
stays, with its meaning); a removal warns first and waits for a new ``HOOKSPEC_VERSION``.
``make lint`` checks the rule with import-linter (``[tool.importlinter]`` in ``pyproject.toml``):
no package under ``plugins/`` or ``contrib/`` imports a kernel module outside this list.

Each module re-exports names from where the kernel keeps them, so that the kernel may move its
own modules without breaking a plugin. Import the module you need; this package imports none:

=======================================  ==========================================================
:mod:`truckllm.kit.cache_marks`          prompt-cache marks (``cache_control``) of a request, by position
:mod:`truckllm.kit.credentials`          credentials refreshed off the request path (cloud providers)
:mod:`truckllm.kit.dialect`              inbound dialects: routes, the protocols, ``bearer``
:mod:`truckllm.kit.linelogger`           the base of loggers writing one line per request
:mod:`truckllm.kit.localstate`           the store algorithms in one process (GCRA, budgets, usage)
:mod:`truckllm.kit.multipart`            a ``multipart/form-data`` upstream body streamed from an upload
:mod:`truckllm.kit.openai_schemas`       OpenAI's request schemas, as ``ChatRequest.typed`` holds them
:mod:`truckllm.kit.openai_wire`          building and reading OpenAI answers, chunks and errors
:mod:`truckllm.kit.options`              field types of a plugin's ``Options``: ``Duration``, ``Secret``
:mod:`truckllm.kit.records`              a request record as log fields and lines
:mod:`truckllm.kit.request_log`          the request log's query interface (``/admin/v1/requests``)
:mod:`truckllm.kit.rerank`             rerank: the request schema and the gateway's answer shape
:mod:`truckllm.kit.safejson`             decoding a client's JSON: bounded depth, no repeated keys
:mod:`truckllm.kit.selection`            building blocks of balancing strategies
:mod:`truckllm.kit.sse`                  an incremental Server-Sent Events parser, frame builders
:mod:`truckllm.kit.store`                the runtime-store protocol and its value types
:mod:`truckllm.kit.tasks`                stopping a background task
:mod:`truckllm.kit.view`                 what ``startup`` / ``shutdown`` see of the gateway
:mod:`truckllm.kit.web`                  pages a plugin mounts behind the admin sign-in
=======================================  ==========================================================
"""

__all__: list[str] = []
