"""The Lua scripts chunksum runs in Redis, read from ``app/lua/`` (shipped as package data).

Each script is a file of its own; :func:`source` prepends ``prelude.lua``, which holds
what several share (whether a run is active, the expiry every write renews). Scripts
that run in a pipeline are sent with EVAL (a registered script would first check that
it is loaded, a round trip of its own); the others are registered and sent with EVALSHA.
Redis caches the compiled script either way.
"""

import functools
from importlib import resources


@functools.cache
def source(name: str) -> str:
    """Return the Lua source of script ``name`` (``app/lua/<name>.lua``), prelude first."""
    folder = resources.files("app").joinpath("lua")
    prelude = folder.joinpath("prelude.lua").read_text(encoding="utf-8")
    return prelude + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
