import numpy as np

from instanthmr.core import skeleton as sk


def test_mhr70_order_matches_sam3d_body():
    n = sk.MHR70_NAMES
    assert len(n) == 70 and len(set(n)) == 70
    # anchors from sam_3d_body/metadata/mhr70.py
    assert n[:5] == ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    assert n[9:15] == ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
    assert n[15:21] == ("left_big_toe_tip", "left_small_toe_tip", "left_heel",
                        "right_big_toe_tip", "right_small_toe_tip", "right_heel")
    assert n[21:25] == ("right_thumb_tip", "right_thumb_first_joint", "right_thumb_second_joint",
                        "right_thumb_third_joint")
    assert n[37] == "right_pinky_tip" and n[40] == "right_pinky_third_joint"
    assert n[41] == "right_wrist" and n[42] == "left_thumb_tip" and n[62] == "left_wrist"
    assert n[63:] == ("left_olecranon", "right_olecranon", "left_cubital_fossa", "right_cubital_fossa",
                      "left_acromion", "right_acromion", "neck")
    assert all("-" not in x for x in n)


def test_coco_wholebody_names_and_parts():
    n = sk.COCO_WHOLEBODY_NAMES
    assert len(n) == 133 and len(set(n)) == 133
    assert n[0] == "nose" and n[16] == "right_ankle" and n[17] == "left_big_toe" and n[22] == "right_heel"
    assert n[23] == "face_0" and n[90] == "face_67"
    assert n[91] == "left_hand_0" and n[111] == "left_hand_20" and n[112] == "right_hand_0"
    assert n[132] == "right_hand_20"
    parts = sk.COCO_WHOLEBODY_PARTS
    assert [len(parts[k]) for k in ("body", "feet", "face", "left_hand", "right_hand")] == [17, 6, 68, 21, 21]
    assert sorted(i for v in parts.values() for i in v) == list(range(133))


def test_mhr70_parts_partition_all_joints():
    allidx = sorted(i for v in sk.MHR70_PARTS.values() for i in v)
    assert allidx == list(range(70))
    assert sk.MHR70_INDEX["left_wrist"] in sk.MHR70_PARTS["left_hand"]
    assert sk.MHR70_INDEX["right_index_tip"] in sk.MHR70_PARTS["right_hand"]


def test_coco17_from_mhr70_matches_issue_spec():
    assert sk.MHR70_TO_COCO17 == tuple(list(range(9)) + [62, 41] + list(range(9, 15)))
    for ci, mi in enumerate(sk.MHR70_TO_COCO17):
        assert sk.MHR70_NAMES[mi] == sk.COCO17_NAMES[ci]


def test_wholebody_mhr_maps_by_name():
    m = sk.COCO_WHOLEBODY_TO_MHR70
    name = lambda i: sk.MHR70_NAMES[m[sk.COCO_WHOLEBODY_INDEX[i]]]  # noqa: E731
    assert name("left_big_toe") == "left_big_toe_tip"
    assert name("left_hand_0") == "left_wrist" and name("right_hand_0") == "right_wrist"
    assert name("left_hand_1") == "left_thumb_third_joint" and name("left_hand_4") == "left_thumb_tip"
    assert name("right_hand_5") == "right_index_third_joint" and name("right_hand_8") == "right_index_tip"
    assert name("right_hand_20") == "right_pinky_tip"
    assert not any(sk.COCO_WHOLEBODY_NAMES[c].startswith("face_") for c in m)
    assert len(m) == 65
    back = sk.MHR70_TO_COCO_WHOLEBODY
    assert len(back) == 63 and back[sk.MHR70_INDEX["left_wrist"]] == 9
    for mi, ci in back.items():
        assert m[ci] == mi


def test_edges_are_valid_chains():
    for edges, n in ((sk.MHR70_EDGES, 70), (sk.COCO_WHOLEBODY_EDGES, 133)):
        e = np.array(edges)
        assert e.min() >= 0 and e.max() < n and (e[:, 0] != e[:, 1]).all()
        assert len(set(map(tuple, e))) == len(e)
    # every finger is a full chain wrist -> knuckle -> ... -> tip
    idx = sk.MHR70_INDEX
    for side in ("left", "right"):
        for f in ("thumb", "index", "middle", "ring", "pinky"):
            chain = [f"{side}_wrist"] + [f"{side}_{f}_{s}" for s in
                                         ("third_joint", "second_joint", "first_joint", "tip")]
            for a, b in zip(chain[:-1], chain[1:]):
                assert (idx[a], idx[b]) in sk.MHR70_EDGES
    # the MHR70 edge graph is connected
    adj = {i: set() for i in range(70)}
    for a, b in sk.MHR70_EDGES:
        adj[a].add(b), adj[b].add(a)
    seen, todo = {0}, [0]
    while todo:
        for j in adj[todo.pop()] - seen:
            seen.add(j), todo.append(j)
    assert seen == set(range(70))


def test_flip_permutations_are_involutions_that_swap_sides():
    for perm, names in ((sk.MHR70_FLIP_PERM, sk.MHR70_NAMES), (sk.COCO_WHOLEBODY_FLIP_PERM, sk.COCO_WHOLEBODY_NAMES)):
        p = np.array(perm)
        assert sorted(p) == list(range(len(names)))
        assert (p[p] == np.arange(len(names))).all()
        for i, j in enumerate(p):
            if names[i].startswith("left_"):
                assert names[j] == "right_" + names[i][5:]
    face = np.array(sk.COCO_WHOLEBODY_FLIP_PERM[23:91]) - 23
    assert face[0] == 16 and face[36] == 45 and face[30] == 30 and face[48] == 54
