"""Reads the stack's configuration as the engine delivered it: every key, decoded, and which ones are secret.

The engine passes config as strings (objects JSON-encoded) through the environment or the runtime; the
offline planner sets the same through ``pulumi.runtime.set_all_config``. Both paths end here.
"""

from __future__ import annotations

import json
from typing import Any

from pulumi.runtime import config as runtime_config


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value[:1] in "[{" else value
    except json.JSONDecodeError:
        return value


def read_stack_config() -> tuple[dict[str, Any], set[str]]:
    """All config keys of the running stack (``ns:key`` -> decoded value) and the set of secret keys."""
    merged: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return {key: _decode(value) for key, value in merged.items()}, secret_keys
