"""Optical-flow primitives: file formats (``io``), metrics, warping and visualisation."""

from daflow.flow.io import FlowFormatError, read_flow, write_flow
from daflow.flow.metrics import FlowMetrics, flow_metrics, warping_error
from daflow.flow.viz import flow_to_color
from daflow.flow.warp import backward_warp, forward_backward_occlusion

__all__ = [
    "FlowFormatError",
    "FlowMetrics",
    "backward_warp",
    "flow_metrics",
    "flow_to_color",
    "forward_backward_occlusion",
    "read_flow",
    "warping_error",
    "write_flow",
]
