"""Replay evaluation: the paper's metrics (50/70/80 m) of a checkpoint on a bag, offline or live.

Both modes read the same evaluation frames from the bag (read.BagFrames: the node's pairing rule,
single-sweep lidar ground truth) and write the same outputs to OUT:

    metrics.json  metrics.md  figures/frame-NNNNN.png  output_bag/ (the depth as the node publishes it)

- offline: DepthEstimator in this process on each frame; the depth goes into output_bag with the
  node's topic names and the input image headers.
- live: the node runs as a subprocess (xd_rcdepth_node, use_sim_time, the bag's static extrinsics),
  BagPlayer replays the camera, camera_info and radar topics over DDS with /clock, a Recorder writes the
  node's outputs to output_bag, and depth is matched to the input frames by header stamp. The replay is
  gated: before each image, the outputs of all earlier planned images must have arrived (or
  `output_timeout` passed), so CPU inference never falls behind and the node processes the same
  frames as the offline mode. The plan (read.plan_frames) holds the images the pairing keeps and the
  node's checks accept: a frame the node drops by rule (a CameraInfo of the wrong size, say) is never
  waited for and is reported with the node's reason. A planned frame whose depth does not come is
  waited for once (`output_timeout`), then given up and reported as dropped ('no_output'): a node
  that answers nothing costs one timeout per planned frame, not one per frame for every later image.

A run that fails leaves no partial results in OUT (node.log stays: the error points at it).
"""
from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from xd_rcdepth_core.pipeline import DepthEstimator

from .. import convert
from ..bagfile import schema
from ..bagfile.reader import BagError, deserialize, header_stamp_ns, reading
from ..bagfile.writer import BagWriter
from ..playback.player import BagPlayer
from ..playback.recorder import Recorder
from ..playback.session import RosSession
from ..to_frame import parse_field_map
from .bag_frames import BagFrames, plan_frames
from .bag_topics import parse_transform, resolve_layout
from .node_account import NodeAccount
from .node_process import NodeProcess, node_extrinsics, wait_until
from .report import EvalReport

OUTPUT_BAG = 'output_bag'
# (No settling hold before images: each topic has its own subscription in the node, so a CameraInfo
# published just before its image can be handled after it, but the node's pairer matches CameraInfo
# to the image by stamp and the image waits for its own, as it waits for the radar sweep after it.)
OUTPUTS = (OUTPUT_BAG, 'metrics.json', 'metrics.md', 'figures')   # what a run writes to OUT


@dataclass
class EvalOptions:
    bag: str
    checkpoint: str
    out: str
    live: bool = False
    figures: int = 4
    camera_topic: Optional[str] = None
    camera_info_topic: Optional[str] = None
    radar_topic: Optional[str] = None
    lidar_topic: Optional[str] = None
    radar_fields: str = 'rcs,vx,vy'
    sync_tolerance: float = 0.08           # the node's default sync_tolerance
    lidar_tolerance: float = 0.05
    radar_sweeps: int = 1
    T_camera_radar: Optional[str] = None   # 'tx,ty,tz,qw,qx,qy,qz'
    T_camera_lidar: Optional[str] = None
    ego_motion: bool = True
    device: str = 'cpu'
    backend: str = 'auto'                  # DepthEstimator and node backend: the same in both modes
    max_depth: float = 100.0               # the node's default max_depth
    input_size: Optional[tuple] = None
    rate: float = 1.0
    node_name: str = 'xd_rcdepth'
    node_timeout: float = 120.0            # node start: imports, model load, discovery
    output_timeout: float = 20.0           # per frame, live mode
    storage: str = 'mcap'
    overwrite: bool = False
    record_visuals: bool = False           # live: also record depth_colored and the saliency overlay
    saliency_rate: Optional[float] = None  # record_visuals: the node's saliency.max_rate; None = every frame


def _prepare_out(opts: EvalOptions) -> tuple:
    """(OUT, whether this run created it), emptied of a previous evaluation's outputs."""
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise BagError(f'--out {out} exists and is not a folder')
    stale = [out / n for n in OUTPUTS if (out / n).exists()]
    if stale and not opts.overwrite:
        raise BagError(f'--out {out} already holds a replay evaluation ({stale[0].name}); pass --overwrite')
    _remove_outputs(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    return out, created


def _remove_outputs(out: Path) -> None:
    for p in (out / n for n in OUTPUTS):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


@contextmanager
def _no_partial_outputs(out: Path, created: bool):
    """A run that fails (a corrupt bag half way, the node dying, Ctrl-C) removes what it wrote to OUT,
    so no figures or bag of an unfinished evaluation are mistaken for a result."""
    try:
        yield
    except BaseException:
        _remove_outputs(out)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise


def prepare(opts: EvalOptions):
    """(layout with T_camera_radar as the node rebuilds it, radar field map, images in the bag)."""
    field_map = parse_field_map(opts.radar_fields)
    T_radar = parse_transform(opts.T_camera_radar, '--T-camera-radar') if opts.T_camera_radar else None
    T_lidar = parse_transform(opts.T_camera_lidar, '--T-camera-lidar') if opts.T_camera_lidar else None
    with reading(opts.bag) as reader:
        layout = resolve_layout(reader, opts.bag, opts.camera_topic, opts.camera_info_topic, opts.radar_topic,
                                opts.lidar_topic, T_radar, T_lidar, ego_motion=opts.ego_motion)
        images = sum(c.msgcount for c in reader.connections if c.topic == layout.image_topic)
    if images == 0:
        raise BagError(f'camera topic {layout.image_topic} of bag {opts.bag} has no messages')
    # The node gets T_camera_radar as translation + quaternion; use the matrix it rebuilds, in both modes.
    layout.T_camera_radar = node_extrinsics(layout.T_camera_radar)[2]
    return layout, field_map, images


def _estimator(opts: EvalOptions):
    return DepthEstimator.from_checkpoint(opts.checkpoint, device=opts.device, max_depth=opts.max_depth,
                                          input_size=opts.input_size, backend=opts.backend)


def _frames(opts, layout, field_map) -> BagFrames:
    return BagFrames(opts.bag, layout, field_map, opts.sync_tolerance, opts.lidar_tolerance, opts.radar_sweeps)


def _dropped(frames: BagFrames, processed: set, extra: list = ()) -> list:
    """Every bag image that produced no evaluated frame, with the reason."""
    out = [{'stamp_ns': d.stamp_ns, 'reason': d.reason, 'message': d.message} for d in frames.stats.dropped]
    out += list(extra)
    known = processed | {d['stamp_ns'] for d in out}
    p = frames.stats.pairing
    why = (f'not paired: no radar within {frames.sync_tolerance} s, or superseded (unpaired_no_radar '
           f'{p.get("unpaired_no_radar")}, dropped_stale {p.get("dropped_stale")}, out_of_order '
           f'{p.get("out_of_order_images")})')
    out += [{'stamp_ns': s, 'reason': 'unpaired', 'message': why} for s in frames.stats.image_stamps if s not in known]
    return sorted(out, key=lambda d: d['stamp_ns'])


def _saliency(estimator, frame) -> Optional[np.ndarray]:
    result = estimator.predict(frame, saliency_layers=('decoder',))
    return None if result.saliency is None else result.saliency['decoder']


def run_offline(opts: EvalOptions) -> dict:
    layout, field_map, images = prepare(opts)
    out, created = _prepare_out(opts)
    with _no_partial_outputs(out, created):
        return _offline(opts, layout, field_map, images, out)


def _offline(opts: EvalOptions, layout, field_map, images, out: Path) -> dict:
    estimator = _estimator(opts)
    report = EvalReport(out, 'offline', opts.bag, opts.checkpoint, layout, images, opts.figures)
    frames = _frames(opts, layout, field_map)
    depth_topic = f'/{opts.node_name}/output/depth'
    processed = set()
    with BagWriter(out / OUTPUT_BAG, opts.storage) as bag:
        for ef in frames:
            result = estimator.predict(ef.frame)
            bag.write(depth_topic, schema.IMAGE, ef.stamp_ns, convert.depth_to_image_msg(result.depth, ef.header))
            bag.write(f'{depth_topic}/camera_info', schema.CAMERA_INFO, ef.stamp_ns,
                      convert.camera_info_msg(ef.frame.K, ef.frame.height, ef.frame.width, ef.header))
            report.add(ef, result.depth, latency_ms=result.timings_ms['total'])
            processed.add(ef.stamp_ns)
            if report.wants_figure(ef):
                report.figure(ef, result.depth, _saliency(estimator, ef.frame))
    return report.finish(_dropped(frames, processed), frames.stats.pairing, 'inference (DepthEstimator.predict)',
                         invalid_reason=layout.lidar_missing)


class _LiveRun:
    """One live run's bookkeeping: when images went out, when depth came back, and the replay gate."""

    def __init__(self, plan: list, image_topic: str, depth_topic: str, output_timeout: float):
        self.plan, self.image_topic, self.depth_topic = plan, image_topic, depth_topic
        self.output_timeout = output_timeout
        self.arrived, self.published = {}, {}       # image stamp -> wall time
        self.given_up = set()                        # planned stamps waited for in vain (once each)
        self.waited = 0                              # planned frames a gate waited for (each once at most)
        self.node = None                             # NodeProcess once started
        self.node_values = {}                        # the node's last /diagnostics values (its latency split)
        self._cv = threading.Condition()

    def alive(self) -> bool:
        return self.node is not None and self.node.alive()

    def on_recorded(self, topic, raw, wall) -> None:
        if topic == self.depth_topic:
            with self._cv:
                self.arrived.setdefault(header_stamp_ns(raw), wall)
                self._cv.notify_all()

    def on_publish(self, topic, raw, wall) -> None:
        if topic == self.image_topic:
            self.published[header_stamp_ns(raw)] = wall

    def wait_for(self, stamps) -> list:
        """The stamps still without an output after output_timeout (or once the node died); [] = all came."""
        end = time.monotonic() + self.output_timeout
        with self._cv:
            while True:
                missing = [s for s in stamps if s not in self.arrived]
                left = end - time.monotonic()
                if not missing or left <= 0 or not self.alive():
                    return missing
                self._cv.wait(min(left, 0.2))

    def gate(self, topic, raw) -> None:
        """Before an image: wait for the depth of every earlier planned image not yet given up on."""
        if topic != self.image_topic:
            return
        stamp = header_stamp_ns(raw)
        earlier = [s for s in self.plan if s < stamp and s not in self.arrived and s not in self.given_up]
        if earlier:
            # Remembered: a frame the node never answers is waited for once, not before every later image.
            self.waited += len(earlier)
            self.given_up.update(self.wait_for(earlier))
        if not self.alive():
            raise BagError(f'the node exited during the replay; node log {self.node.log_path}:\n'
                           f'{self.node.log_tail()}')


def _node_setup(opts: EvalOptions, layout, field_map):
    t, q, _ = node_extrinsics(layout.T_camera_radar)
    params = {'checkpoint': str(Path(opts.checkpoint).resolve()), 'device': opts.device, 'use_sim_time': True,
              'max_depth': float(opts.max_depth), 'sync_tolerance': float(opts.sync_tolerance),
              'radar_sweeps': int(opts.radar_sweeps), 'radar_fields.rcs': field_map['rcs'],
              'radar_fields.vx': field_map['vx'], 'radar_fields.vy': field_map['vy'],
              'T_camera_radar.translation': t, 'T_camera_radar.rotation': q,
              'compressed_image': layout.image_type == schema.COMPRESSED_IMAGE, 'backend': opts.backend}
    if opts.live and opts.record_visuals:
        # Default: (the maximum) an overlay for every frame the recording sees; else the rate asked for.
        params['saliency.max_rate'] = 100.0 if opts.saliency_rate is None else float(opts.saliency_rate)
    if opts.input_size:
        params['input_height'], params['input_width'] = (int(v) for v in opts.input_size)
    base = f'/{opts.node_name}/input'
    image_in = f'{base}/image/compressed' if params['compressed_image'] else f'{base}/image'
    remaps = {image_in: layout.image_topic, f'{base}/camera_info': layout.camera_info_topic,
              f'{base}/radar_points': layout.radar_topic}
    return params, remaps


def _recorded_topics(opts: EvalOptions) -> dict:
    out = f'/{opts.node_name}/output'
    topics = {f'{out}/depth': schema.IMAGE, f'{out}/depth/camera_info': schema.CAMERA_INFO}
    if opts.record_visuals:
        # Subscribing makes the node colour the depth and run Grad-CAM: the latency then includes both.
        topics.update({f'{out}/depth_colored': schema.IMAGE,
                       f'/{opts.node_name}/debug/saliency_overlay': schema.IMAGE})
    return topics


def run_live(opts: EvalOptions) -> dict:
    layout, field_map, images = prepare(opts)
    plan, _ = plan_frames(opts.bag, layout, field_map, opts.sync_tolerance, opts.radar_sweeps)
    run = _LiveRun(plan, layout.image_topic, f'/{opts.node_name}/output/depth', opts.output_timeout)
    out, created = _prepare_out(opts)
    with _no_partial_outputs(out, created):
        play = _replay_to_node(opts, layout, field_map, out, run)
        return _evaluate_recorded(opts, layout, field_map, images, out, run, play)


def _replay_to_node(opts: EvalOptions, layout, field_map, out: Path, run: _LiveRun):
    """Start the node, replay the bag to it gated on its answers, record its outputs; the PlayStats."""
    depth_topic = run.depth_topic
    inputs = [layout.image_topic, layout.camera_info_topic, layout.radar_topic]
    params, remaps = _node_setup(opts, layout, field_map)
    session = RosSession(f'{opts.node_name}_replay_eval', use_sim_time=True)
    recorder = player = None
    try:
        recorder = Recorder(session.node, out / OUTPUT_BAG, _recorded_topics(opts), storage=opts.storage,
                            on_message=run.on_recorded)
        account = NodeAccount(session.node, opts.node_name)
        player = BagPlayer(session.node, opts.bag, topics=inputs, rate=opts.rate, clock=True, gate=run.gate,
                           on_publish=run.on_publish)
        run.node = node = NodeProcess(opts.node_name, params, remaps, out)
        try:
            player.wait_for_subscribers(inputs, opts.node_timeout, alive=node.alive)
        except BagError as exc:
            raise BagError(f'{exc}; node log {node.log_path}:\n{node.log_tail()}') from None
        for topic in _recorded_topics(opts):   # every output matched, so the first frame is recorded in full
            if not wait_until(lambda t=topic: recorder.publisher_count(t) > 0, opts.node_timeout):
                raise BagError(f'the node never offered {topic}; node log {node.log_path}:\n{node.log_tail()}')
        # Our side sees the node's subscriptions; the node's readers may not have matched our writers
        # yet, and a best-effort sample sent before that is lost (seen once in CI on a loaded host,
        # with 0.2 s here). Discovery on one host completes well within a second.
        time.sleep(1.0)
        play = player.play()
        # The last frame(s): one more output_timeout at most, not again for frames already given up on.
        run.given_up.update(run.wait_for([s for s in run.plan if s not in run.given_up]))
        # The node publishes colour and saliency after the depth the gate waits for: let the last
        # frame's visuals land before the node stops, or the output bag ends one overlay short.
        depths = recorder.counts.get(depth_topic, 0)
        wait_until(lambda: all(recorder.counts.get(t, 0) >= depths for t in _recorded_topics(opts)), 5.0)
        # The node's split over all frames is in its next report. It reports every diagnostics_period (1 s)
        # of ROS time, which is bag time here and stops with the bag: run the clock on until it comes.
        done = time.monotonic()
        player.run_clock_on(min(3.0, 1.5 / min(opts.rate, 1.0)), until=lambda: account.reported_after(done))
        run.node_values = account.values()
    finally:
        if run.node is not None:
            run.node.stop()
        if player is not None:
            player.close()
        if recorder is not None:
            recorder.close()
        session.close()
    return play


def _read_outputs(path: Path, depth_topic: str) -> dict:
    """stamp_ns -> depth (H x W float32) of the recorded output bag."""
    depths = {}
    with reading(path) as reader:
        conns = [c for c in reader.connections if c.topic == depth_topic]
        for conn, _, raw in reader.messages(connections=conns):
            msg = deserialize(raw, conn.msgtype)
            depths[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = convert.image_msg_to_array(msg)
    return depths


def _evaluate_recorded(opts, layout, field_map, images, out, run: _LiveRun, play) -> dict:
    depth_topic = f'/{opts.node_name}/output/depth'
    depths = _read_outputs(out / OUTPUT_BAG, depth_topic)
    report = EvalReport(out, 'live', opts.bag, opts.checkpoint, layout, images, opts.figures)
    frames = _frames(opts, layout, field_map)
    estimator = _estimator(opts) if opts.figures > 0 else None
    processed, no_output = set(), []
    for ef in frames:
        depth = depths.get(ef.stamp_ns)
        if depth is None:
            no_output.append({'stamp_ns': ef.stamp_ns, 'reason': 'no_output',
                              'message': f'the node published no depth for this image within --output-timeout '
                                         f'{opts.output_timeout:g} s (dropped by the node, see node.log, or lost '
                                         f'in transport)'})
            continue
        sent, got = run.published.get(ef.stamp_ns), run.arrived.get(ef.stamp_ns)
        latency = 1e3 * (got - sent) if sent is not None and got is not None else None
        report.add(ef, depth, latency_ms=latency)
        processed.add(ef.stamp_ns)
        if estimator is not None and report.wants_figure(ef):
            report.figure(ef, depth, _saliency(estimator, ef.frame))
    unexpected = sorted(set(depths) - processed)
    extra = {'replay': {'rate': opts.rate, 'wall_s': play.wall_s, 'bag_s': play.bag_s, 'paused_s': play.paused_s,
                        'published': dict(play.counts), 'skipped': play.skipped},
             'planned_frames': len(run.plan), 'outputs_recorded': len(depths), 'unexpected_outputs': unexpected,
             'gate': {'frames_waited': run.waited, 'given_up': sorted(run.given_up),
                      'output_timeout_s': opts.output_timeout},
             'output_bag': str(out / OUTPUT_BAG), 'output_topics': sorted(_recorded_topics(opts)),
             'node_log': str(out / 'node.log'), 'node_diagnostics': run.node_values}
    kind = 'end-to-end (replay publish -> depth received, wall clock'
    if opts.record_visuals:
        rate = 'every frame' if opts.saliency_rate is None else f'at most {opts.saliency_rate:g} Hz'
        kind += f', with depth colouring and Grad-CAM saliency {rate})'
    else:
        kind += ')'
    return report.finish(_dropped(frames, processed, no_output), frames.stats.pairing, kind, extra=extra,
                         invalid_reason=layout.lidar_missing)


def run(opts: EvalOptions) -> dict:
    return run_live(opts) if opts.live else run_offline(opts)
