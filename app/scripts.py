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
def source(name: str, *, prelude: bool = True) -> str:
    """Return the Lua source of script ``name`` (``app/lua/<name>.lua``), prelude first
    unless ``prelude`` is False (a script that uses none of it, sent with EVAL each time)."""
    folder = resources.files("app").joinpath("lua")
    text = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return folder.joinpath("prelude.lua").read_text(encoding="utf-8") + text if prelude else text
