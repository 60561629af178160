"""Domain randomisation: per scene, the look of the world, the camera and the radar drawn at random, so a
network trained on the synthetic world learns depth cues that survive a real camera and a real radar.

`DomainRandomisation` holds the ranges; `WorldSettings(randomise=DomainRandomisation())` makes every
World draw, from its own seed (a stream of its own, independent of the layout's, so the street is the
same street with and without randomisation), one `SceneDomain`:

- light and weather: sun elevation (5-75 deg, so long evening shadows too) and azimuth, sun intensity
  and ambient light, overcast skies (soft shadows, grey sky), haze / fog (visibility from 60 m),
  contrast, white balance (warm at a low sun), an automatic exposure with its error, blur, sensor
  noise level, vignetting;
- textures: every procedural texture's spatial frequency, a colour gain per material;
- the camera: mount height and pitch / roll, principal point, and focal length (+-20 %); the drawn
  camera is the World's camera, so the rendering, K and the ground truth agree;
- the radar: cluster density, detection threshold and dropout (how many points), range and azimuth
  noise, clutter rate, ghost probability, the vertical beam's spread, and z: 0 as on nuScenes'
  ARS408, or noise without information (a radar whose elevation cannot be trusted).

Off by default (`WorldSettings.randomise` None): every seed renders exactly what it rendered before.
The lidar (ground truth) is never randomised. Ranges are our choice (plausible magnitudes for
automotive cameras and radars), not measurements.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..config import CameraModel
from ..geometry import quaternion_to_rotation, rotation_to_quaternion
from .materials import N_MATERIALS
from .radar_sim import RadarSpec
from .scene import Appearance

DOMAIN_STREAM = 4      # World seeds: layout [0], sensor readings [sensor, time]; the domain draw [4]


@dataclass(frozen=True)
class DomainRandomisation:
    """Ranges of the per-scene draws: (low, high) uniform, 'log' ones log-uniform; +-x symmetric."""

    # light and weather
    sun_elevation_deg: tuple = (5.0, 75.0)
    overcast_p: float = 0.3
    sun_intensity: tuple = (0.35, 0.95)          # clear sky: the Lambert (diffuse) term
    ambient: tuple = (0.2, 0.6)                  # clear sky
    overcast_ambient: tuple = (0.55, 0.85)
    overcast_sun: tuple = (0.1, 0.35)
    fog_distance: tuple = (60.0, 1000.0)         # m, log: thick haze .. clear air
    contrast: tuple = (0.7, 1.15)
    exposure_error: tuple = (0.7, 1.4)           # log: x the automatic exposure (which targets mid grey)
    white_balance: float = 0.08                  # per-channel gain 1 +- this (plus warmth at a low sun)
    blur_p: float = 0.4
    blur_sigma: tuple = (0.3, 1.6)               # px at 1600 px width
    noise_gain: tuple = (0.5, 3.0)               # log
    vignette: tuple = (0.0, 0.3)
    # textures
    texture_frequency: tuple = (0.6, 1.7)        # log
    material_tint: float = 0.15                  # per material and channel, gain 1 +- this
    # the camera
    camera_height: float = 0.1                   # m, +-
    camera_pitch_deg: float = 2.0                # +-
    camera_roll_deg: float = 0.5                 # +-
    focal_scale: tuple = (0.8, 1.2)              # log
    principal_point: float = 0.02                # +- this fraction of the image size
    # the radar
    radar_density: tuple = (0.5, 1.5)            # log: clusters per object
    snr_threshold_db: tuple = (5.0, 14.0)        # plain world 8
    dropout: tuple = (0.0, 0.35)
    range_noise: tuple = (0.1, 0.6)              # m
    azimuth_noise_deg: tuple = (0.3, 2.0)
    clutter_mean: tuple = (2.0, 30.0)            # log, points per sweep
    ghost_probability: tuple = (0.0, 0.35)
    elevation_spread_deg: tuple = (1.5, 6.0)     # half-width of the vertical beam (plain world 3)
    radar_z_noise_p: float = 0.3                 # else z = 0 (nuScenes)
    radar_z_noise: tuple = (0.1, 1.0)            # m

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict | None) -> 'DomainRandomisation':
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown domain randomisation setting(s) {unknown}; known: {sorted(known)}')
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})


@dataclass(frozen=True)
class SceneDomain:
    """What one scene drew: its appearance, camera, radar, and the drawn numbers (for meta.json)."""

    appearance: Appearance
    camera: CameraModel
    radar: RadarSpec
    values: dict


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _symmetric(rng, half: float) -> float:
    return float(rng.uniform(-half, half))


def _appearance(rng, dr: DomainRandomisation, values: dict) -> Appearance:
    elev_deg = float(rng.uniform(*dr.sun_elevation_deg))
    azim = float(rng.uniform(0.0, 2 * np.pi))
    elev = np.radians(elev_deg)
    sun = (float(np.cos(elev) * np.cos(azim)), float(np.cos(elev) * np.sin(azim)), float(np.sin(elev)))
    overcast = bool(rng.random() < dr.overcast_p)
    if overcast:
        ambient, diffuse = float(rng.uniform(*dr.overcast_ambient)), float(rng.uniform(*dr.overcast_sun))
        shadow = float(rng.uniform(0.05, 0.25))
        grey = float(rng.uniform(0.55, 0.75))
        sky_zenith = (grey, grey + 0.02, grey + 0.05)
        sky_horizon = tuple(float(min(grey + 0.15 + d, 1.0)) for d in (0.0, 0.01, 0.02))
    else:
        ambient, diffuse = float(rng.uniform(*dr.ambient)), float(rng.uniform(*dr.sun_intensity))
        shadow = float(rng.uniform(0.5, 0.9))
        blue = float(rng.uniform(0.8, 1.15))
        sky_zenith = tuple(float(np.clip(c * blue, 0, 1)) for c in (0.30, 0.50, 0.85))
        sky_horizon = tuple(float(np.clip(c + rng.uniform(-0.06, 0.06), 0, 1)) for c in (0.76, 0.82, 0.90))
    fog = _log_uniform(rng, *dr.fog_distance)
    # Haze washes the sky towards the horizon colour.
    haze = float(np.clip(1.0 - (fog - 60.0) / 400.0, 0.0, 1.0))
    sky_zenith = tuple(z + (h - z) * haze for z, h in zip(sky_zenith, sky_horizon))
    # Automatic exposure: the plain world's ground is lit ~0.88 at exposure ~1 (and haze brightens the
    # image); aim a little darker than that, with an error.
    light = ambient + diffuse * max(sun[2], 0.0)
    exposure = float(np.clip(0.8 / light, 0.6, 2.0)) * _log_uniform(rng, *dr.exposure_error)
    warmth = float(np.clip((20.0 - elev_deg) / 15.0, 0.0, 1.0)) * float(rng.uniform(0.0, 1.0)) * (not overcast)
    balance = 1.0 + rng.uniform(-dr.white_balance, dr.white_balance, 3)
    light_color = tuple(float(g) for g in balance * (1.0 + 0.12 * warmth, 1.0, 1.0 - 0.25 * warmth))
    contrast = float(rng.uniform(*dr.contrast))
    blurred = bool(rng.random() < dr.blur_p)
    blur = float(rng.uniform(*dr.blur_sigma))
    noise_gain = _log_uniform(rng, *dr.noise_gain)
    vignette = float(rng.uniform(*dr.vignette))
    texture_frequency = _log_uniform(rng, *dr.texture_frequency)
    tint = 1.0 + rng.uniform(-dr.material_tint, dr.material_tint, (N_MATERIALS, 3))
    values.update(sun_elevation_deg=elev_deg, sun_azimuth_deg=float(np.degrees(azim)), overcast=overcast,
                  ambient=ambient, sun_intensity=diffuse, fog_distance_m=fog, exposure=exposure,
                  light_color=list(light_color), contrast=contrast, blur_px=blur if blurred else 0.0,
                  noise_gain=noise_gain, vignette=vignette, texture_frequency=texture_frequency)
    return Appearance(sun, ambient=ambient, diffuse=diffuse, sky_zenith=sky_zenith, sky_horizon=sky_horizon,
                      fog_distance=fog, exposure=exposure, shadow_strength=shadow, contrast=contrast,
                      light_color=light_color, blur=blur if blurred else 0.0, noise_gain=noise_gain,
                      vignette=vignette, texture_frequency=texture_frequency,
                      material_tint=tuple(tuple(float(c) for c in row) for row in tint))


def _camera(rng, dr: DomainRandomisation, cam: CameraModel, values: dict) -> CameraModel:
    scale = _log_uniform(rng, *dr.focal_scale)
    height = _symmetric(rng, dr.camera_height)
    pitch, roll = np.radians(_symmetric(rng, dr.camera_pitch_deg)), np.radians(_symmetric(rng, dr.camera_roll_deg))
    du, dv = _symmetric(rng, dr.principal_point), _symmetric(rng, dr.principal_point)
    # The optical frame: x right, y down, z forward; pitch turns about x, roll about z.
    c, s = np.cos(pitch), np.sin(pitch)
    R_pitch = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    c, s = np.cos(roll), np.sin(roll)
    R_roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    R = quaternion_to_rotation(cam.rotation) @ R_pitch @ R_roll
    tx, ty, tz = cam.translation
    values.update(focal_scale=scale, camera_height_offset_m=height, camera_pitch_deg=float(np.degrees(pitch)),
                  camera_roll_deg=float(np.degrees(roll)), principal_point_offset=[du, dv])
    return replace(cam, fx=cam.fx * scale, fy=cam.fy * scale, cx=cam.cx + du * cam.width,
                   cy=cam.cy + dv * cam.height, translation=(tx, ty, tz + height),
                   rotation=tuple(float(q) for q in rotation_to_quaternion(R)))


def _radar(rng, dr: DomainRandomisation, radar: RadarSpec, values: dict) -> RadarSpec:
    spread = float(rng.uniform(*dr.elevation_spread_deg))
    n = len(radar.elevations_deg)
    noisy_z = bool(rng.random() < dr.radar_z_noise_p)
    z_noise = float(rng.uniform(*dr.radar_z_noise))
    drawn = dict(density=_log_uniform(rng, *dr.radar_density),
                 snr_threshold_db=float(rng.uniform(*dr.snr_threshold_db)),
                 dropout=float(rng.uniform(*dr.dropout)), range_noise=float(rng.uniform(*dr.range_noise)),
                 azimuth_noise_deg=float(rng.uniform(*dr.azimuth_noise_deg)),
                 clutter_mean=_log_uniform(rng, *dr.clutter_mean),
                 ghost_probability=float(rng.uniform(*dr.ghost_probability)),
                 z_noise=z_noise if noisy_z else 0.0)
    values.update({f'radar_{k}': v for k, v in drawn.items()}, radar_elevation_spread_deg=spread)
    return replace(radar, elevations_deg=tuple(float(e) for e in np.linspace(-spread, spread, n)), **drawn)


def draw_domain(entropy, dr: DomainRandomisation, camera: CameraModel, radar: RadarSpec) -> SceneDomain:
    """The domain of the scene with this seed entropy (World.entropy): a function of the seed alone."""
    rng = np.random.default_rng(list(entropy) + [DOMAIN_STREAM])
    values: dict = {}
    appearance = _appearance(rng, dr, values)
    camera = _camera(rng, dr, camera, values)
    radar = _radar(rng, dr, radar, values)
    return SceneDomain(appearance, camera, radar, values)
