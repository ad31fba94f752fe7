"""What a segmentation config will do, without training: network, image counts, lr per epoch
(``pipelines/train_segmentation.py --summary``)."""

from __future__ import annotations

from pathlib import Path

from configs.schema import ExperimentConfig
from msrs.layout import VAL, validate_root
from segmentation.data import held_out_count
from segmentation.model import aspp_rates, model_from_config
from segmentation.schedule import learning_rate, phase_batch

MSRS_COUNTS = {"train": 1083, "test": 361}  # the paper's 4.1 (and the public MSRS release)
SUMMARY_EPOCHS = (0, 1, 2, 99, 100, 101, 339)  # warm-up, last frozen / first full, last


def recipe_summary(
    config: ExperimentConfig, data_root: Path | None = None, epochs: tuple[int, ...] = SUMMARY_EPOCHS
) -> dict:
    """The network as built (output stride and atrous rates read from the module), the
    train / validation / test counts (of ``data_root``, else MSRS's 1083 / 361) and the lr,
    phase and batch of each of ``epochs`` that the run has."""
    seg = config.segmentation
    model = model_from_config(seg)
    counts = validate_root(data_root) if data_root is not None else MSRS_COUNTS
    if VAL in counts:  # the root's own validation split, or more training pairs (segmentation.train)
        train, val = (
            (counts["train"], counts[VAL]) if seg.val_fraction > 0 else (counts["train"] + counts[VAL], 0)
        )
        source = "the data root's val split"
    else:
        val = held_out_count(counts["train"], seg.val_fraction)
        train = counts["train"] - val
        source = f"held out of train, seed {seg.val_seed}"
    return {
        "encoder": seg.encoder,
        "encoder_weights": seg.encoder_weights,
        "output_stride": model.encoder.output_stride,
        "atrous_rates": aspp_rates(model),
        "decoder_channels": seg.decoder_channels,
        "images": {"train": train, "val": val, "test": counts["test"]},
        "counted_from": str(data_root) if data_root is not None else "MSRS (1083 train, 361 test)",
        "val_seed": seg.val_seed,
        "val_source": source,
        "reported_model": seg.reported_model,
        "schedule": [
            {
                "epoch": e,
                "phase": "frozen" if e < seg.freeze_epochs else "full",
                "batch": phase_batch(seg, e),
                "lr": learning_rate(seg, e),
            }
            for e in epochs
            if e < seg.epochs
        ],
    }
