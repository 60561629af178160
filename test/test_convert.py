"""Message <-> numpy conversions against hand-built messages, their error paths, and a loopback DDS trip."""
import array
import importlib.util
import struct
import sys
import time
import types

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from xd_rcdepth_core.frame import NUSCENES_RADAR_FIELDS, Frame
from xd_rcdepth_ros import convert
from xd_rcdepth_ros.convert import (
    ConversionError,
    array_to_image_msg,
    array_to_pointcloud2,
    camera_info_msg,
    camera_info_to_K,
    compressed_to_rgb,
    depth_to_image_msg,
    finite_rows,
    image_msg_to_array,
    image_to_rgb,
    pointcloud2_to_array,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
)

# The 2 x 3 RGB image most image tests use: pixel (r, c) = (10r + c, 100 + 10r + c, 200 + 10r + c).
RGB = np.array([[[10 * r + c, 100 + 10 * r + c, 200 + 10 * r + c] for c in range(3)] for r in range(2)],
               np.uint8)
K = np.array([[800.0, 0, 320.5], [0, 810.0, 240.25], [0, 0, 1]])


def image(encoding, height, width, step, data, big=False):
    return Image(height=height, width=width, encoding=encoding, is_bigendian=big, step=step, data=data)


def padded_rows(rows, pad):
    """Bytes of rows (lists of byte values), each followed by `pad` bytes of 0xEE filler."""
    return b''.join(bytes(r) + b'\xee' * pad for r in rows)


def header(sec=17, nanosec=500, frame='cam'):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


# ------------------------------------------------------------------------------------------ image reading

def test_bgr8_with_padded_step_by_hand():
    rows = [[v for c in range(3) for v in RGB[r, c, ::-1]] for r in range(2)]  # B, G, R per pixel
    msg = image('bgr8', 2, 3, 3 * 3 + 5, padded_rows(rows, 5))
    out = image_to_rgb(msg, backend='numpy')
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, RGB)
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(image_msg_to_array(msg, backend='numpy'), RGB[:, :, ::-1])


@pytest.mark.parametrize('encoding,to_bytes', [
    ('rgb8', lambda px: list(px)),
    ('rgba8', lambda px: list(px) + [77]),
    ('bgra8', lambda px: list(px[::-1]) + [77]),
])
def test_colour_encodings_by_hand(encoding, to_bytes):
    ch = len(to_bytes(RGB[0, 0]))
    rows = [[v for c in range(3) for v in to_bytes(RGB[r, c])] for r in range(2)]
    # is_bigendian is meaningless for 8-bit data and must not change anything.
    for big in (False, True):
        msg = image(encoding, 2, 3, 3 * ch + 2, padded_rows(rows, 2), big=big)
        np.testing.assert_array_equal(image_to_rgb(msg, backend='numpy'), RGB)


def test_mono8_is_replicated_to_three_channels():
    msg = image('mono8', 2, 3, 4, padded_rows([[0, 128, 255], [1, 2, 3]], 1))
    out = image_to_rgb(msg, backend='numpy')
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[:, :, 0], [[0, 128, 255], [1, 2, 3]])
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_data_types_rclpy_and_bags_deliver():
    rows = [list(RGB[r].reshape(-1)) for r in range(2)]
    raw = padded_rows(rows, 0)
    for data in (raw, bytearray(raw), array.array('B', raw), np.frombuffer(raw, np.uint8)):
        msg = types.SimpleNamespace(height=2, width=3, encoding='rgb8', is_bigendian=0, step=9, data=data)
        np.testing.assert_array_equal(image_to_rgb(msg, backend='numpy'), RGB)


def test_16uc1_big_endian_and_32fc1_by_hand():
    msg = image('16UC1', 1, 3, 8, struct.pack('>HHH', 1, 300, 65535) + b'\0\0', big=True)
    out = image_msg_to_array(msg, backend='numpy')
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, [[1, 300, 65535]])
    little = image('32FC1', 2, 2, 8, struct.pack('<4f', 0.5, float('nan'), 2.0, 80.0))
    big = image('32FC1', 2, 2, 8, struct.pack('>4f', 0.5, float('nan'), 2.0, 80.0), big=True)
    for m in (little, big):
        d = image_msg_to_array(m, backend='numpy')
        assert d.dtype == np.float32 and d.shape == (2, 2) and d.dtype.isnative
        np.testing.assert_array_equal(d, [[0.5, np.nan], [2.0, 80.0]])


def test_result_does_not_alias_the_message_buffer():
    msg = rgb_to_image_msg(RGB, encoding='rgb8')
    out = image_to_rgb(msg)
    out[:] = 0
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize('msg,fn,words', [
    (image('bayer_rggb16', 2, 3, 6, bytes(12)), image_to_rgb, ["'bayer_rggb16'", 'not a colour encoding']),
    (image('nv21', 2, 4, 4, bytes(8)), image_msg_to_array, ['unsupported image encoding', "'nv21'"]),
    (image('yuv422_yuy2', 2, 3, 6, bytes(12)), image_to_rgb, ["'yuv422_yuy2'", 'odd width 3', 'even']),
    (image('uyvy', 2, 4, 8, bytes(15)), image_to_rgb, ['data length 15', 'step * height = 8 * 2 = 16']),
    (image('yuv422', 2, 4, 6, bytes(12)), image_to_rgb, ['step 6 is smaller', '4 * 2 * 1 = 8']),
    (image('bayer_grbg8', 2, 4, 4, bytes(9)), image_to_rgb, ['data length 9', "'bayer_grbg8'"]),
    (image('rgb16', 2, 3, 12, bytes(24)), image_to_rgb, ['step 12 is smaller', '3 * 3 * 2 = 18']),
    (image('mono16', 2, 3, 6, bytes(13), big=True), image_to_rgb, ['data length 13', '6 * 2 = 12']),
    (image('rgb8', 0, 3, 9, b''), image_to_rgb, ['zero size']),
    (image('rgb8', 2, 0, 0, b''), image_msg_to_array, ['zero size']),
    (image('rgb8', 2, 3, 9, bytes(17)), image_to_rgb, ['data length 17', 'step * height = 9 * 2 = 18']),
    (image('rgb8', 2, 3, 9, bytes(20)), image_to_rgb, ['data length 20']),
    (image('rgb8', 2, 3, 8, bytes(16)), image_to_rgb, ['step 8 is smaller', '3 * 3 * 1 = 9']),
    (image('32FC1', 2, 3, 11, bytes(22)), image_msg_to_array, ['step 11 is smaller', '= 12']),
])
def test_image_errors_name_the_problem(msg, fn, words):
    with pytest.raises(ConversionError) as err:
        fn(msg, backend='numpy')
    for w in words:
        assert w in str(err.value)
    assert isinstance(err.value, ValueError)


# ------------------------------------------------------------------------------------------ camera encodings
# Each encoding is written here by hand from a known RGB picture and read back through image_to_rgb.

PIC_H, PIC_W = 48, 64
# Flat colour patches (rows 8:20) and the channel that must stay dominant in each.
PATCHES = {'red': ((8, 20, 4, 16), (220, 30, 30), 0), 'green': ((8, 20, 26, 38), (30, 200, 40), 1),
           'blue': ((8, 20, 48, 60), (30, 40, 210), 2)}


def _known_picture():
    """Smooth gradients in all three channels with three flat colour patches on top."""
    y, x = np.mgrid[0:PIC_H, 0:PIC_W].astype(np.float64)
    rgb = np.stack([40 + 160 * x / (PIC_W - 1), 40 + 160 * y / (PIC_H - 1),
                    200 - 150 * (x + y) / (PIC_W + PIC_H - 2)], axis=-1)
    for (r0, r1, c0, c1), colour, _ in PATCHES.values():
        rgb[r0:r1, c0:c1] = colour
    return np.round(rgb).astype(np.uint8)


def _yuv_bt601(rgb):
    """Y, U, V (float) of RGB with the BT.601 video-range formulas OpenCV's YUV 4:2:2 decoder inverts."""
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    return (16 + 0.257 * r + 0.504 * g + 0.098 * b, 128 - 0.148 * r - 0.291 * g + 0.439 * b,
            128 + 0.439 * r - 0.368 * g - 0.071 * b)


def _pack_yuv422(rgb, order):
    """H x W x 2 bytes of YUV 4:2:2: Y per pixel, U and V per horizontal pair (the pair's mean)."""
    y, u, v = _yuv_bt601(rgb)
    u = np.repeat((u[:, 0::2] + u[:, 1::2]) / 2, 2, axis=1)
    v = np.repeat((v[:, 0::2] + v[:, 1::2]) / 2, 2, axis=1)
    chroma = np.where(np.arange(rgb.shape[1]) % 2 == 0, u, v)  # U on even pixels, V on odd
    planes = (y, chroma) if order == 'yuyv' else (chroma, y)    # UYVY: chroma byte first
    return np.clip(np.round(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)


def _bayer_mosaic(rgb, pattern):
    """H x W mosaic: each pixel keeps the one channel the ROS pattern (row-major 2 x 2 block) names."""
    channel = {'r': 0, 'g': 1, 'b': 2}
    out = np.zeros(rgb.shape[:2], np.uint8)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[pattern[k]]]
    return out


def _wire(encoding, rgb):
    """The pixels of `rgb` in `encoding`, as an H x W (x C) array in the message's scalar type."""
    if encoding in ('yuv422_yuy2', 'yuyv'):
        return _pack_yuv422(rgb, 'yuyv')
    if encoding in ('yuv422', 'uyvy'):
        return _pack_yuv422(rgb, 'uyvy')
    if encoding.startswith('bayer_'):
        return _bayer_mosaic(rgb, encoding[len('bayer_'):len('bayer_') + 4])
    wide = rgb.astype(np.uint16) * 257  # 8 -> 16 bit full scale: 255 -> 65535
    return {'rgb16': wide, 'bgr16': wide[..., ::-1], 'mono16': wide[..., 0]}[encoding]


def _encoded_image(encoding, rgb, pad=0, big=False):
    """An Image of `rgb` in `encoding` written byte by byte: `pad` filler bytes after each row, 16-bit
    values in the byte order is_bigendian says."""
    px = _wire(encoding, rgb)
    px = px.astype(('>' if big else '<') + px.dtype.str[1:])
    rows = px.reshape(px.shape[0], -1)
    data = b''.join(r.tobytes() + b'\xee' * pad for r in rows)
    return image(encoding, px.shape[0], px.shape[1], rows.shape[1] * px.dtype.itemsize + pad, data, big=big)


YUV422 = ('yuv422_yuy2', 'yuyv', 'uyvy', 'yuv422')
BAYER = ('bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8')
SIXTEEN = ('rgb16', 'bgr16', 'mono16')


def _check_lossy(out, rgb, mae_limit, patch_limit):
    """Mean absolute error on the interior (2-pixel border cut: demosaicing borders) and flat patches
    that keep their colour (1-pixel margin cut: edges blur into neighbours)."""
    assert out.shape == rgb.shape and out.dtype == np.uint8
    err = np.abs(out.astype(int) - rgb.astype(int))[2:-2, 2:-2]
    assert err.mean() <= mae_limit, f'interior MAE {err.mean():.2f} > {mae_limit}'
    for name, ((r0, r1, c0, c1), colour, dominant) in PATCHES.items():
        mean = out[r0 + 1:r1 - 1, c0 + 1:c1 - 1].reshape(-1, 3).mean(axis=0)
        assert int(np.argmax(mean)) == dominant, f'{name} patch came out {mean}'
        assert np.abs(mean - colour).max() <= patch_limit, f'{name} patch {mean} vs {colour}'


@pytest.mark.parametrize('encoding', YUV422)
@pytest.mark.parametrize('pad', [0, 3])
def test_yuv422_encodings_read_back_the_picture(encoding, pad):
    rgb = _known_picture()
    msg = _encoded_image(encoding, rgb, pad=pad)
    out = image_to_rgb(msg, backend='numpy')
    # Chroma is shared by pixel pairs, so only colour edges lose anything; flat areas are within rounding.
    _check_lossy(out, rgb, mae_limit=1.5, patch_limit=2)
    assert np.abs(out.astype(int) - rgb)[:, 30:31].max() <= 2  # a gradient column, away from patches
    assert out.flags.c_contiguous and out.flags.writeable
    raw = image_msg_to_array(msg, backend='numpy')  # the wire layout: H x W x 2 bytes
    np.testing.assert_array_equal(raw, _wire(encoding, rgb))


def test_uyvy_and_yuyv_are_not_interchangeable():
    """ROS's 'yuv422' is UYVY: read as YUYV (or the reverse) the picture is wrong."""
    rgb = _known_picture()
    right = image_to_rgb(_encoded_image('yuv422', rgb), backend='numpy')
    swapped = image_to_rgb(_encoded_image('yuv422_yuy2', rgb), backend='numpy')
    wrong = image_to_rgb(image('yuv422', PIC_H, PIC_W, 2 * PIC_W, _encoded_image('yuv422_yuy2', rgb).data),
                         backend='numpy')
    assert np.abs(right.astype(int) - rgb).mean() < 1.5 and np.abs(swapped.astype(int) - rgb).mean() < 1.5
    assert np.abs(wrong.astype(int) - rgb).mean() > 20


@pytest.mark.parametrize('encoding', BAYER)
@pytest.mark.parametrize('pad', [0, 3])
def test_bayer_encodings_read_back_the_picture(encoding, pad):
    rgb = _known_picture()
    msg = _encoded_image(encoding, rgb, pad=pad)
    out = image_to_rgb(msg, backend='numpy')
    # Bilinear demosaicing is near exact on gradients and smears only around the patches' edges.
    _check_lossy(out, rgb, mae_limit=4, patch_limit=3)
    assert np.abs(out.astype(int) - rgb)[24:-2, 2:-2].max() <= 2  # the pure-gradient lower half
    np.testing.assert_array_equal(image_msg_to_array(msg, backend='numpy'), _wire(encoding, rgb))


def test_bayer_pattern_names_are_not_opencvs():
    """OpenCV's BayerRG is not ROS's rggb: a red patch read with the wrong pattern would come out blue."""
    rgb = _known_picture()
    rggb = _bayer_mosaic(rgb, 'rggb')
    as_bggr = image('bayer_bggr8', PIC_H, PIC_W, PIC_W, rggb.tobytes())
    (r0, r1, c0, c1), _, _ = PATCHES['red']
    assert np.argmax(image_to_rgb(as_bggr, backend='numpy')[r0 + 2:r1 - 2, c0 + 2:c1 - 2].mean(axis=(0, 1))) == 2
    as_rggb = image('bayer_rggb8', PIC_H, PIC_W, PIC_W, rggb.tobytes())
    assert np.argmax(image_to_rgb(as_rggb, backend='numpy')[r0 + 2:r1 - 2, c0 + 2:c1 - 2].mean(axis=(0, 1))) == 0


@pytest.mark.parametrize('encoding', SIXTEEN)
@pytest.mark.parametrize('pad,big', [(0, False), (3, False), (0, True), (3, True)])
def test_16bit_encodings_are_exact(encoding, pad, big):
    """value * 257 scales back exactly, in either byte order, with odd row padding (unaligned rows)."""
    rgb = _known_picture()
    msg = _encoded_image(encoding, rgb, pad=pad, big=big)
    out = image_to_rgb(msg, backend='numpy')
    want = np.repeat(rgb[..., :1], 3, axis=2) if encoding == 'mono16' else rgb
    np.testing.assert_array_equal(out, want)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.flags.writeable
    raw = image_msg_to_array(msg, backend='numpy')
    assert raw.dtype == np.uint16 and raw.dtype.isnative
    np.testing.assert_array_equal(raw, _wire(encoding, rgb))


def test_16bit_scaling_is_cv_bridges_over_every_value():
    """cv_bridge converts 16 -> 8 bit with convertTo(alpha = 255 / 65535): round(x / 257), not x >> 8."""
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    for big in (False, True):
        msg = image('mono16', 256, 256, 512, values.astype('>u2' if big else '<u2').tobytes(), big=big)
        out = image_to_rgb(msg, backend='numpy')
        np.testing.assert_array_equal(out[..., 1], (values.astype(np.uint32) + 128) // 257)
    assert out[255, 0, 0] == 254  # 65280 = 255 << 8: x >> 8 would give 255
    rgb16 = image('rgb16', 1, 2, 12, struct.pack('<6H', 65535, 0, 128, 129, 385, 65280))
    np.testing.assert_array_equal(image_to_rgb(rgb16, backend='numpy'), [[[255, 0, 0], [1, 1, 254]]])


def test_usb_cam_stream_reaches_the_node_path():
    """A yuv422_yuy2 message (usb_cam's default) goes through any_image_to_rgb, as to_frame calls it."""
    rgb = _known_picture()
    out = convert.any_image_to_rgb(_encoded_image('yuv422_yuy2', rgb))
    assert np.abs(out.astype(int) - rgb).mean() < 1.5
    assert 'yuv422_yuy2' in convert.RGB_ENCODINGS and 'yuv422' in convert.RGB_ENCODINGS


def test_new_encodings_build_and_read_back():
    """array_to_image_msg writes the wire layout of the new encodings; image_to_rgb reads them."""
    rgb = _known_picture()
    for encoding in YUV422 + BAYER + SIXTEEN:
        msg = array_to_image_msg(_wire(encoding, rgb), encoding)
        np.testing.assert_array_equal(image_to_rgb(msg, backend='numpy'),
                                      image_to_rgb(_encoded_image(encoding, rgb), backend='numpy'))


# ------------------------------------------------------------------------------------------ compressed

def test_compressed_png_exact_and_jpeg_close():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    png = rgb_to_compressed_msg(rgb, header(), fmt='png')
    assert png.format == 'rgb8; png compressed bgr8' and png.header.frame_id == 'cam'
    np.testing.assert_array_equal(compressed_to_rgb(png), rgb)
    flat = np.zeros((16, 24, 3), np.uint8)
    flat[..., 0], flat[..., 1], flat[..., 2] = 200, 50, 10  # flat colour: JPEG keeps it within a few levels
    jpg = rgb_to_compressed_msg(flat, fmt='jpeg', quality=95)
    assert np.abs(compressed_to_rgb(jpg).astype(int) - flat).max() <= 4
    assert np.array_equal(convert.any_image_to_rgb(png), rgb)


def test_compressed_from_opencv_bytes_by_hand():
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    ok, buf = cv2.imencode('.png', bgr)
    msg = CompressedImage(format='png', data=buf.tobytes())
    out = compressed_to_rgb(msg)
    assert out.shape == (4, 5, 3) and (out[..., 2] == 255).all() and (out[..., 0] == 0).all()


@pytest.mark.parametrize('msg,words', [
    (CompressedImage(format='jpeg', data=b''), ['no data']),
    (CompressedImage(format='jpeg', data=b'not a jpeg at all'), ['could not decode', '17 bytes']),
    (CompressedImage(format='16UC1; compressedDepth png', data=b'\x00' * 20), ['depth image']),
])
def test_compressed_errors(msg, words):
    with pytest.raises(ConversionError) as err:
        compressed_to_rgb(msg)
    assert all(w in str(err.value) for w in words)


# ------------------------------------------------------------------------------------------ image building

def test_depth_to_image_msg_is_rep118_32fc1():
    d = np.array([[1.5, np.nan, 3.0], [80.0, 0.25, np.inf]], np.float64)
    msg = depth_to_image_msg(d, header())
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ('32FC1', 2, 3, 12, False)
    assert msg.header.stamp.sec == 17 and msg.header.frame_id == 'cam'
    assert bytes(msg.data[:4]) == struct.pack('<f', 1.5)
    np.testing.assert_array_equal(image_msg_to_array(msg), d.astype(np.float32))
    with pytest.raises(ConversionError, match='H x W float'):
        depth_to_image_msg(np.zeros((2, 3), np.uint16))


def test_rgb_to_image_msg_bgr8_and_rgb8_bytes():
    bgr = rgb_to_image_msg(RGB, header())
    assert (bgr.encoding, bgr.step) == ('bgr8', 9)
    assert list(bgr.data[:3]) == [200, 100, 0]  # B, G, R of pixel (0, 0)
    rgb = rgb_to_image_msg(RGB, encoding='rgb8')
    assert list(rgb.data[:3]) == [0, 100, 200]
    for m in (bgr, rgb):
        np.testing.assert_array_equal(image_to_rgb(m), RGB)
    with pytest.raises(ConversionError, match="'bgr8' or 'rgb8'"):
        rgb_to_image_msg(RGB, encoding='mono8')
    with pytest.raises(ConversionError, match='H x W x 3 uint8'):
        rgb_to_image_msg(RGB.astype(np.float32))


def test_array_to_image_msg_16uc1_round_trip_and_errors():
    mm = np.array([[0, 1000], [65535, 42]], np.uint16)
    msg = array_to_image_msg(mm, '16UC1')
    assert msg.step == 4
    np.testing.assert_array_equal(image_msg_to_array(msg), mm)
    with pytest.raises(ConversionError, match='needs uint16'):
        array_to_image_msg(mm.astype(np.int32), '16UC1')
    with pytest.raises(ConversionError, match='unsupported image encoding'):
        array_to_image_msg(mm, 'bayer_rggb16')
    with pytest.raises(ConversionError, match='needs uint8'):
        array_to_image_msg(mm, 'bayer_rggb8')
    with pytest.raises(ConversionError, match='zero size'):
        array_to_image_msg(np.zeros((0, 4), np.uint16), '16UC1')


# ------------------------------------------------------------------------------------------ camera info

def test_camera_info_round_trip_keeps_caller_header():
    h = header(frame='original')
    msg = camera_info_msg(K, 480, 640, h, frame_id='cam_optical')
    assert msg.header.frame_id == 'cam_optical' and h.frame_id == 'original'
    assert msg.header.stamp.sec == 17 and msg.distortion_model == 'plumb_bob' and list(msg.d) == [0.0] * 5
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], K)
    K2, size = camera_info_to_K(msg)
    np.testing.assert_array_equal(K2, K)
    assert size == (480, 640)
    K3, _ = camera_info_to_K(msg, use_projection=True)
    np.testing.assert_array_equal(K3, K)


def test_depth_camera_info_keeps_the_input_calibration():
    src = camera_info_msg(K, 480, 640, header(frame='cam'))
    src.distortion_model, src.d = 'rational_polynomial', [0.1, -0.2, 0.001, 0.002, 0.05, 0.3, -0.1, 0.02]
    src.binning_x, src.roi.width, src.roi.height = 2, 100, 50
    out_header = header(frame='depth_frame')
    out_header.stamp.sec = 99
    msg = convert.depth_camera_info(src, out_header)
    assert msg.distortion_model == 'rational_polynomial' and list(msg.d) == list(src.d)
    assert (msg.height, msg.width, msg.binning_x, msg.roi.width, msg.roi.height) == (480, 640, 2, 100, 50)
    np.testing.assert_array_equal(msg.k, src.k)
    np.testing.assert_array_equal(msg.p, src.p)
    assert msg.header.frame_id == 'depth_frame' and msg.header.stamp.sec == 99
    assert src.header.frame_id == 'cam'                 # the input is not modified


def test_camera_info_binning_and_roi():
    msg = camera_info_msg(K, 480, 640)
    msg.binning_x = msg.binning_y = 2
    K2, size = camera_info_to_K(msg)
    assert size == (240, 320)
    np.testing.assert_allclose(K2, [[400, 0, 160.25], [0, 405, 120.125], [0, 0, 1]])
    msg = camera_info_msg(K, 480, 640)
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 40, 200, 100
    K3, size = camera_info_to_K(msg)
    assert size == (100, 200) and K3[0, 2] == 220.5 and K3[1, 2] == 200.25


def _info_with(k, height=480, width=640):
    msg = CameraInfo(height=height, width=width)
    msg.k = np.asarray(k, np.float64).reshape(-1)
    return msg


@pytest.mark.parametrize('msg,words', [
    (_info_with(np.zeros(9)), ['all zeros', 'uncalibrated']),
    (_info_with([np.nan, 0, 1, 0, 1, 1, 0, 0, 1]), ['non-finite']),
    (_info_with([0, 0, 320, 0, 800, 240, 0, 0, 1]), ['fx=0.0', 'must be > 0']),
    (_info_with([800, 0, 320, 0, -5, 240, 0, 0, 1]), ['fy=-5.0']),
    (_info_with([800, 2, 320, 0, 800, 240, 0, 0, 1]), ['skew-free']),
    (_info_with(K, height=0), ['zero image size']),
])
def test_camera_info_errors(msg, words):
    with pytest.raises(ConversionError) as err:
        camera_info_to_K(msg)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_camera_info_msg_rejects_bad_K():
    with pytest.raises(ConversionError, match='all zeros'):
        camera_info_msg(np.zeros((3, 3)), 480, 640)
    with pytest.raises(ConversionError, match='positive image size'):
        camera_info_msg(K, 0, 640)


# ------------------------------------------------------------------------------------------ point clouds

def cloud(fields, point_step, rows, width, row_step=None, big=False, height=1):
    """A PointCloud2 from (name, offset, datatype) triples and explicit bytes."""
    msg = PointCloud2(height=height, width=width, point_step=point_step, is_bigendian=big,
                      row_step=point_step * width if row_step is None else row_step)
    msg.fields = [PointField(name=n, offset=o, datatype=t, count=1) for n, o, t in fields]
    msg.data = rows
    return msg


F64, F32, I8, U16 = PointField.FLOAT64, PointField.FLOAT32, PointField.INT8, PointField.UINT16


def test_big_endian_float64_cloud_by_hand():
    pts = [(1.5, -2.0, 3000.25), (np.nan, 0.0, 1e-3)]
    data = b''.join(struct.pack('>ddd', *p) for p in pts)
    msg = cloud([('x', 0, F64), ('y', 8, F64), ('z', 16, F64)], 24, data, 2, big=True)
    arr, missing = pointcloud2_to_array(msg, ('x', 'y', 'z'), backend='numpy')
    assert arr.dtype == np.float32 and arr.shape == (2, 3) and missing == ()
    np.testing.assert_array_equal(arr, np.array(pts, np.float32))  # the NaN point is kept
    np.testing.assert_array_equal(finite_rows(arr), [True, False])


def test_int8_uint16_fields_with_padding_and_missing_features():
    # layout per point: x y z (float32 LE) | rcs int8 @12 | pad | id uint16 @14 | 4 pad bytes -> step 20
    pts = [(1.0, 2.0, 3.0, -7, 65535), (4.0, 5.0, 6.0, 100, 300)]
    data = b''.join(struct.pack('<fffbxH4x', *p) for p in pts)
    assert len(data) == 40
    fields = [('rcs', 12, I8), ('x', 0, F32), ('id', 14, U16), ('y', 4, F32), ('z', 8, F32)]
    msg = cloud(fields, 20, data, 2)
    arr, missing = pointcloud2_to_array(msg, ('x', 'y', 'z', 'rcs', 'vx', 'id'), backend='numpy')
    np.testing.assert_array_equal(arr, [[1, 2, 3, -7, 0, 65535], [4, 5, 6, 100, 0, 300]])
    assert missing == ('vx',)


def test_organised_cloud_with_row_padding():
    # height 2, width 2, point_step 12, row_step 28 (4 bytes of padding after each row)
    rows = [struct.pack('<6f', *range(r * 6, r * 6 + 6)) + b'\xee' * 4 for r in range(2)]
    msg = cloud([('x', 0, F32), ('y', 4, F32), ('z', 8, F32)], 12, b''.join(rows), 2, row_step=28, height=2)
    arr, _ = pointcloud2_to_array(msg, backend='numpy')
    np.testing.assert_array_equal(arr, np.arange(12, dtype=np.float32).reshape(4, 3))


def test_empty_cloud_is_fine():
    arr, missing = pointcloud2_to_array(PointCloud2(), ('x', 'y', 'z', 'rcs'))
    assert arr.shape == (0, 4) and arr.dtype == np.float32 and missing == ('x', 'y', 'z', 'rcs')
    empty = array_to_pointcloud2(np.zeros((0, 3), np.float32), ('x', 'y', 'z'))
    arr, missing = pointcloud2_to_array(empty, ('x', 'y', 'z', 'rcs'))
    assert arr.shape == (0, 4) and missing == ('rcs',)


XYZ32 = [('x', 0, F32), ('y', 4, F32), ('z', 8, F32)]


@pytest.mark.parametrize('msg,words', [
    (cloud([('x', 0, F32), ('y', 4, F32)], 8, bytes(16), 2), ['no z field', 'x, y']),
    (cloud(XYZ32, 10, bytes(20), 2), ['point_step 10 is smaller than the fields', "'z' at offset 8"]),
    (cloud(XYZ32 + [('rcs', 12, F32)], 12, bytes(24), 2), ["'rcs' offset 12 is beyond point_step 12"]),
    (cloud(XYZ32, 12, bytes(23), 2), ['data length 23', 'row_step * height = 24 * 1 = 24']),
    (cloud(XYZ32, 12, bytes(40), 2, row_step=20, height=2), ['row_step 20 is smaller', '12 * 2 = 24']),
    (cloud(XYZ32 + [('rcs', 12, 9)], 16, bytes(32), 2), ["'rcs' has unknown datatype 9"]),
])
def test_malformed_clouds_name_the_problem(msg, words):
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_array(msg, ('x', 'y', 'z', 'rcs'), backend='numpy')
    assert all(w in str(err.value) for w in words), str(err.value)


def test_array_to_pointcloud2_round_trip_and_layout():
    pts = np.array([[1, 2, 3, 0.5], [np.nan, 5, 6, -1]], np.float32)
    msg = array_to_pointcloud2(pts, ('x', 'y', 'z', 'rcs'), header())
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 16, 32)
    assert not msg.is_bigendian and not msg.is_dense  # a NaN point: not dense
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ('x', 0, F32), ('y', 4, F32), ('z', 8, F32), ('rcs', 12, F32)]
    assert bytes(msg.data[:8]) == struct.pack('<ff', 1, 2)
    back, missing = pointcloud2_to_array(msg, ('x', 'y', 'z', 'rcs'))
    np.testing.assert_array_equal(back, pts)
    assert array_to_pointcloud2(pts[:1], ('x', 'y', 'z', 'rcs')).is_dense
    with pytest.raises(ConversionError, match='N x 3'):
        array_to_pointcloud2(pts, ('x', 'y', 'z'))
    with pytest.raises(ValueError, match='duplicates'):
        pointcloud2_to_array(msg, ('x', 'y', 'z', 'x'))


def test_frame_radar_to_pointcloud2():
    radar = np.arange(2 * len(NUSCENES_RADAR_FIELDS), dtype=np.float32).reshape(2, -1)
    frame = Frame(image=np.zeros((4, 4, 3), np.uint8), K=np.eye(3), radar=radar,
                  radar_fields=NUSCENES_RADAR_FIELDS)
    msg = convert.frame_radar_to_pointcloud2(frame)
    arr, missing = pointcloud2_to_array(msg, NUSCENES_RADAR_FIELDS)
    np.testing.assert_array_equal(arr, radar)
    assert missing == ()


def test_finite_rows_on_columns():
    a = np.array([[1, 2, 3, np.nan], [np.inf, 0, 0, 1], [0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(finite_rows(a), [False, False, True])
    np.testing.assert_array_equal(finite_rows(a, (0, 1, 2)), [True, False, True])


# ------------------------------------------------------------------------------------------ backends

def _equality_messages():
    imgs = [rgb_to_image_msg(RGB), rgb_to_image_msg(RGB, encoding='rgb8'),
            image('mono8', 2, 3, 4, padded_rows([[0, 128, 255], [1, 2, 3]], 1)),
            depth_to_image_msg(np.array([[1.5, np.nan], [2, 3]], np.float32)),
            array_to_image_msg(np.array([[1, 65535]], np.uint16), '16UC1')]
    rgb = _known_picture()
    imgs += [_encoded_image(e, rgb, pad=3) for e in ('yuv422', 'yuv422_yuy2', 'bayer_rggb8', 'bayer_gbrg8')]
    imgs += [_encoded_image('rgb16', rgb, big=True), _encoded_image('mono16', rgb, pad=2)]
    pts = [(1.0, 2.0, 3.0, -7, 65535), (4.0, 5.0, 6.0, 100, 300)]
    clouds = [cloud([('rcs', 12, I8), ('x', 0, F32), ('id', 14, U16), ('y', 4, F32), ('z', 8, F32)], 20,
                    b''.join(struct.pack('<fffbxH4x', *p) for p in pts), 2),
              cloud([('x', 0, F64), ('y', 8, F64), ('z', 16, F64)], 24, struct.pack('>6d', *range(6)), 2,
                    big=True)]
    return imgs, clouds


@pytest.mark.skipif(convert.IMAGE_BACKEND == 'numpy',
                    reason=f'ROS 2 cv_bridge not usable here: {convert.BACKEND_NOTES.get("image")}')
def test_cv_bridge_and_numpy_give_identical_images():
    imgs, _ = _equality_messages()
    for m in imgs:
        if m.encoding in convert.RGB_ENCODINGS:
            np.testing.assert_array_equal(image_to_rgb(m, backend='cv_bridge'),
                                          image_to_rgb(m, backend='numpy'))
        np.testing.assert_array_equal(image_msg_to_array(m, backend='cv_bridge'),
                                      image_msg_to_array(m, backend='numpy'))


@pytest.mark.skipif(convert.POINTCLOUD_BACKEND == 'numpy',
                    reason=f'sensor_msgs_py not usable here: {convert.BACKEND_NOTES.get("pointcloud")}')
def test_sensor_msgs_py_and_numpy_give_identical_clouds():
    _, clouds = _equality_messages()
    for m in clouds:
        names = ('x', 'y', 'z', 'rcs', 'id')
        a, ma = pointcloud2_to_array(m, names, backend='sensor_msgs_py')
        b, mb = pointcloud2_to_array(m, names, backend='numpy')
        np.testing.assert_array_equal(a, b)
        assert ma == mb


def test_unavailable_backend_is_refused():
    if convert.IMAGE_BACKEND == 'numpy':
        with pytest.raises(ValueError, match='not available'):
            image_to_rgb(rgb_to_image_msg(RGB), backend='cv_bridge')
    with pytest.raises(ValueError, match='not available'):
        pointcloud2_to_array(PointCloud2(), backend='pcl')


def _load_private_convert(monkeypatch, bridge_cls=None, read_points=None):
    """A separate copy of convert.py imported with stand-in cv_bridge / sensor_msgs_py modules.

    The real ones cannot be installed here; this checks the selection logic only: a reader that decodes
    wrongly (as the PyPI ROS 1 cv-bridge port does) must be rejected, one that agrees must be used.
    """
    if bridge_cls is not None:
        fake = types.ModuleType('cv_bridge')
        fake.CvBridge = bridge_cls
        monkeypatch.setitem(sys.modules, 'cv_bridge', fake)
    if read_points is not None:
        pkg, sub = types.ModuleType('sensor_msgs_py'), types.ModuleType('sensor_msgs_py.point_cloud2')
        sub.read_points = read_points
        pkg.point_cloud2 = sub
        monkeypatch.setitem(sys.modules, 'sensor_msgs_py', pkg)
        monkeypatch.setitem(sys.modules, 'sensor_msgs_py.point_cloud2', sub)
    spec = importlib.util.spec_from_file_location('xd_convert_probe_copy', convert.__file__)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _AgreeingBridge:
    calls = 0

    def imgmsg_to_cv2(self, msg, desired_encoding='passthrough'):
        type(self).calls += 1
        if desired_encoding == 'rgb8':
            return convert._numpy_image_to_rgb(msg)
        return convert._numpy_image_msg_to_array(msg)


class _IgnoresStepBridge(_AgreeingBridge):
    def imgmsg_to_cv2(self, msg, desired_encoding='passthrough'):
        flat = np.frombuffer(bytes(msg.data), np.uint8)[:msg.height * msg.width * 3]
        return flat.reshape(msg.height, msg.width, 3)  # wrong for padded rows, as the ROS 1 port is


def test_backend_probe_rejects_a_wrong_bridge_and_uses_a_right_one(monkeypatch):
    bad = _load_private_convert(monkeypatch, _IgnoresStepBridge)
    assert bad.IMAGE_BACKEND == 'numpy' and 'decodes' in bad.BACKEND_NOTES['image']
    good = _load_private_convert(monkeypatch, _AgreeingBridge)
    assert good.IMAGE_BACKEND == 'cv_bridge'
    before = _AgreeingBridge.calls
    np.testing.assert_array_equal(good.image_to_rgb(rgb_to_image_msg(RGB)), RGB)
    assert _AgreeingBridge.calls == before + 1
    np.testing.assert_array_equal(good.image_to_rgb(rgb_to_image_msg(RGB), backend='numpy'), RGB)
    assert _AgreeingBridge.calls == before + 1  # forced numpy bypasses the bridge
    monkeypatch.setenv('XD_RCDEPTH_CONVERT_BACKEND', 'numpy')
    forced = _load_private_convert(monkeypatch, _AgreeingBridge)
    assert forced.IMAGE_BACKEND == 'numpy' and 'forced' in forced.BACKEND_NOTES['image']


def test_pointcloud_probe_rejects_a_byte_order_blind_reader_and_routes_a_right_one(monkeypatch):
    used = []

    def agreeing(msg, field_names=None, skip_nans=False):
        used.append(msg)
        return convert._numpy_read_fields(msg, convert._cloud_fields(msg), field_names).reshape(-1)

    def byte_order_blind(msg, field_names=None, skip_nans=False):
        msg = PointCloud2(height=msg.height, width=msg.width, fields=msg.fields, point_step=msg.point_step,
                          row_step=msg.row_step, data=msg.data, is_bigendian=False)
        return agreeing(msg, field_names)

    bad = _load_private_convert(monkeypatch, read_points=byte_order_blind)
    assert bad.POINTCLOUD_BACKEND == 'numpy' and 'disagrees' in bad.BACKEND_NOTES['pointcloud']
    good = _load_private_convert(monkeypatch, read_points=agreeing)
    assert good.POINTCLOUD_BACKEND == 'sensor_msgs_py'
    _, clouds = _equality_messages()
    used.clear()
    for m in clouds:
        np.testing.assert_array_equal(good.pointcloud2_to_array(m, ('x', 'y', 'z'))[0],
                                      pointcloud2_to_array(m, ('x', 'y', 'z'), backend='numpy')[0])
    native = [m for m in clouds if bool(m.is_bigendian) == (sys.byteorder == 'big')]
    assert len(used) == len(native) == 1  # a foreign byte order: always the numpy reader
    rows = [struct.pack('<6f', *range(r * 6, r * 6 + 6)) + b'\xee' * 4 for r in range(2)]
    padded = cloud(XYZ32, 12, b''.join(rows), 2, row_step=28, height=2)
    good.pointcloud2_to_array(padded)
    assert len(used) == 1  # row padding: always the numpy reader


def _upstream_read_points(cloud, field_names=None, skip_nans=False):
    """What sensor_msgs_py.point_cloud2.read_points (Jazzy) does, reduced to the probe's needs: a view of
    cloud.data in native dtypes, the requested fields, then byteswap(inplace=True) when the cloud's byte
    order is not the host's -- which swaps the message's own buffer."""
    dtype = np.dtype({'names': [f.name for f in cloud.fields],
                      'formats': [convert.POINTFIELD_DTYPES[f.datatype] for f in cloud.fields],
                      'offsets': [f.offset for f in cloud.fields], 'itemsize': cloud.point_step})
    points = np.ndarray((cloud.width * cloud.height,), dtype=dtype, buffer=cloud.data)
    if field_names is not None:
        points = points[list(field_names)]
    if (sys.byteorder != 'little') != bool(cloud.is_bigendian):
        points = points.byteswap(inplace=True)
    return points


def test_pointcloud_probe_accepts_upstream_in_place_swap_and_never_lets_it_touch_a_message(monkeypatch):
    good = _load_private_convert(monkeypatch, read_points=_upstream_read_points)
    assert good.POINTCLOUD_BACKEND == 'sensor_msgs_py', good.BACKEND_NOTES['pointcloud']
    _, clouds = _equality_messages()
    names = ('x', 'y', 'z', 'rcs', 'id')
    for m in clouds:
        before = bytes(m.data)
        want = pointcloud2_to_array(m, names, backend='numpy')
        for _ in range(2):                          # the same message twice, as multi-sweep pairing does
            got = good.pointcloud2_to_array(m, names)
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1] == want[1]
        assert bytes(m.data) == before, 'a reader changed the message buffer'


# ------------------------------------------------------------------------------------------ loopback DDS

def test_publish_and_receive_over_loopback_dds():
    """What rclpy really delivers (array.array data, fresh message objects) converts to the same arrays."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    pts = rng.normal(size=(5, 6)).astype(np.float32)
    pts[2, 0] = np.nan
    names = ('x', 'y', 'z', 'rcs', 'vx', 'vy')
    sent_img, sent_pc = rgb_to_image_msg(rgb, header()), array_to_pointcloud2(pts, names, header())
    got = {}
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node('xd_convert_loopback', context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        pub_i = node.create_publisher(Image, 'xd_test/image', qos_profile_sensor_data)
        pub_p = node.create_publisher(PointCloud2, 'xd_test/points', qos_profile_sensor_data)
        node.create_subscription(Image, 'xd_test/image', lambda m: got.setdefault('img', m),
                                 qos_profile_sensor_data)
        node.create_subscription(PointCloud2, 'xd_test/points', lambda m: got.setdefault('pc', m),
                                 qos_profile_sensor_data)
        deadline = time.monotonic() + 15.0
        while len(got) < 2 and time.monotonic() < deadline:
            pub_i.publish(sent_img)  # best effort: repeat until discovery has matched both ends
            pub_p.publish(sent_pc)
            ex.spin_once(timeout_sec=0.05)
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
    assert set(got) == {'img', 'pc'}, 'nothing received over loopback DDS within 15 s'
    assert isinstance(got['img'].data, array.array) and got['img'] is not sent_img
    np.testing.assert_array_equal(image_to_rgb(got['img']), rgb)
    assert got['img'].header.stamp.sec == 17 and got['img'].header.frame_id == 'cam'
    arr, missing = pointcloud2_to_array(got['pc'], names)
    np.testing.assert_array_equal(arr, pts)
    assert missing == ()
