"""A procedural pedestrian renderer: drawn people whose attributes are known exactly (numpy + OpenCV, no torch).

Why it exists: the demo, the tests and the camera examples need labelled pedestrians on machines
where no dataset can be downloaded. Every person is drawn with OpenCV shapes (head, hair, hat, torso
and sleeves, trousers / shorts / skirt, shoes, backpack, handbag) from a fixed attribute combination
plus an :class:`Appearance` (skin tone, shades, body proportions), then composed over clutter and
degraded the way surveillance crops are (blur, low resolution, lighting, sensor noise, JPEG). Cues are
kept large and distinct enough to be learnt from a 112x56 crop by a transformer trained from scratch
in minutes: hats rise above the hairline in colours no hair has, hair contrasts with the skin and the
top, the head is a little large, and the background is hazy and out of focus so that it does not
mimic clothes. Each of these was measured on clear-tiny (per-attribute val/test mA; see
``training/configs/synthetic_tiny.yaml``).

One module per job:

* :mod:`.attributes`: the 25 attribute names and groups (from ``clear_sdk/data/attributes.json``), the label vector
* :mod:`.palette`: clothing, skin, hair, hat and bag colours
* :mod:`.identity`: attribute sampling, identity looks, poses, the identities of a dataset
* :mod:`.figure`: drawing one person on a transparent layer
* :mod:`.compose`: background clutter, compositing and camera degradations, a finished crop
* :mod:`.generate`: a dataset on disk (``images/<pid>_<n>.jpg``, ``labels.csv``, ``synthetic.json``)
* :mod:`.video`: a street, people walking over it, a video file with ground truth

Reading a generated folder back as a training dataset is ``clear_sdk.training.data.synthetic``.
"""

from __future__ import annotations

from .attributes import ONE_HOT_GROUPS, SYNTHETIC_ATTRIBUTES, SYNTHETIC_GROUPS, attrs_to_vector, vector_to_attrs
from .compose import paste_person, render_person
from .figure import render_person_layer
from .generate import LABELS_FILE, META_FILE, generate_synthetic
from .identity import (
    Appearance,
    Pose,
    SyntheticConfig,
    SyntheticIdentity,
    sample_appearance,
    sample_identities,
    sample_identity_attributes,
    sample_pose,
)
from .video import render_street, synthetic_video_frames, write_synthetic_video

__all__ = [
    "SYNTHETIC_ATTRIBUTES",
    "SYNTHETIC_GROUPS",
    "ONE_HOT_GROUPS",
    "LABELS_FILE",
    "META_FILE",
    "Appearance",
    "Pose",
    "SyntheticConfig",
    "SyntheticIdentity",
    "attrs_to_vector",
    "vector_to_attrs",
    "sample_identity_attributes",
    "sample_appearance",
    "sample_pose",
    "sample_identities",
    "render_person_layer",
    "render_person",
    "paste_person",
    "generate_synthetic",
    "render_street",
    "synthetic_video_frames",
    "write_synthetic_video",
]
