"""The `llamo` command.

    llamo chat --motion walk.npz "Which direction does the person walk?"   # one answer, streamed
    llamo chat --motion walk.npz --video walk.mp4                          # no question: interactive chat
    llamo chat --motion joints.npy --motion-fps 30 --show keys.png "How many squats?"
    llamo render motion.npz -o motion.mp4                                   # or .gif / .webm
    llamo eval --task babel_qa --data DIR --model CKPT --output DIR         # see llamo.evaluation.cli

`--model` takes any llamo checkpoint folder; the default is llamo-demo (materialised from the committed weights
and SmolLM2 on first use), or, where no demo weights exist, an untrained SmolLM2 build that says so.
"""

import argparse
import os
import sys


def _default_model(log):
    from llamo import demo, inference

    if demo.demo_available():
        return demo.materialize_demo(progress=log)
    log("No trained llamo-demo weights here: using an UNTRAINED LLaMo around SmolLM2 (answers ignore the motion).")
    return inference.ensure_untrained_default()


def _motion_kwargs(args):
    kwargs = {}
    if args.motion_fps:
        kwargs["motion_fps"] = args.motion_fps
    if args.up_axis:
        kwargs["up_axis"] = args.up_axis
    if args.motion_format:
        kwargs["motion_format"] = args.motion_format
    return kwargs


def chat(args):
    from transformers import TextStreamer

    from llamo import inference

    if args.motion is None and args.video is None:
        sys.exit("llamo chat: give --motion FILE and/or --video FILE")
    for path in (args.motion, args.video):
        if path is not None and not os.path.exists(path):
            sys.exit(f"llamo chat: no such file: {path}")
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    model_path = args.model or _default_model(log)
    model, processor = inference.load(model_path)
    streamer = TextStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    messages = []

    def ask(question):
        # The clip comes with the first question; later turns refer back to it.
        if not messages:
            messages.append(inference.user_message(question, motion=args.motion, video=args.video))
        else:
            messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
        result = inference.answer(model, processor, messages, streamer=streamer, max_new_tokens=args.max_new_tokens,
                                  processor_kwargs=_motion_kwargs(args))
        messages.append({"role": "assistant", "content": [{"type": "text", "text": result.text}]})
        if args.show and result.key_frame_indices:
            _show(args, question, result, log)
        return result

    if args.question:
        ask(" ".join(args.question))
        return
    print("Interactive chat about the clip; an empty line or Ctrl-D ends it.", file=sys.stderr)
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            break
        if not question:
            break
        print("llamo> ", end="", flush=True)
        ask(question)


def _show(args, question, result, log):
    """Key frames the question selected, drawn on the motion (video-only clips: no picture)."""
    import numpy as np

    from llamo.evaluation.plots import plot_key_frames

    if args.motion is None:
        log("--show needs a motion file that converts to joints (for video-only clips the picture is skipped).")
        return
    # The scores live on the model's timeline (resampled/subsampled); the plot maps them onto the file's frames.
    joints, fps = _motion_joints(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.show)), exist_ok=True)
    path = plot_key_frames(np.asarray(joints), result.frame_scores[0], result.key_frame_indices[0], args.show,
                           fps=fps, title=f"Q: {question}", coverage_frame_indices=result.coverage_frame_indices[0])
    log(f"key frames at {_key_frame_times(result)} -> {path}")


def _key_frame_times(result) -> str:
    """The selected key frames as times in the clip: their indices are on the model's resampled timeline, which
    means nothing to someone holding the file."""
    indices = result.key_frame_indices[0]
    if not result.frame_timestamps:
        return f"model frames {indices}"
    times = result.frame_timestamps[0]
    return ", ".join(f"{times[i]:.2f}" for i in indices) + " s"


def _motion_joints(args):
    """(joints (T, 22, 3) Y-up, fps) of the motion file, through the processor's own loaders and skeleton."""
    from processing_llamo import LlamoMotionProcessor

    return LlamoMotionProcessor().motion_joints(args.motion, fps=args.motion_fps, format=args.motion_format,
                                                 up_axis=args.up_axis)


def render(args):
    from llamo.data.render import render_video

    joints, fps = _motion_joints(args)
    path = render_video(joints, args.output, fps=fps, size=args.size)
    print(f"wrote {path} ({joints.shape[0]} frames at {fps:g} fps)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="llamo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def motion_options(p):
        p.add_argument("--motion-fps", type=float, help="frame rate of a motion file that stores none (joints .npy)")
        p.add_argument("--up-axis", choices=["x", "y", "z"], help="override the format's up axis (BABEL-QA joints: z)")
        p.add_argument("--motion-format", help="override format detection (amass, amass_processed, smplx, joints, humanml3d)")

    p = sub.add_parser("chat", help="ask questions about a motion and/or a video")
    p.add_argument("question", nargs="*", help="the question; none starts an interactive chat")
    p.add_argument("--motion", metavar="FILE", help="AMASS/SMPL-H or SMPL-X .npz, joints .npy (T, 22, 3) or HumanML3D "
                   "263-d .npy")
    p.add_argument("--video", metavar="FILE", help="any video PyAV decodes (mp4, webm, mov, ...)")
    p.add_argument("--model", help="llamo checkpoint folder (default: llamo-demo)")
    p.add_argument("--show", metavar="PNG", help="write a picture of the key frames the question selected")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest answer, in tokens (default: 64)")
    motion_options(p)

    p = sub.add_parser("render", help="draw a motion as a person figure into mp4/webm/gif")
    p.add_argument("motion", help="motion file (the formats of chat --motion)")
    p.add_argument("-o", "--output", required=True, help="video to write: .mp4, .webm or .gif")
    p.add_argument("--size", type=int, default=384, help="frame width and height in pixels (default: 384)")
    motion_options(p)

    sub.add_parser("eval", help="evaluate a checkpoint (llamo eval --help)", add_help=False)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "eval":
        from llamo.evaluation.cli import main as eval_main

        return _reporting_input_errors("eval", eval_main, argv[1:])
    args = parser.parse_args(argv)
    return _reporting_input_errors(args.command, {"chat": chat, "render": render}[args.command], args)


def _reporting_input_errors(command, run, *args):
    """A missing file or an input the loaders refuse ends the command with their message, not a traceback (which
    `LLAMO_TRACEBACK=1` brings back, for reporting a bug)."""
    try:
        return run(*args)
    except (FileNotFoundError, ValueError) as error:
        if os.environ.get("LLAMO_TRACEBACK"):
            raise
        sys.exit(f"llamo {command}: {error}\n(LLAMO_TRACEBACK=1 shows where it was raised)")


if __name__ == "__main__":
    main()
