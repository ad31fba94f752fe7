"""Fetch the pretrained encoder weights a config's segmentation needs into the Hugging Face cache,
on a machine with internet, for runs on machines without (most cluster compute nodes).

    python pipelines/fetch_weights.py --config configs/paper.yaml [--set KEY=VALUE]
    python pipelines/fetch_weights.py --encoder mobilenet_v2 --weights imagenet

The files go where the hub's cache is (``HF_HOME``, by default ``~/.cache/huggingface``): run
this on the login node with the ``HF_HOME`` the jobs will see (a shared file system), or copy
that folder to them. A run never downloads: ``run_all`` (``--dry-run`` too) checks that the
weights are in the cache before anything starts and names this command when they are not.
Prints each file and the SHA-256 that enters the segmentation stages' identity.
"""

import argparse

import _common

from runtime.files import file_sha256
from segmentation.pretrained import hub_weights, is_packaged, require_weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--encoder", help="an smp encoder name (instead of the config's)")
    parser.add_argument("--weights", help="its weights, e.g. imagenet (with --encoder)")
    args = parser.parse_args()
    if (args.encoder is None) != (args.weights is None):
        parser.error("--encoder and --weights go together")
    if args.encoder is None:
        seg = _common.config_from_args(args).segmentation
        encoder, weights = seg.encoder, seg.encoder_weights
    else:
        encoder, weights = args.encoder, args.weights
    if weights is None:
        print(f"{encoder}: no pretrained weights asked for; nothing to fetch")
        return 0
    if is_packaged(weights):
        path = require_weights(encoder, weights)
        print(f"{encoder} {weights}: packaged with the Python package, {path} (sha256 {file_sha256(path)})")
        return 0
    hub = hub_weights(encoder, weights)
    path = hub.cached()
    action = "already in the cache"
    if path is None:
        path, action = hub.fetch(), "fetched"
    print(f"{encoder} {weights}: {action}: {path} (sha256 {file_sha256(path)})")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
