"""Floor 3, frames over time: sources (``sources``: image, folder, video, camera), the tracker and
keypoint-driven crops (``tracking``), smoothing (``smoothing``)."""
