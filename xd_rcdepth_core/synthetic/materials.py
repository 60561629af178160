"""Surface materials of the synthetic world and what each sensor sees of them.

One table, so the camera, the lidar and the radar agree on what a surface is: a lane marking is
bright in the image and retro-reflective for the lidar; a car is a strong radar target and a
pedestrian a weak one. Values are plausible magnitudes, not measurements of any real sensor.
"""
from __future__ import annotations

from dataclasses import dataclass

# Material ids (int8 in per-pixel and per-ray buffers). 0 means "nothing hit" (sky).
NONE, ROAD, VERGE, SIDEWALK, WALL, ROOF, BODY, GLASS, TYRE, CLOTH, SKIN, METAL, CONCRETE, \
    FOLIAGE, BARK, CONE = range(16)
N_MATERIALS = 16
# The ground plane is one surface whose material depends on where it is (road or verge).
GROUND = ROAD


@dataclass(frozen=True)
class LidarReflectance:
    """Mean and spread of the lidar intensity (0-255 like nuScenes) of a material."""

    mean: float
    spread: float


# Lane paint is retro-reflective (handled in lidar.py by looking up the marking at the hit point).
LIDAR_INTENSITY = {
    NONE: LidarReflectance(0, 0), ROAD: LidarReflectance(6, 3), VERGE: LidarReflectance(18, 6),
    SIDEWALK: LidarReflectance(22, 6), WALL: LidarReflectance(30, 12), ROOF: LidarReflectance(20, 8),
    BODY: LidarReflectance(35, 15), GLASS: LidarReflectance(4, 2), TYRE: LidarReflectance(3, 2),
    CLOTH: LidarReflectance(15, 6), SKIN: LidarReflectance(12, 4), METAL: LidarReflectance(45, 15),
    CONCRETE: LidarReflectance(25, 8), FOLIAGE: LidarReflectance(14, 6), BARK: LidarReflectance(10, 4),
    CONE: LidarReflectance(90, 20),
}
LANE_PAINT_INTENSITY = LidarReflectance(110, 25)


def lidar_intensity_table():
    """(mean, spread) arrays indexed by material id."""
    import numpy as np
    mean = np.zeros(N_MATERIALS, np.float32)
    spread = np.zeros(N_MATERIALS, np.float32)
    for mat, refl in LIDAR_INTENSITY.items():
        mean[mat], spread[mat] = refl.mean, refl.spread
    return mean, spread


@dataclass(frozen=True)
class RadarSignature:
    """How an object category looks to an automotive radar.

    rcs_db: (low, high) radar cross-section in dBsm drawn per object (cars ~5-15, trucks more,
    pedestrians ~-5..0). columns_per_detection: an extended target gives about one cluster per
    this many azimuth rays it covers (0.25 deg each); max_detections caps the clusters per object.
    """

    rcs_db: tuple
    columns_per_detection: int
    max_detections: int


RADAR_SIGNATURE = {
    'vehicle.car': RadarSignature((5.0, 15.0), 5, 4),
    'vehicle.truck': RadarSignature((15.0, 25.0), 5, 6),
    'vehicle.bus.rigid': RadarSignature((17.0, 27.0), 5, 6),
    'human.pedestrian.adult': RadarSignature((-5.0, 0.0), 10, 1),
    'movable_object.barrier': RadarSignature((0.0, 6.0), 8, 2),
    'movable_object.trafficcone': RadarSignature((-5.0, 0.0), 10, 1),
    'static.pole': RadarSignature((0.0, 5.0), 10, 1),
    'static.sign': RadarSignature((5.0, 12.0), 10, 1),
    'static.vegetation': RadarSignature((-8.0, 2.0), 10, 2),
    'static.building': RadarSignature((-5.0, 15.0), 10, 5),
    'static.sidewalk': RadarSignature((-20.0, -15.0), 1000, 0),  # a flat kerb: no clusters
}
