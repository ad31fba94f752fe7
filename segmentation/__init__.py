"""Everything that judges an input by segmentation: DeepLabV3+ (smp), the paper's two-phase
recipe, per-class IoU / mIoU, and the Table 2 report."""
