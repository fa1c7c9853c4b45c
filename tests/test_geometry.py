import numpy as np
import pytest

from instanthmr.core import geometry as g


def test_square_crop_box_worked_example():
    # box 100x200 centred at (150, 200): square side = 200 * 1.2 = 240
    np.testing.assert_allclose(g.square_crop_box([100, 100, 200, 300]), [150, 200, 240])


def test_crop_uncrop_round_trip_pixels():
    rng = np.random.default_rng(0)
    boxes = np.array([[10.3, 20.7, 110.1, 300.9], [-50, -30, 40, 60], [600, 400, 700, 470]])
    pts = rng.uniform(-100, 800, size=(3, 70, 2))
    back = g.crop_to_image(g.image_to_crop(pts, boxes), boxes)
    assert np.abs(back - pts).max() < 1e-4
    # box corners of the square crop map to -1 / +1
    sq = g.square_crop_box(boxes[0])
    corner = np.array([[sq[0] - sq[2] / 2, sq[1] + sq[2] / 2]])
    np.testing.assert_allclose(g.image_to_crop(corner, boxes[0]), [[-1.0, 1.0]], atol=1e-9)


def test_crop_person_pixels_follow_affine_and_pad_with_zeros():
    img = np.zeros((100, 120, 3), np.uint8)
    img[40, 60] = 255  # one bright pixel
    box = np.array([50.0, 30.0, 70.0, 50.0])  # 20x20 -> side 24 -> 224/24 px per px
    crop, m = g.crop_person(img, box)
    assert crop.shape == (224, 224, 3)
    u, v = m @ np.array([60.0, 40.0, 1.0])
    assert crop[int(round(v)), int(round(u))].max() > 0
    # same point through the normalised mapping
    n = g.image_to_crop(np.array([[60.0, 40.0]]), box)[0]
    np.testing.assert_allclose((n + 1) / 2 * 224, [u, v], atol=1e-6)
    # a box hanging off the top-left corner: outside pixels are zero
    img2 = np.full((50, 50, 3), 200, np.uint8)
    crop2, _ = g.crop_person(img2, [-40, -40, 10, 10])
    assert crop2[:50, :50].max() == 0 and crop2[-10:, -10:].min() == 200


def test_default_focal_and_intrinsics():
    assert g.default_focal((640, 480)) == pytest.approx(800.0)
    k = g.intrinsics((640, 480))
    np.testing.assert_allclose(k, [[800, 0, 320], [0, 800, 240], [0, 0, 1]])
    np.testing.assert_allclose(g.intrinsics((640, 480), focal=500, principal_point=(300, 200))[:2, 2], [300, 200])


def test_cliff_condition_worked_box():
    box = [100, 100, 200, 300]  # centre (150, 200), bw 100, bh 200
    # pixel form: [2*150/640 - 1, 2*200/480 - 1, 200/640]
    np.testing.assert_allclose(g.cliff_condition(box, (640, 480), form="pixel"),
                               [-0.53125, -1 / 6, 0.3125], atol=1e-6)
    # focal form with default f = 800: [(150-320)/800, (200-240)/800, 200/800]
    np.testing.assert_allclose(g.cliff_condition(box, (640, 480), form="focal"),
                               [-0.2125, -0.05, 0.25], atol=1e-6)
    np.testing.assert_allclose(g.cliff_condition(box, (640, 480), focal=400, form="focal"),
                               [-0.425, -0.1, 0.5], atol=1e-6)
    batched = g.cliff_condition(np.array([box, [0, 0, 640, 480]]), (640, 480))
    assert batched.shape == (2, 3) and batched.dtype == np.float32
    np.testing.assert_allclose(batched[1], [0, 0, 1], atol=1e-6)
    with pytest.raises(ValueError):
        g.cliff_condition(box, (640, 480), form="bogus")


def test_crop_cam_to_full_translation_matches_projection():
    # A point at the body centre, projected with the full camera, must land on the crop centre.
    w, h, f = 1280, 720, 1000.0
    center, side = np.array([900.0, 300.0]), 240.0
    s, tx, ty = 0.8, 0.05, -0.1
    t = g.crop_cam_to_full([s, tx, ty], center, side, (w, h), focal=f)
    np.testing.assert_allclose(t[2], 2 * f / (side * s))
    np.testing.assert_allclose(t[0], tx + 2 * (center[0] - w / 2) / (side * s))
    # projecting the origin of the body frame: x = f*tx'/tz + cx0
    p = g.project_points(t[None], f, (w / 2, h / 2))[0]
    expected = center + np.array([tx, ty]) * side * s / 2  # weak-perspective offset inside the crop
    np.testing.assert_allclose(p, expected, atol=1e-6)


def test_project_points_batched_and_behind_camera():
    pts = np.array([[[0, 0, 2.0], [1, -1, 2.0], [0, 0, -1.0], [0.002, -0.001, -1.0]]])
    uv = g.project_points(pts, (500, 400), (320, 240))  # fx 500, fy 400
    np.testing.assert_allclose(uv[0, :2], [[320, 240], [570, 40]])
    # at or behind the camera: z clamped to 1 mm (as documented), never a division by zero or a flipped side
    np.testing.assert_allclose(uv[0, 2:], [[320, 240], [320 + 1000, 240 - 400]])
