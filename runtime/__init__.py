"""What every stage runs on, whatever it trains: the device and its precision, torchrun's
processes, atomic files and checkpoints, progress lines, and the training shell both trainers
share. Nothing here knows about fusion or segmentation; only ``configs`` is imported.

* :mod:`~runtime.device`: the device (chosen once per stage), the CPUs a process may use, threads,
  determinism, seeds;
* :mod:`~runtime.precision`: autocast dtype, GradScaler, channels_last, from ``runtime.*``, and the
  float32 view a loss has of a network running under autocast;
* :mod:`~runtime.distributed`: torchrun's process group, DDP, SyncBatchNorm on gloo;
* :mod:`~runtime.files`: atomic writes and content digests;
* :mod:`~runtime.checkpoints`: checkpoints written atomically, read with ``weights_only=True``;
* :mod:`~runtime.progress`: a tqdm bar on a terminal, one line per loop in a log;
* :mod:`~runtime.training`: the optimizer step, the epoch's lr and seeds, loss sums kept on the
  device, history.
"""
