"""The camera: rasterise the ground and every box face into a z-buffer, cast sun shadows on the
ground, then shade. Returns the RGB image with its exact dense depth.

Dense depth convention: camera-frame z in metres (float32); 0 where the ray meets nothing within
`far` (the sky, and the ground beyond the draw distance), the same "0 = no value" as the GT maps.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import invert_transform
from .raster import DepthRaster
from .scene import BoxSet, Scene
from .shading import FACE_NORMALS, GROUND_ID, face_surface_id, shade

# Corner indices (BoxSet.corners order: index = 4*[x>0] + 2*[y>0] + [z>0]) of the faces +x, -x, +y, -y, +z, -z.
FACE_CORNERS = np.array([[4, 6, 7, 5], [0, 1, 3, 2], [2, 3, 7, 6], [0, 4, 5, 1], [1, 5, 7, 3], [0, 2, 6, 4]])


@dataclass
class CameraRender:
    image: np.ndarray          # H x W x 3 uint8 RGB
    depth: np.ndarray          # H x W float32 metres, 0 = nothing within `far`
    surface: np.ndarray        # H x W int32: 0 sky, 1 ground, 2 + 6 * box + face
    boxes: BoxSet              # the boxes at the render time (box indices of `surface`)
    T_world_camera: np.ndarray

    def object_index(self) -> np.ndarray:
        """H x W int32 index into Scene.objects of the object seen at each pixel; -1 for ground and sky."""
        box = (self.surface - 2) // 6
        out = np.full(self.surface.shape, -1, np.int32)
        hit = self.surface >= 2
        out[hit] = self.boxes.owner[box[hit]]
        return out


def _visible_boxes(corners_cam: np.ndarray, K, height, width, near, far) -> np.ndarray:
    """Boxes that can touch the image: not wholly behind the near plane, beyond far, or off to a side."""
    z = corners_cam[..., 2]
    keep = (z.max(1) > near) & (z.min(1) < far)
    front = np.all(z > near, axis=1)
    with np.errstate(divide='ignore', invalid='ignore'):
        u = K[0, 0] * corners_cam[..., 0] / z + K[0, 2]
        v = K[1, 1] * corners_cam[..., 1] / z + K[1, 2]
    off = (u.max(1) < 0) | (u.min(1) > width) | (v.max(1) < 0) | (v.min(1) > height)
    return keep & ~(front & off)


def _shadow_mask(raster: DepthRaster, boxes: BoxSet, corners_world, keep, T_camera_world, sun) -> np.ndarray:
    """uint8 mask of the pixels whose ground point lies in some box's sun shadow."""
    mask = np.zeros((raster.height, raster.width), np.uint8)
    sun = np.asarray(sun, dtype=np.float64)
    R, t = T_camera_world[:3, :3], T_camera_world[:3, 3]
    tall = keep & (2 * boxes.half[:, 2] > 0.3)      # kerbs and cone bases cast no visible shadow
    for b in np.flatnonzero(tall):
        c = corners_world[b]
        on_ground = c[:, :2] - (c[:, 2:3] / sun[2]) * sun[:2]
        hull = cv2.convexHull(on_ground.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        poly = np.column_stack([hull, np.zeros(len(hull))]) @ R.T + t
        raster.fill_mask(mask, poly)
    return mask


def render_camera(scene: Scene, t: float, K, height: int, width: int, T_ego_camera,
                  rng: np.random.Generator, far: float = 200.0, near: float = 0.05) -> CameraRender:
    K = np.asarray(K, dtype=np.float64)
    T_world_camera = scene.ego.pose(t) @ T_ego_camera
    T_camera_world = invert_transform(T_world_camera)
    R, tr = T_camera_world[:3, :3], T_camera_world[:3, 3]
    cam_pos = T_world_camera[:3, 3]
    boxes = scene.boxes_at(t)
    corners = boxes.corners()
    corners_cam = corners @ R.T + tr
    keep = _visible_boxes(corners_cam, K, height, width, near, far)

    raster = DepthRaster(K, height, width, near=near, far=far)
    # Ground plane z = 0 in the camera frame: (R e_z) . X_cam = -camera height.
    raster.draw_plane(R @ np.array([0.0, 0.0, 1.0]), -float(cam_pos[2]), GROUND_ID)

    normals_world = np.einsum('bij,fj->bfi', boxes.rotations(), FACE_NORMALS.astype(np.float64))
    for b in np.flatnonzero(keep):
        faces = corners[b][FACE_CORNERS]                       # (6, 4, 3) world
        toward = np.einsum('fi,fi->f', normals_world[b], cam_pos - faces.mean(axis=1))
        for f in np.flatnonzero(toward > 1e-9):
            raster.draw_polygon(corners_cam[b][FACE_CORNERS[f]], R @ normals_world[b, f], face_surface_id(b, f))
    depth = raster.depth()
    shadow = _shadow_mask(raster, boxes, corners, keep | _near_casters(boxes, cam_pos, far), T_camera_world,
                          scene.appearance.sun_direction)
    image = shade(scene, boxes, raster.surface, depth, K, T_world_camera, shadow, far, rng)
    return CameraRender(image=image, depth=depth, surface=raster.surface, boxes=boxes,
                        T_world_camera=T_world_camera)


def _near_casters(boxes: BoxSet, cam_pos, far) -> np.ndarray:
    """Boxes out of view can still throw a shadow into it (a building behind the camera)."""
    dist = np.linalg.norm(boxes.center[:, :2] - cam_pos[:2], axis=1) - np.linalg.norm(boxes.half[:, :2], axis=1)
    return dist < 0.5 * far
