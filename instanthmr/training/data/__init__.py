"""Training data: the teacher-label shard format, ground-truth loaders, crop augmentation, synthetic data.

Pure numpy/OpenCV (no torch), so annotation tools can use it on machines without a training stack.
"""

from instanthmr.training.data.shards import (  # noqa: F401
    FORMAT_VERSION,
    LABEL_FIELDS,
    ShardFormatError,
    ShardReader,
    ShardWriter,
    encode_context_crop,
    load_source_image,
)
