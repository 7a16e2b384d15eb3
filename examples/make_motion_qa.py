#!/usr/bin/env python
"""Generate the procedurally generated motion-QA suite (BABEL-QA layout) into a folder.

    python examples/make_motion_qa.py --output-dir data/motion_qa --num-sequences 2000 --seed 0 --workers 8

Writes questions.json, split_question_ids.json (train/val/test/heldout), motion_concepts.json,
metadata.json and motion_sequences/<id>/{joints.npy, pose.npz, video.mp4}; see llamo/data/motion_qa.py.
The result loads with ``llamo.data.motion_qa.load_babel_qa(folder, split)``, like real BABEL-QA.
"""

import argparse
import json
import os
import sys
import time

try:
    from llamo.data.motion_qa import generate_suite
except ImportError:  # run from a checkout whose editable install predates the `llamo` package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from llamo.data.motion_qa import generate_suite


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="folder to write the suite into")
    parser.add_argument("--num-sequences", type=int, default=64, help="number of motion sequences (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-segments", type=int, default=3, help="actions per sequence, 1..N (default 3)")
    parser.add_argument("--no-videos", action="store_true", help="skip rendering videos")
    parser.add_argument("--video-format", choices=("mp4", "webm", "gif"), default="mp4")
    parser.add_argument("--image-size", type=int, default=224, help="rendered frame size in pixels (even)")
    parser.add_argument("--supersample", type=int, default=1, help="anti-aliasing factor of the renderer")
    parser.add_argument("--heldout-fraction", type=float, default=0.15, help="share of sequences in the heldout split")
    parser.add_argument("--max-questions", type=int, default=None, help="cap on questions per sequence")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: in-process)")
    args = parser.parse_args(argv)
    start = time.time()
    summary = generate_suite(
        args.output_dir,
        num_sequences=args.num_sequences,
        seed=args.seed,
        render_videos=not args.no_videos,
        video_format=args.video_format,
        image_size=args.image_size,
        supersample=args.supersample,
        max_segments=args.max_segments,
        heldout_fraction=args.heldout_fraction,
        max_questions=args.max_questions,
        num_workers=args.workers,
        progress=True,
    )
    summary["seconds"] = round(time.time() - start, 1)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
