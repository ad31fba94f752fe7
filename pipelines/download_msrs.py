"""Fetch MSRS (Linfeng-Tang/MSRS on GitHub, about 672 MB) into a folder, for users with internet.

    python pipelines/download_msrs.py --out DIR

Offline it fails at once with a clear message. The archive is extracted to a temporary folder
next to DIR and moved into place only when it validates, so an interrupted download leaves
nothing half-written.
"""

import argparse
import shutil
import socket
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import _common
from tqdm import tqdm

from msrs.layout import DataError, validate_root

URL = "https://github.com/Linfeng-Tang/MSRS/archive/refs/heads/main.zip"
HOST = "github.com"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    if (args.out / "train").exists():
        raise DataError(f"{args.out}: already holds MSRS (train/ exists); nothing to do")
    try:
        socket.create_connection((HOST, 443), timeout=5).close()
    except OSError as error:
        raise DataError(
            f"cannot reach {HOST} ({error}): no internet here. Download {URL} "
            f"elsewhere and unpack it so that {args.out}/train and "
            f"{args.out}/test exist"
        ) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent, prefix=".msrs-") as tmp:
        archive = Path(tmp) / "msrs.zip"
        with urllib.request.urlopen(args.url, timeout=30) as response, open(archive, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="MSRS") as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(tmp)
        roots = [p.parent for p in Path(tmp).rglob("train") if (p.parent / "test").is_dir()]
        if not roots:
            raise DataError(f"{args.url}: archive has no train/ and test/ folders")
        counts = validate_root(roots[0])
        shutil.move(str(roots[0]), str(args.out))
    print(f"MSRS in {args.out}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    _common.run_main(main)
