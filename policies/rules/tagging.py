"""Tagging rules: every AWS resource that can carry tags carries the cost-allocation tags.

Whether a type takes tags is read from the pulumi_aws SDK itself: the class the SDK registers for the type
token, and whether its constructor accepts ``tags``. New resource types are covered without a list to keep.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.runtime.rpc import get_resource_module
from pulumi_policy import ResourceValidationArgs

from policies.framework import as_map, prop, resource_rule


@functools.cache
def accepts_tags(type_token: str) -> bool:
    """Whether the pulumi_aws resource class registered for ``type_token`` takes ``tags``."""
    package, _, rest = type_token.partition(":")
    module, _, _ = rest.partition(":")
    if package != "aws" or not module:
        return False
    # Imported here, not at the top: the SDK takes a second to load and only this check needs it.
    import pulumi_aws  # noqa: F401, PLC0415  (importing the SDK registers its resource modules)

    info = getattr(get_resource_module("aws", module, ""), "mod_info", None)
    if not isinstance(info, Mapping):
        return False
    class_name = as_map(info.get("classes")).get(type_token)
    if class_name is None:
        return False
    resource_class = getattr(importlib.import_module(str(info["fqn"])), str(class_name), None)
    init = getattr(resource_class, "_internal_init", None)
    return init is not None and "tags" in inspect.signature(init).parameters


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@resource_rule(
    name="required-cost-tags",
    description="Every taggable AWS resource carries the cost-allocation tags with non-empty values.",
    domain="tagging",
    category="cost",
    severity="low",
    remediation="Create the resource through a Keel component (it merges the spec's tags into every taggable "
    "resource) or pass tags=spec.merged_tags; set owner and cost-centre in the stack config.",
    types=["aws:*"],
    settings={
        "requiredTags": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["environment", "owner", "cost-centre", "managed-by"],
            "description": "Tag keys every taggable resource must carry with a non-empty value.",
        }
    },
)
def required_cost_tags(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    if not accepts_tags(resource.resource_type):
        return
    required = [str(key) for key in config.get("requiredTags") or []]
    tags = as_map(prop(resource, "tags"))
    lacking = [key for key in required if _blank(tags.get(key))]
    if lacking:
        # Tags the provider adds from its defaultTags appear in tagsAll, when the engine has computed it.
        tags_all = as_map(prop(resource, "tagsAll"))
        lacking = [key for key in lacking if _blank(tags_all.get(key))]
    missing = [key for key in lacking if key not in tags]
    empty = [key for key in lacking if key not in missing]
    if missing:
        yield f"{resource.name} lacks required tags: {', '.join(missing)}"
    if empty:
        yield f"{resource.name} has empty required tags: {', '.join(empty)}"
