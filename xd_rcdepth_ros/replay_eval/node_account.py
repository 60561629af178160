"""The node's own account of a live replay: its last /diagnostics status, and a line for the reports.

End-to-end latency (replay publish -> depth received) says how long a frame took, not where: the node
splits each frame's time itself (pairing, slot, inference, work, added = receive -> publish minus
inference). replay-eval keeps the node's last status so metrics.json / metrics.md (and the demo's
latency.md) carry that split.
"""
from __future__ import annotations

import threading
import time

from ..diagnostics import latency_value
from ..topics import DIAGNOSTICS

SPLIT = ('pairing', 'slot', 'inference', 'work', 'added')   # total is end to end already in the reports


class NodeAccount:
    """Subscribes to /diagnostics on `node` and keeps the values of the status named after `node_name`."""

    def __init__(self, node, node_name: str):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile
        self._prefix = f'{node_name}:'
        self._lock = threading.Lock()
        self._values, self._at = {}, None
        self._sub = node.create_subscription(DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, QoSProfile(depth=10))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(self._prefix):
                with self._lock:
                    self._values = {kv.key: kv.value for kv in status.values}
                    self._at = time.monotonic()

    def reported_after(self, t: float) -> bool:
        """Whether a status arrived after time.monotonic() value `t`."""
        with self._lock:
            return self._at is not None and self._at > t

    def values(self) -> dict:
        """The last status values ({} before the first)."""
        with self._lock:
            return dict(self._values)


def split_line(values: dict) -> str | None:
    """'pairing 0.4, slot 0.3, inference 180.2, work 4.9, added 5.6 ms p50 (...)', or None without them.

    The node's keeping_up is left out: replay-eval holds each image back until the node has answered the
    one before (the gate), so the image rate the node sees follows its own speed.
    """
    parts = [(name, latency_value(values, name)) for name in SPLIT]
    parts = [f'{name} {value:.1f}' for name, value in parts if value is not None]
    if not parts:
        return None
    return (f'{", ".join(parts)} ms p50 (the node\'s own split, from its last /diagnostics; added = receive -> '
            'publish minus inference)')
