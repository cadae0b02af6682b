"""Where each pinned chart takes a pod's placement and resources (read from the charts' own values.yaml).

Shared by the add-on component tests and the environment tests: a chart upgrade that moves these keys is
fixed in one place.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Chart -> the values paths ("" is the top level) that carry a pod's nodeSelector, tolerations and resources.
COMPONENTS: Mapping[str, tuple[str, ...]] = {
    "nvidia-device-plugin": ("",),
    "dcgm-exporter": ("",),
    "cluster-autoscaler": ("",),
    "keda": ("",),
    "keda-add-ons-http": ("operator", "scaler", "interceptor"),
    "kube-prometheus-stack": (
        "prometheus.prometheusSpec",
        "prometheusOperator",
        "prometheusOperator.admissionWebhooks.patch",
        "kube-state-metrics",
        "alertmanager.alertmanagerSpec",
        "grafana",
    ),
    "external-secrets": ("", "webhook", "certController"),
}

#: The charts whose pods run on the system node group (all but the GPU agents).
SYSTEM_COMPONENTS: Mapping[str, tuple[str, ...]] = {
    chart: paths
    for chart, paths in COMPONENTS.items()
    if chart not in ("nvidia-device-plugin", "dcgm-exporter")
}
