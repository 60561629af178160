"""Soak test of the xd_rcdepth node: a long live run with the faults of issue 15 injected.

    python benchmarks/soak.py                    # 30 minutes (the goal's length)
    python benchmarks/soak.py --minutes 2        # a quick look

The node runs as its console script (a separate process, as on a vehicle) with the ONNX Runtime backend,
the shipped checkpoint (models/xd_rcdepth_synthetic.pt), the network at its default size and
use_sim_time. This script is the vehicle: synthetic-world frames (--size, default 450x800) as Image +
CameraInfo at --rate (12 Hz) and radar PointCloud2 at --radar-rate (13 Hz), stamped on a timeline that
follows wall time, with /clock on the same timeline. At fixed fractions of the run it injects:

    radar_outage     the radar publisher stops for --outage-s (10 s) and comes back
    camera_restart   the image and CameraInfo publishers are destroyed, and new ones (same topics) made
                     --restart-gap-s (2 s) later: a camera driver restarting
    time_jump        the timeline (stamps and /clock) jumps back to the run's start: a looping bag
    burst            100 images (with their CameraInfo) in one second

It records the node process's resident memory (RSS, /proc) every few seconds, the publish -> depth
latency of every frame (wall clock, per minute p50 / p95, and the slope of the per-minute p50 after
warm-up), frames in and out and every drop by reason from the node's /diagnostics, and per fault:
the /diagnostics levels seen during it and after, and how soon depth resumed (the first depth for an
image sent after the inputs returned: in stamps -- which frame -- and in wall time).

Goals: RSS growth after warm-up < 50 MB; no upward latency trend; depth within 1 s of the inputs
returning after each fault; no unexplained drop (images in = published + drops by reason); the node
alive at the end. Writes out/benchmarks/soak/soak.{json,md} and node.log. A benchmark reports; it
asserts nothing (the exit status is 0 unless the node could not be run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'test'))
from xd_rcdepth_core.geometry import rotation_to_quaternion  # noqa: E402
from xd_rcdepth_core.synthetic import generate_sequence  # noqa: E402
from xd_rcdepth_ros.resources import apply_fastdds_profile  # noqa: E402

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(20 + os.getpid() % 80))

RSS_GOAL_MB = 50.0
RESUME_GOAL_S = 1.0
FAULTS = (('radar_outage', 0.2), ('camera_restart', 0.4), ('time_jump', 0.6), ('burst', 0.8))
# /diagnostics keys that are frames dropped (every image in ends as published, one of these, or pending)
IMAGE_DROPS = ('unpaired_no_radar', 'unpaired_no_camera_info', 'out_of_order_images', 'dropped_stale',
               'dropped_inactive')
NOT_FRAME_DROPS = ('bad_radar_non_finite_points',)   # points dropped from a frame that is still served
LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
T0 = 1_700_000_000.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--minutes', type=float, default=30.0, help='length of the run (default 30)')
    p.add_argument('--warmup-minutes', type=float, default=None,
                   help='left out of RSS growth and the latency trend (default min(2, minutes / 3))')
    p.add_argument('--size', default='450x800', help='image HEIGHTxWIDTH (default 450x800)')
    p.add_argument('--rate', type=float, default=12.0, help='camera rate in Hz (default 12)')
    p.add_argument('--radar-rate', type=float, default=13.0, help='radar rate in Hz (default 13)')
    p.add_argument('--outage-s', type=float, default=10.0, help='radar outage length in s (default 10)')
    p.add_argument('--restart-gap-s', type=float, default=2.0, help='camera driver restart gap in s (default 2)')
    p.add_argument('--checkpoint', default=str(ROOT / 'models' / 'xd_rcdepth_synthetic.pt'))
    p.add_argument('--backend', default='onnxruntime', choices=('torch', 'onnxruntime'))
    p.add_argument('--threads', type=int, default=0, help="the node's torch_threads (0 = the libraries' default)")
    p.add_argument('--frames', type=int, default=12, help='distinct synthetic frames cycled through (default 12)')
    p.add_argument('--rss-every', type=float, default=2.0, help='seconds between RSS samples (default 2)')
    p.add_argument('--out', default=str(ROOT / 'out' / 'benchmarks' / 'soak'))
    return p.parse_args()


def rss_mb(pid: int):
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else None


class Vehicle:
    """Publishers of camera, CameraInfo, radar and /clock on a timeline that follows wall time."""

    def __init__(self, node, frames, args, base: str):
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from ros_helpers import frame_messages
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        self.node, self.args, self.base_topic = node, args, base
        self.types = {'info': CameraInfo, 'image': Image}
        self.qos = qos_profile_sensor_data
        self.msgs = [frame_messages(f, T0) for f in frames]
        self.pub = {'info': node.create_publisher(CameraInfo, f'{base}/input/camera_info', self.qos),
                    'image': node.create_publisher(Image, f'{base}/input/image', self.qos),
                    'radar': node.create_publisher(PointCloud2, f'{base}/input/radar_points', self.qos)}
        self.clock_pub = node.create_publisher(Clock, '/clock', QoSProfile(depth=10))
        self.Clock = Clock
        self.timeline_base, self.wall_base = T0, time.monotonic()
        self.next_image = self.next_radar = None
        self.last_clock = 0.0
        self.camera_on = self.radar_on = True
        self.image_hz = args.rate
        self.sent = {}          # image stamp (rounded ns) -> wall time sent
        self.sent_log = []      # (wall, stamp) of every image
        self.radar_sent = 0
        self._k = 0

    def now(self) -> float:
        return self.timeline_base + time.monotonic() - self.wall_base

    def jump(self, to: float) -> None:
        self.timeline_base, self.wall_base = to, time.monotonic()
        self.next_image = self.next_radar = None

    def restart_camera(self, down: bool) -> None:
        if down:
            for key in ('image', 'info'):
                self.node.destroy_publisher(self.pub.pop(key))
        else:
            for key, topic in (('info', 'camera_info'), ('image', 'image')):
                self.pub[key] = self.node.create_publisher(self.types[key], f'{self.base_topic}/input/{topic}',
                                                           self.qos)

    def step(self) -> float:
        """Publish what is due; returns seconds until the next message is due."""
        from ros_helpers import stamp_msg
        now = self.now()
        wall = time.monotonic()
        if wall - self.last_clock >= 0.02:
            self.clock_pub.publish(self.Clock(clock=stamp_msg(now)))
            self.last_clock = wall
        if self.next_image is None or not self.camera_on or 'image' not in self.pub:
            self.next_image = now if self.next_image is None else max(self.next_image, now)
        else:
            while self.next_image <= now:
                image, info, _ = self.msgs[self._k % len(self.msgs)]
                self._k += 1
                image.header.stamp = info.header.stamp = stamp_msg(self.next_image)
                self.pub['info'].publish(info)
                self.pub['image'].publish(image)
                key = image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
                wall = time.monotonic()
                self.sent[key] = wall
                self.sent_log.append((wall, key))
                self.next_image += 1.0 / self.image_hz
        if self.next_radar is None or not self.radar_on:
            self.next_radar = now + 0.021 if self.next_radar is None else max(self.next_radar, now)
        else:
            while self.next_radar <= now:
                radar = self.msgs[self._k % len(self.msgs)][2]
                radar.header.stamp = stamp_msg(self.next_radar)
                self.pub['radar'].publish(radar)
                self.radar_sent += 1
                self.next_radar += 1.0 / self.args.radar_rate
        due = [t for t, on in ((self.next_image, self.camera_on), (self.next_radar, self.radar_on)) if on]
        return max(0.0, min(due + [now + 0.02]) - self.now())


def main() -> int:
    args = parse_args()
    h, w = (int(v) for v in args.size.lower().split('x'))
    warmup_min = args.warmup_minutes if args.warmup_minutes is not None else min(2.0, args.minutes / 3)
    duration = 60.0 * args.minutes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f'generating {args.frames} synthetic frames at {h}x{w} ...', flush=True)
    frames = list(generate_sequence(seed=0, n_frames=args.frames, height=h, width=w))
    T = frames[0].T_camera_radar
    note = apply_fastdds_profile()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from ros_helpers import stamp_msg, stop_process
    from sensor_msgs.msg import Image

    from xd_rcdepth_ros.bagfile.reader import header_stamp_ns

    name = 'xd_rcdepth'
    q = rotation_to_quaternion(T[:3, :3])
    cmd = [str(Path(sys.executable).parent / 'xd_rcdepth_node'), '--ros-args', '--params-file',
           str(ROOT / 'config' / 'xd_rcdepth.param.yaml'), '-p', f'checkpoint:={args.checkpoint}',
           '-p', f'backend:={args.backend}', '-p', f'torch_threads:={args.threads}', '-p', 'use_sim_time:=true',
           '-p', f'T_camera_radar.translation:=[{",".join(map(str, T[:3, 3]))}]',
           '-p', f'T_camera_radar.rotation:=[{",".join(map(str, q))}]']
    log = open(out / 'node.log', 'w')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    rclpy.init()
    peer = rclpy.create_node('xd_rcdepth_soak_vehicle')
    ex = SingleThreadedExecutor()
    ex.add_node(peer)
    car = Vehicle(peer, frames, args, f'/{name}')
    received = []            # (wall, stamp ns)
    diag = []                # (wall, level name, message, values)

    def on_depth(raw):
        received.append((time.monotonic(), header_stamp_ns(raw)))

    def on_diag(msg):
        for s in msg.status:
            if s.name.startswith(f'{name}:'):
                level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
                diag.append((time.monotonic(), LEVELS.get(level, str(level)), s.message,
                             {kv.key: kv.value for kv in s.values}))

    peer.create_subscription(Image, f'/{name}/output/depth', on_depth, QoSProfile(depth=10), raw=True)
    peer.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)
    rss, faults, alive_at_end = [], [], False
    try:
        print('starting the node (model load, ONNX export on first use) ...', flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not all(p.get_subscription_count() for p in car.pub.values()):
            if proc.poll() is not None:
                print('the node exited; see', out / 'node.log')
                return 1
            car.clock_pub.publish(car.Clock())   # (sim time: the node's timers wait for /clock)
            ex.spin_once(timeout_sec=0.1)
        if not all(p.get_subscription_count() for p in car.pub.values()):
            print('the node did not come up; see', out / 'node.log')
            return 1
        end_wait = time.monotonic() + 2.0
        while time.monotonic() < end_wait:
            ex.spin_once(timeout_sec=0.05)
        start = time.monotonic()
        car.jump(T0)
        plan = [(name_, start + frac * duration) for name_, frac in FAULTS]
        active = None
        next_rss = start
        print(f'running {args.minutes:g} min: faults at ' + ', '.join(f'{n} {t - start:.0f} s' for n, t in plan),
              flush=True)
        last_print = start
        while True:
            wall = time.monotonic()
            if wall - start >= duration:
                break
            if proc.poll() is not None:
                print('the node died during the run; see', out / 'node.log')
                break
            if wall >= next_rss:
                rss.append((wall - start, rss_mb(proc.pid)))
                next_rss += args.rss_every
            if active is None and plan and wall >= plan[0][1]:
                kind, _ = plan.pop(0)
                active = {'fault': kind, 'start_s': wall - start, 'start_wall': wall, 'diag_from': len(diag),
                          'start_index': len(car.sent_log)}
                if kind == 'radar_outage':
                    car.radar_on = False
                    active['until'] = wall + args.outage_s
                elif kind == 'camera_restart':
                    car.restart_camera(down=True)
                    active['until'] = wall + args.restart_gap_s
                elif kind == 'time_jump':
                    active['jump_from'] = car.now()
                    car.jump(T0 + 0.0037)   # back to the start (off the old stamp grid: stamps stay unique)
                    active['until'] = wall
                elif kind == 'burst':   # 100 images stamped 10 ms apart (sent as fast as this host can)
                    car.image_hz = 100.0
                    active['sent_before'] = len(car.sent_log)
                    active['until'] = float('inf')
                print(f'  {wall - start:6.1f} s  fault: {kind}', flush=True)
            if active is not None and active['fault'] == 'burst' and 'return_wall' not in active \
                    and len(car.sent_log) - active['sent_before'] >= 100:
                active['until'] = wall
                active['burst_wall_s'] = round(wall - active['start_wall'], 2)
            if active is not None and 'return_wall' not in active and wall >= active['until']:
                kind = active['fault']
                if kind == 'radar_outage':
                    car.radar_on = True
                elif kind == 'camera_restart':
                    car.restart_camera(down=False)
                elif kind == 'burst':
                    car.image_hz = args.rate
                    active['burst_images'] = len(car.sent_log) - active['sent_before']
                active['return_wall'] = wall
                active['return_stamp'] = car.now()
                active['sent_index'] = len(car.sent_log)
                active['diag_return'] = len(diag)
            if active is not None and 'return_wall' in active:
                if time.monotonic() - active['return_wall'] > 15.0:   # 15 s after the inputs returned: judged
                    faults.append(active)
                    active = None
            wait = car.step()
            ex.spin_once(timeout_sec=min(wait, 0.01))
            if wall - last_print > 60:
                last_print = wall
                print(f'  {wall - start:6.1f} s  sent {len(car.sent_log)}, depth {len(received)}, '
                      f'RSS {rss[-1][1]:.0f} MB', flush=True)
        if active is not None:
            faults.append(active)
        # Inputs stop: let the node settle (pending images flushed, last inference out, a final report).
        settle_end = time.monotonic() + 5.0
        while time.monotonic() < settle_end:
            car.clock_pub.publish(car.Clock(clock=stamp_msg(car.now())))
            ex.spin_once(timeout_sec=0.05)
        alive_at_end = proc.poll() is None
        rss.append((time.monotonic() - start, rss_mb(proc.pid)))
    finally:
        exit_code = stop_process(proc)
        peer.destroy_node()
        rclpy.try_shutdown()
        log.close()

    result = summarise(args, warmup_min, start, car, received, diag, rss, faults, alive_at_end, exit_code, note)
    (out / 'soak.json').write_text(json.dumps(result, indent=2))
    table = markdown(result)
    (out / 'soak.md').write_text(table + '\n')
    print(table)
    return 0


def summarise(args, warmup_min, start, car, received, diag, rss, faults, alive_at_end, exit_code, note) -> dict:
    latency = []   # (minute, ms)
    for wall, stamp in received:
        sent = car.sent.get(stamp)
        if sent is not None and wall >= sent:
            latency.append((int((sent - start) // 60), 1e3 * (wall - sent)))
    minutes = []
    n_min = int(np.ceil(args.minutes))
    for m in range(n_min):
        lat = [ms for mm, ms in latency if mm == m]
        sent = sum(1 for wall, _ in car.sent_log if int((wall - start) // 60) == m)
        got = sum(1 for wall, _ in received if int((wall - start) // 60) == m)
        mem = [v for t, v in rss if v is not None and int(t // 60) == m]
        minutes.append({'minute': m + 1, 'images_sent': sent, 'depth_received': got,
                        'latency_ms_p50': pct(lat, 50), 'latency_ms_p95': pct(lat, 95),
                        'rss_mb_end': mem[-1] if mem else None})
    after = [mm for mm in minutes if mm['minute'] > warmup_min and mm['latency_ms_p50'] is not None]
    slope50 = slope95 = None
    if len(after) >= 2:
        x = [mm['minute'] for mm in after]
        slope50 = float(np.polyfit(x, [mm['latency_ms_p50'] for mm in after], 1)[0])
        slope95 = float(np.polyfit(x, [mm['latency_ms_p95'] for mm in after], 1)[0])
    mem = [(t, v) for t, v in rss if v is not None]
    warm = [v for t, v in mem if t >= 60 * warmup_min]
    rss_warm = warm[0] if warm else None
    growth = (warm[-1] - rss_warm) if warm else None
    growth_max = (max(warm) - rss_warm) if warm else None
    # Frames in / out and drops by reason: the node's last report after the inputs stopped.
    final = diag[-1][3] if diag else {}
    counts = {k: int(v) for k, v in final.items() if v.lstrip('-').isdigit()}
    image_in, published = counts.get('image_in', 0), counts.get('published', 0)
    drops = {k: counts[k] for k in IMAGE_DROPS if counts.get(k)}
    drops.update({k: v for k, v in counts.items() if k.startswith('bad_') and k not in NOT_FRAME_DROPS and v})
    pending = counts.get('pending_images', 0)
    unexplained = image_in - published - sum(drops.values()) - pending
    fault_rows = [judge_fault(f, car, received, diag, start) for f in faults]
    total_sent = len(car.sent_log)
    return {
        'minutes': args.minutes, 'warmup_minutes': warmup_min, 'size': args.size, 'rate_hz': args.rate,
        'radar_rate_hz': args.radar_rate, 'backend': args.backend, 'checkpoint': args.checkpoint,
        'node_alive_at_end': alive_at_end, 'node_exit_code': exit_code,
        'rss_mb': {'at_warmup_end': rss_warm, 'end': warm[-1] if warm else None,
                   'growth_after_warmup': growth, 'max_growth_after_warmup': growth_max, 'goal': RSS_GOAL_MB,
                   'samples': [[round(t, 1), v] for t, v in mem]},
        'latency_slope_ms_per_min': {'p50': slope50, 'p95': slope95, 'minutes_fitted': len(after)},
        'latency_ms': {'p50': pct([ms for _, ms in latency], 50), 'p95': pct([ms for _, ms in latency], 95),
                       'count': len(latency)},
        'node_latency_ms': {f'{k}_{q}': float(final[f'{k}_latency_{q}_ms']) if f'{k}_latency_{q}_ms' in final
                            else None for k in ('inference', 'total') for q in ('p50', 'p95')},
        'per_minute': minutes,
        'frames': {'images_sent': total_sent, 'radar_sent': car.radar_sent, 'image_in': image_in,
                   'lost_in_transport': total_sent - image_in, 'published': published,
                   'depth_received': len(received), 'drops': drops, 'pending_at_end': pending,
                   'unexplained': unexplained, 'camera_info_fallback': counts.get('camera_info_fallback', 0),
                   'time_jumps': counts.get('time_jumps', 0)},
        'faults': fault_rows,
        'node_diagnostics_final': final,
        'fastdds_profile': note, 'machine': platform.machine(), 'cpus': os.cpu_count(),
    }


def judge_fault(f, car, received, diag, start) -> dict:
    row = {'fault': f['fault'], 'at_s': round(f['start_s'], 1)}
    if 'return_wall' not in f:
        row['note'] = 'the run ended before the inputs returned'
        return row
    # The first depth received after the inputs returned, of an image sent since the fault began (after a
    # time jump: since the jump; depth of older images may still be in flight). Its stamp against the
    # return says which frame the node picked up first (negative: one from just before the return that
    # the returning input completed); its arrival against the return adds this host's inference time.
    new = {stamp for _, stamp in car.sent_log[f['start_index']:]}
    first = next(((wall, stamp) for wall, stamp in received if stamp in new and wall >= f['return_wall']), None)
    if first is not None:
        row['resume_wall_s'] = round(first[0] - f['return_wall'], 3)
        row['resume_stamp_s'] = round(first[1] * 1e-9 - f['return_stamp'], 3)
    during = diag[f['diag_from']:f['diag_return']]
    after = diag[f['diag_return']:]
    row['levels_during'] = summarise_levels(during)
    ok_after = next((t for t, lvl, _, _ in after if lvl == 'OK'), None)
    row['ok_after_s'] = None if ok_after is None else round(ok_after - f['return_wall'], 2)
    row['levels_after'] = sorted({lvl for _, lvl, _, _ in after[:20]})
    if f['fault'] == 'burst':
        row['burst_images'] = f.get('burst_images')
        row['burst_wall_s'] = f.get('burst_wall_s')
    if f['fault'] == 'time_jump':
        row['jumped_back_s'] = round(f['jump_from'] - (T0 + 0.0037), 1)
    return row


def summarise_levels(reports) -> list:
    """'LEVEL xN: message' per distinct report (numbers in the message shown as #), in order of first sight."""
    import re
    seen = {}
    for _, lvl, msg, _ in reports:
        key = f"{lvl}: {re.sub(r'[0-9]+(?:[.][0-9]+)?', '#', msg)}"
        seen[key] = seen.get(key, 0) + 1
    return [f"{key.split(':', 1)[0]} x{n}:{key.split(':', 1)[1]}" for key, n in seen.items()]


def markdown(r: dict) -> str:
    fmt = (lambda v, d=1: 'n/a' if v is None else f'{v:.{d}f}')
    mem, fr, sl = r['rss_mb'], r['frames'], r['latency_slope_ms_per_min']
    lines = [f"Soak: {r['minutes']:g} min, {r['size']} at {r['rate_hz']:g} Hz camera / {r['radar_rate_hz']:g} Hz "
             f"radar, backend {r['backend']}, {r['machine']} ({r['cpus']} CPUs); warm-up {r['warmup_minutes']:g} min. "
             f"Node alive at the end: {'yes' if r['node_alive_at_end'] else 'NO'} (exit code {r['node_exit_code']}).",
             '',
             '| minute | images sent | depth received | latency p50 / p95 (ms) | node RSS (MB) |',
             '|---|---|---|---|---|']
    for m in r['per_minute']:
        lines.append(f"| {m['minute']} | {m['images_sent']} | {m['depth_received']} | {fmt(m['latency_ms_p50'])} / "
                     f"{fmt(m['latency_ms_p95'])} | {fmt(m['rss_mb_end'])} |")
    drops = ', '.join(f'{k} {v}' for k, v in sorted(fr['drops'].items())) or 'none'
    lines += ['',
              f"RSS growth after warm-up: {fmt(mem['growth_after_warmup'])} MB "
              f"(max {fmt(mem['max_growth_after_warmup'])}; "
              f"goal < {mem['goal']:g}), {fmt(mem['at_warmup_end'])} -> {fmt(mem['end'])} MB. "
              f"Latency trend after warm-up: p50 {fmt(sl['p50'], 2)} ms/min, p95 {fmt(sl['p95'], 2)} ms/min "
              f"({sl['minutes_fitted']} minutes fitted). The node's own inference p50 / p95 (its last "
              f"200 frames): {fmt(r['node_latency_ms']['inference_p50'])} / "
              f"{fmt(r['node_latency_ms']['inference_p95'])} ms.",
              '',
              f"Frames: {fr['images_sent']} images sent, {fr['image_in']} received by the node "
              f"({fr['lost_in_transport']} lost in transport), {fr['published']} depth published; drops by reason: "
              f"{drops}; pending at the end {fr['pending_at_end']}; **unexplained {fr['unexplained']}**. "
              f"CameraInfo fallbacks {fr['camera_info_fallback']}, time jumps {fr['time_jumps']}.",
              '',
              '| fault | at (s) | depth resumed: stamp / wall (s) | OK again after (s) | '
              '/diagnostics during the fault |',
              '|---|---|---|---|---|']
    for f in r['faults']:
        during = '; '.join(f.get('levels_during', [])) or '-'
        extra = ''
        if f['fault'] == 'burst':
            extra = f" ({f.get('burst_images')} images in {f.get('burst_wall_s')} s)"
        if f['fault'] == 'time_jump':
            extra = f" (back {f.get('jumped_back_s')} s)"
        lines.append(f"| {f['fault']}{extra} | {f['at_s']} | {fmt(f.get('resume_stamp_s'), 2)} / "
                     f"{fmt(f.get('resume_wall_s'), 2)} | {fmt(f.get('ok_after_s'), 1)} | {during} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
