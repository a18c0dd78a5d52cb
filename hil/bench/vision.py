"""Benchmark: the elevator e-bike guard. Prints one JSON object.

Quality keys (`hil.bench.vision_quality`): `ebike_recall` and `false_alarm_rate` by grouped
cross-validation over the labelled frames, `site_ebike_recall` and `site_false_alarm_rate` by
a time split within one car, with their counts and Wilson intervals under `quality`.
The pipeline keys (analysis rate against raw `session.run`, confirmation latency, idle CPU,
RSS, tap latency with and without the camera) are measured by the camera pipeline's part.

Run: python -m hil.bench.vision [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys

from hil.bench import vision_quality


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.bench.vision", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)
    if not (vision_quality.SHARED / "ebike" / "labels.csv").exists():
        print(f"shared data absent under {vision_quality.SHARED}: set EDGE_SHARED_DATA", file=sys.stderr)
        return 66
    result: dict = {}
    result.update(vision_quality.quality(threads=args.threads))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
