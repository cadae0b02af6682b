"""GPU instance types Keel knows, with what a scheduler and a capacity plan need to know about each.

Figures are from the AWS EC2 accelerated-computing instance pages. A pool may only use types listed here:
the spec needs the GPU count to size autoscaler templates, replicas and GPU caps. To add a type, add a row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInstanceType:
    """One EC2 GPU instance type."""

    gpu: str
    """The accelerator model, e.g. ``L4``."""
    gpus: int
    """GPUs per instance."""
    gpu_memory_gib: int
    """Memory per GPU, GiB."""
    vcpus: int
    memory_gib: int


def _family(
    gpu: str, gpu_memory_gib: int, rows: dict[str, tuple[int, int, int]]
) -> dict[str, GpuInstanceType]:
    return {
        name: GpuInstanceType(
            gpu=gpu, gpus=gpus, gpu_memory_gib=gpu_memory_gib, vcpus=vcpus, memory_gib=memory
        )
        for name, (gpus, vcpus, memory) in rows.items()
    }


#: instance type -> (GPUs, vCPUs, memory GiB), by family.
GPU_INSTANCE_TYPES: dict[str, GpuInstanceType] = {
    **_family(
        "T4",
        16,
        {
            "g4dn.xlarge": (1, 4, 16),
            "g4dn.2xlarge": (1, 8, 32),
            "g4dn.4xlarge": (1, 16, 64),
            "g4dn.8xlarge": (1, 32, 128),
            "g4dn.12xlarge": (4, 48, 192),
            "g4dn.16xlarge": (1, 64, 256),
        },
    ),
    **_family(
        "A10G",
        24,
        {
            "g5.xlarge": (1, 4, 16),
            "g5.2xlarge": (1, 8, 32),
            "g5.4xlarge": (1, 16, 64),
            "g5.8xlarge": (1, 32, 128),
            "g5.12xlarge": (4, 48, 192),
            "g5.16xlarge": (1, 64, 256),
            "g5.24xlarge": (4, 96, 384),
            "g5.48xlarge": (8, 192, 768),
        },
    ),
    **_family(
        "L4",
        24,
        {
            "g6.xlarge": (1, 4, 16),
            "g6.2xlarge": (1, 8, 32),
            "g6.4xlarge": (1, 16, 64),
            "g6.8xlarge": (1, 32, 128),
            "g6.12xlarge": (4, 48, 192),
            "g6.16xlarge": (1, 64, 256),
            "g6.24xlarge": (4, 96, 384),
            "g6.48xlarge": (8, 192, 768),
        },
    ),
    **_family(
        "L40S",
        48,
        {
            "g6e.xlarge": (1, 4, 32),
            "g6e.2xlarge": (1, 8, 64),
            "g6e.4xlarge": (1, 16, 128),
            "g6e.8xlarge": (1, 32, 256),
            "g6e.12xlarge": (4, 48, 384),
            "g6e.16xlarge": (1, 64, 512),
            "g6e.24xlarge": (4, 96, 768),
            "g6e.48xlarge": (8, 192, 1536),
        },
    ),
    **_family("A100", 40, {"p4d.24xlarge": (8, 96, 1152)}),
    **_family("A100-80GB", 80, {"p4de.24xlarge": (8, 96, 1152)}),
    **_family("H100", 80, {"p5.48xlarge": (8, 192, 2048)}),
    **_family("H200", 141, {"p5e.48xlarge": (8, 192, 2048), "p5en.48xlarge": (8, 192, 2048)}),
}


def gpu_instance(instance_type: str) -> GpuInstanceType | None:
    """The catalogue entry for a type, or ``None`` if it is not a GPU type Keel knows."""
    return GPU_INSTANCE_TYPES.get(instance_type)
