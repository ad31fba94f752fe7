"""The nine MSRS classes, in label order, and the colour palette of the MSRS repository."""

CLASS_NAMES = (
    "background",
    "car",
    "person",
    "bike",
    "curve",
    "car_stop",
    "guardrail",
    "color_cone",
    "bump",
)
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_INDEX = 255

# Linfeng-Tang/MSRS visualize.py: one RGB colour per class, background black.
PALETTE = (
    (0, 0, 0),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
    (0, 0, 192),
    (128, 128, 0),
    (64, 64, 128),
    (192, 128, 128),
    (192, 64, 0),
)
