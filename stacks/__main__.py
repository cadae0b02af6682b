"""Entry point for ``pulumi up`` (``main: stacks/`` in Pulumi.yaml)."""

import pulumi

from stacks.program import run

for _name, _value in run().items():
    pulumi.export(_name, _value)
