"""RosSession: a private rclpy context with one node spun in a background thread.

A context of its own (not rclpy's global one) so the replay tools can run inside a process that
already uses rclpy (tests, notebooks) and shut down without touching it. The project's Fast DDS
profile is applied before the context starts: large images over shared memory are otherwise lost.
Python keeps SIGINT (KeyboardInterrupt), so callers clean up themselves.
"""
from __future__ import annotations

import threading

from ..resources import apply_fastdds_profile


class RosSession:
    def __init__(self, node_name: str, use_sim_time: bool = False):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.signals import SignalHandlerOptions
        self.profile_note = apply_fastdds_profile()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            self.node = rclpy.create_node(node_name, context=self.context,
                                          parameter_overrides=[Parameter('use_sim_time', value=bool(use_sim_time))])
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except Exception:
            rclpy.try_shutdown(context=self.context)
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f'{node_name}_spin', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        import rclpy
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
