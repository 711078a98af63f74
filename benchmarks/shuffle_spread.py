"""How well the training input shuffles a list sorted by sequence (issue: full shuffles on big datasets).

Writes a list of ``--records`` records sorted by drive (no image files; a manifest gives the size), then
compares, over the first epoch of batches of ``--batch_size``:
- ``buffer only``: the old scheme, a ``queue_size`` shuffle buffer over the sorted list;
- ``permutation + buffer``: ``model/data.py`` now, a seeded permutation of all records every epoch, then the
  buffer inside the epoch.
For each it prints the index range covered by the first ``--early`` samples and the median spread
(max - min index) inside a batch, over the whole first epoch and over those early samples. A uniform random batch
of 4 out of N spreads about 0.6 N.

    python benchmarks/shuffle_spread.py --records 40000 --queue_size 2000 --batch_size 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from formats import struct2depth  # noqa: E402
from model import data  # noqa: E402


def spread_figures(indices: np.ndarray, batch_size: int, early: int) -> dict:
    """Index range of the first ``early`` samples and the median within-batch spread of ``indices``."""

    def median_spread(values):
        batches = values[: len(values) // batch_size * batch_size].reshape(-1, batch_size)
        return float(np.median(batches.max(axis=1) - batches.min(axis=1)))

    return {
        "early_min": int(indices[:early].min()),
        "early_max": int(indices[:early].max()),
        "median_spread": median_spread(indices),
        "early_median_spread": median_spread(indices[:early]),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40000, help="records in the sorted list")
    parser.add_argument("--drives", type=int, default=40, help="drives (consecutive runs of the list)")
    parser.add_argument("--queue_size", type=int, default=2000, help="shuffle buffer (records)")
    parser.add_argument("--batch_size", type=int, default=4, help="examples per batch")
    parser.add_argument("--early", type=int, default=4000, help="samples counted as 'early'")
    parser.add_argument("--seed", type=int, default=8964, help="shuffle seed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        entries = [
            (f"drive_{k * args.drives // args.records:03d}", struct2depth.sample_id(k)) for k in range(args.records)
        ]
        struct2depth.write_list(Path(root) / "train.txt", entries)
        (Path(root) / "manifest.json").write_text('{"parameters": {"width": 96, "height": 64}}')
        config = data.DataConfig(root, queue_size=args.queue_size, batch_size=args.batch_size, seed=args.seed)
        reader = data.RecordDataset(config)
        new = np.array([int(i) for _, i in reader.index_stream(0).take(args.records)])
    old = np.array(
        [
            int(i)
            for i in tf.data.Dataset.range(args.records)
            .shuffle(min(args.queue_size, args.records), seed=args.seed)
            .take(args.records)
        ]
    )
    assert sorted(new.tolist()) == list(range(args.records)), "every record once per epoch"
    results = {
        "buffer only": spread_figures(old, args.batch_size, args.early),
        "permutation + buffer": spread_figures(new, args.batch_size, args.early),
    }
    print(
        f"{args.records} records sorted in {args.drives} drives, queue_size {args.queue_size}, batch {args.batch_size}:"
    )
    for name, figures in results.items():
        print(
            f"  {name:22s} first {args.early} samples from indices {figures['early_min']}..{figures['early_max']}; "
            f"median within-batch index spread {figures['median_spread']:.0f} over the epoch, "
            f"{figures['early_median_spread']:.0f} over those samples"
        )
    return results


if __name__ == "__main__":
    main()
