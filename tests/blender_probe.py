"""Run by Blender's Python (the bpy venv, not the project's): import a BVH or glTF file with Blender's own
importers and report what Blender made of it, optionally rendering a picture with Blender's renderer.

    .venv-bpy/bin/python tests/blender_probe.py --input out.glb --fps 30 --frames 1,10,20 --out probe.json \
        [--render shot.png --render-frame 10 --render-view orbit|video|floor --render-size 640x400]

JSON out: ``{"armatures": {name: {"bones": [...], "heads": {frame: [[x, y, z], ...]}}}, "meshes": {name:
{frame: vertices}} (with ``--mesh-suffix``), "actions": [...], "fps": scene fps, "objects": [[name, type], ...]}``. Heads are in Blender's world (metres, Z up); a Y-up
file point (x, y, z) arrives as (x, -z, y). Frame numbers are Blender scene frames: the glTF importer puts
time t at frame t x fps (scene fps set to ``--fps`` before the import), the BVH importer puts file frame i at
frame i + 1. Used by tests/test_blender.py; needs nothing from InstantHMR.
"""

from __future__ import annotations

import argparse
import json
import sys

import bpy
from mathutils import Vector


def load(path: str, fps: float) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = round(fps)
    scene.render.fps_base = scene.render.fps / fps
    if path.lower().endswith(".bvh"):
        bpy.ops.import_anim.bvh(filepath=path, global_scale=1.0, frame_start=1, use_fps_scale=False,
                                update_scene_fps=False, update_scene_duration=True, rotate_mode="NATIVE",
                                axis_forward="-Z", axis_up="Y")
    else:
        bpy.ops.import_scene.gltf(filepath=path)
        # One animation per track: Blender makes the first the active action and keeps each of the others as
        # an NLA strip on the armature it animates. Make each armature play its own.
        for ob in bpy.data.objects:
            ad = ob.animation_data
            if ob.type == "ARMATURE" and ad is not None and ad.action is None and ad.nla_tracks:
                ad.action = ad.nla_tracks[0].strips[0].action


def probe(frames: list[int], mesh_suffix: str = "") -> dict:
    scene = bpy.context.scene
    out = {"armatures": {}, "meshes": {}, "actions": [a.name for a in bpy.data.actions],
           "fps": scene.render.fps / scene.render.fps_base, "objects": [[o.name, o.type] for o in bpy.data.objects]}
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = [o for o in bpy.data.objects if o.type == "MESH" and mesh_suffix and o.name.endswith(mesh_suffix)]
    for ob in arms:
        out["armatures"][ob.name] = {"bones": [b.name for b in ob.pose.bones], "heads": {}}
    for f in frames:
        scene.frame_set(f)
        graph = bpy.context.evaluated_depsgraph_get()
        for ob in arms:
            out["armatures"][ob.name]["heads"][str(f)] = [list(ob.matrix_world @ b.head) for b in ob.pose.bones]
        for ob in meshes:  # skinned (armature modifier evaluated) vertices, world coordinates
            ev = ob.evaluated_get(graph)
            out["meshes"].setdefault(ob.name, {})[str(f)] = [list(ev.matrix_world @ v.co) for v in ev.to_mesh().vertices]
            ev.to_mesh_clear()
    return out


def _frozen_meshes(frames: list[int]) -> list:
    """Static copies of the skinned meshes as they are at each of ``frames`` (scene frames), in the world."""
    scene = bpy.context.scene
    out = []
    for f in frames:
        scene.frame_set(f)
        graph = bpy.context.evaluated_depsgraph_get()
        for ob in [o for o in bpy.data.objects if o.type == "MESH" and o.visible_get() and o.find_armature()]:
            ev = ob.evaluated_get(graph)
            copy = bpy.data.objects.new(f"{ob.name}@{f}", bpy.data.meshes.new_from_object(ev))
            copy.matrix_world = ob.matrix_world.copy()
            scene.collection.objects.link(copy)
            out.append(copy)
    return out


def _checker_floor(lo: Vector, hi: Vector, step: float = 0.5) -> None:
    """A checkerboard floor at z = 0 over ``lo``-``hi`` (x, y), squares of ``step`` m (face-corner colours)."""
    nx, ny = int((hi.x - lo.x) / step) + 1, int((hi.y - lo.y) / step) + 1
    x0, y0 = step * round(lo.x / step), step * round(lo.y / step)
    verts, faces, shades = [], [], []
    for i in range(nx):
        for j in range(ny):
            x, y = x0 + i * step, y0 + j * step
            faces.append(list(range(len(verts), len(verts) + 4)))
            verts += [(x, y, 0.0), (x + step, y, 0.0), (x + step, y + step, 0.0), (x, y + step, 0.0)]
            shades.append(0.8 if (i + j + round(x0 / step) + round(y0 / step)) % 2 else 0.5)
    mesh = bpy.data.meshes.new("floor")
    mesh.from_pydata(verts, [], faces)
    col = mesh.color_attributes.new("Col", "FLOAT_COLOR", "CORNER")
    for poly, shade in zip(mesh.polygons, shades):
        for li in poly.loop_indices:
            col.data[li].color = (shade, shade, shade, 1.0)
    mesh.color_attributes.active_color = col
    mesh.color_attributes.render_color_index = mesh.color_attributes.active_color_index
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("floor", mesh))


def render(path: str, frame: int, view: str = "orbit", size: tuple[int, int] = (640, 400),
           ghosts: list[int] = ()) -> None:
    """A Workbench picture of the imported meshes at ``frame`` (vertex colours). ``view``: ``orbit`` = a
    three-quarter view with a floor; ``video`` = through the file's own camera (``video_camera``), on a
    transparent background (RGBA), to lay over the video frame; ``floor`` = the meshes at ``frame`` and at each
    of ``ghosts`` (static copies) on a checkerboard floor at z = 0 (0.5 m squares), seen from the side at
    eye height (a camera facing +Y), so the root motion and the feet on the floor show."""
    scene = bpy.context.scene
    if view == "floor":
        _frozen_meshes([g for g in ghosts if g != frame])
    scene.frame_set(frame)
    if view == "floor":
        graph = bpy.context.evaluated_depsgraph_get()
        pts = []
        for ob in [o for o in bpy.data.objects if o.type == "MESH" and o.visible_get()]:
            ev = ob.evaluated_get(graph)
            pts += [ev.matrix_world @ v.co for v in ev.to_mesh().vertices]
        lo = Vector([min(p[i] for p in pts) for i in range(3)])
        hi = Vector([max(p[i] for p in pts) for i in range(3)])
        _checker_floor(lo - Vector((1.0, 1.0, 0.0)), hi + Vector((1.0, 1.5, 0.0)))
        centre = (lo + hi) / 2
        width = max(hi.x - lo.x, 1.0)
        cam = bpy.data.objects.new("probe_camera", bpy.data.cameras.new("probe"))
        cam.data.lens = 35
        scene.collection.objects.link(cam)
        dist = 1.05 * width * cam.data.lens / 36.0 + (hi.y - lo.y)
        cam.location = Vector((centre.x, lo.y - dist, 1.4 + 0.12 * dist))
        cam.rotation_euler = (Vector((centre.x, centre.y, 0.6)) - cam.location).to_track_quat("-Z", "Y").to_euler()
        scene.camera = cam
        world = scene.world or bpy.data.worlds.new("probe")
        scene.world = world
        world.color = (0.55, 0.6, 0.68)
    elif view == "video":
        scene.camera = bpy.data.objects["video_camera"]
        scene.render.film_transparent = True
    else:
        meshes = [o for o in bpy.data.objects if o.type == "MESH" and o.visible_get()]
        pts = []
        for ob in meshes:
            ev = ob.evaluated_get(bpy.context.evaluated_depsgraph_get())
            pts += [ev.matrix_world @ v.co for v in ev.to_mesh().vertices]
        lo = Vector([min(p[i] for p in pts) for i in range(3)])
        hi = Vector([max(p[i] for p in pts) for i in range(3)])
        centre, extent = (lo + hi) / 2, max((hi - lo).length, 1.0)
        bpy.ops.mesh.primitive_plane_add(size=6 * extent, location=(centre.x, centre.y, 0.0))
        cam = bpy.data.objects.new("probe_camera", bpy.data.cameras.new("probe"))
        cam.data.lens = 40
        scene.collection.objects.link(cam)
        cam.location = centre + Vector((0.9 * extent, -1.6 * extent, 0.5 * extent))
        cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()
        scene.camera = cam
        world = scene.world or bpy.data.worlds.new("probe")
        scene.world = world
        world.color = (0.55, 0.6, 0.68)
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "VERTEX"
    shading.show_shadows = view != "video"
    if view == "floor":
        shading.show_cavity = False
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA" if view == "video" else "RGB"
    scene.render.image_settings.compression = 90
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--fps", type=float, required=True)
    ap.add_argument("--frames", default="1")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mesh-suffix", default="", help="also dump the deformed vertices of meshes named *SUFFIX")
    ap.add_argument("--render", default=None)
    ap.add_argument("--render-frame", type=int, default=1)
    ap.add_argument("--render-view", choices=("orbit", "video", "floor"), default="orbit")
    ap.add_argument("--render-ghosts", default="", help="floor view: also these frames, frozen (comma-separated)")
    ap.add_argument("--render-size", default="640x400", help="WxH pixels")
    args = ap.parse_args(argv)
    load(args.input, args.fps)
    result = probe([int(f) for f in args.frames.split(",") if f], args.mesh_suffix)
    if args.render:
        w, h = (int(v) for v in args.render_size.lower().split("x"))
        render(args.render, args.render_frame, args.render_view, (w, h),
               [int(f) for f in args.render_ghosts.split(",") if f])
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]))
