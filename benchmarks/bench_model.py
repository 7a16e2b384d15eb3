"""Model benchmark (issue: the LLaMo model): ratios against baselines measured in the same process.

1. Decode tokens/s of LLaMo with a 10 s clip (32 video frames + 300 motion frames resampled to the 32 frame
   times) divided by the bare language model's decode tokens/s at the same context length (goal >= 0.95).
2. Time to first token of LLaMo vs transformers' `LlavaNextVideoForConditionalGeneration` built with the same
   language model and the same vision tower at 32 frames, and the LLM positions each spends on the clip
   (goal: LLaMo >= 3x faster).
3. Peak RSS of `from_pretrained` (in a fresh process) relative to the checkpoint's size on disk (goal <= 1.3).

Language model: a random Llama shaped like SmolLM2-135M (decode speed depends on shapes, not weights).
Vision tower: a random CLIP ViT at 224 px, patch 16; `--tower small` (6 layers, width 384) or `base`
(12 layers, width 768). Everything random: no downloads. Run: `python benchmarks/bench_model.py`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from transformers import LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration, LogitsProcessor, LogitsProcessorList
from transformers.utils import logging

from modeling_llamo import LlamoConfig, LlamoForConditionalGeneration

logging.set_verbosity_error()

SMOLLM2_135M = dict(
    model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
    tie_word_embeddings=True, pad_token_id=2, eos_token_id=None, bos_token_id=1,
)
TOWERS = {
    "small": dict(model_type="clip_vision_model", hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                  num_attention_heads=6, image_size=224, patch_size=16),
    "base": dict(model_type="clip_vision_model", hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, image_size=224, patch_size=16),
}
VIDEO_TOKEN, MOTION_TOKEN = 49150, 49151
NUM_FRAMES, CLIP_SECONDS, MOTION_FPS = 32, 10.0, 30


def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_llamo(tower):
    config = LlamoConfig(
        text_config=SMOLLM2_135M, vision_config=TOWERS[tower], motion_token_id=MOTION_TOKEN, hidden_size=512,
        num_attention_heads=8, intermediate_size=1024, num_key_frames=16,
    )
    torch.manual_seed(0)
    return LlamoForConditionalGeneration(config).eval()


def build_llava(tower, llamo):
    config = LlavaNextVideoConfig(
        text_config=SMOLLM2_135M, vision_config=TOWERS[tower], video_token_index=VIDEO_TOKEN,
        image_token_index=VIDEO_TOKEN - 1, spatial_pool_stride=2, vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    model = LlavaNextVideoForConditionalGeneration(config).eval()
    # Same language model and vision tower weights as LLaMo's.
    model.model.language_model.load_state_dict(llamo.model.language_model.state_dict())
    model.model.vision_tower.load_state_dict(llamo.model.frame_encoder.vision_tower.state_dict())
    patches = (TOWERS[tower]["image_size"] // TOWERS[tower]["patch_size"]) // 2
    return model, NUM_FRAMES * patches * patches


def generate_fn(model, inputs, new_tokens):
    def run():
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    return run


class StepClock(LogitsProcessor):
    """Records the time of every generation step; the gaps between steps are pure decode steps."""

    def __init__(self):
        self.stamps = []

    def __call__(self, input_ids, scores):
        self.stamps.append(time.perf_counter())
        return scores


def decode_rate(model, inputs, new_tokens, repeats):
    """Decode tokens/s from the median gap between consecutive steps (prefill excluded), over `repeats` runs."""
    gaps = []
    for run in range(repeats + 1):
        clock = StepClock()
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           logits_processor=LogitsProcessorList([clock]))
        if run:  # the first run warms up
            gaps += [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]
    return 1.0 / statistics.median(gaps)


def prompt_ids(num_media_tokens, media_token):
    text = list(range(100, 140))  # 40 instruction tokens
    return torch.tensor([text[:20] + [media_token] * num_media_tokens + text[20:]])


def clip_inputs(image_size):
    gen = torch.Generator().manual_seed(0)
    times = torch.linspace(0, CLIP_SECONDS, NUM_FRAMES)[None]
    return dict(
        pixel_values_videos=torch.randn(1, NUM_FRAMES, 3, image_size, image_size, generator=gen),
        frame_mask=torch.ones(1, NUM_FRAMES, dtype=torch.long),
        # 300 motion frames (10 s at 30 fps) resampled by the processor at the 32 frame times.
        motion_values=torch.randn(1, NUM_FRAMES, 202, generator=gen),
        motion_mask=torch.ones(1, NUM_FRAMES, dtype=torch.long),
        frame_timestamps=times,
    )


def bench_speed(tower, new_tokens, repeats):
    llamo = build_llamo(tower)
    k = llamo.config.num_key_frames
    llamo_inputs = dict(input_ids=prompt_ids(k, MOTION_TOKEN), **clip_inputs(TOWERS[tower]["image_size"]))
    # Bare LM at the same context length: the same ids with ordinary tokens in place of the placeholders.
    bare_ids = llamo_inputs["input_ids"].clone()
    bare_ids[bare_ids == MOTION_TOKEN] = 200
    bare_lm = _BareLM(llamo)
    llamo_rate = decode_rate(llamo, llamo_inputs, new_tokens, repeats)
    bare_rate = decode_rate(bare_lm, {"input_ids": bare_ids}, new_tokens, repeats)
    llamo_ttft = median_time(generate_fn(llamo, llamo_inputs, 1), repeats)

    llava, llava_positions = build_llava(tower, llamo)
    llava_inputs = dict(
        input_ids=prompt_ids(llava_positions, VIDEO_TOKEN),
        pixel_values_videos=llamo_inputs["pixel_values_videos"],
    )
    llava_ttft = median_time(generate_fn(llava, llava_inputs, 1), repeats)
    vision_only = median_time(
        lambda: llamo.model.frame_encoder(llamo_inputs["pixel_values_videos"], llamo_inputs["frame_mask"]), repeats
    )
    return {
        "tower": tower,
        "llamo_decode_tok_s": llamo_rate,
        "bare_lm_decode_tok_s": bare_rate,
        "decode_ratio": llamo_rate / bare_rate,
        "llamo_ttft_s": llamo_ttft,
        "llava_next_video_ttft_s": llava_ttft,
        "ttft_speedup": llava_ttft / llamo_ttft,
        "vision_tower_32_frames_s": vision_only,
        "llamo_clip_positions": k,
        "llava_clip_positions": llava_positions,
    }


class _BareLM(torch.nn.Module):
    """LLaMo's own language model + head as a plain causal LM (same weights, same kernels)."""

    def __new__(cls, llamo):
        from transformers import LlamaForCausalLM

        lm = LlamaForCausalLM(llamo.config.text_config)
        lm.model = llamo.model.language_model
        lm.lm_head = llamo.lm_head
        return lm.eval()


RSS_CHILD = """
import sys, torch, modeling_llamo
from modeling_llamo import LlamoForConditionalGeneration

def high_water_bytes():
    # VmHWM, not ru_maxrss: ru_maxrss carries the parent's peak across fork+exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

base = high_water_bytes()
model = LlamoForConditionalGeneration.from_pretrained(sys.argv[1], dtype=torch.float32)
# Touch every weight, so memory-mapped tensors are resident and counted like copied ones.
with torch.no_grad():
    total = sum(float(p.float().sum()) for p in model.parameters())
print(high_water_bytes() - base)
"""


def bench_load_memory(tower):
    llamo = build_llamo(tower)
    with tempfile.TemporaryDirectory() as folder:
        llamo.save_pretrained(folder)
        del llamo
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".safetensors"))
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, folder], capture_output=True, text=True, check=True)
        growth = int(out.stdout.strip().splitlines()[-1])
    return {"checkpoint_bytes": size, "from_pretrained_peak_rss_growth_bytes": growth, "rss_ratio": growth / size}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--towers", nargs="+", default=["small", "base"], choices=sorted(TOWERS))
    parser.add_argument("--new-tokens", type=int, default=33)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))

    results = {"threads": torch.get_num_threads(), "speed": [], "memory": None}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats}")
    print("| tower | LLaMo decode tok/s | bare LM decode tok/s | ratio (>=0.95) | LLaMo TTFT s | LLaVA-NeXT-Video TTFT s "
          "| speed-up (>=3x) | vision tower, 32 frames s | LLM positions for the clip (LLaMo / LLaVA-NeXT-Video) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tower in args.towers:
        r = bench_speed(tower, args.new_tokens, args.repeats)
        results["speed"].append(r)
        print(f"| {tower} | {r['llamo_decode_tok_s']:.1f} | {r['bare_lm_decode_tok_s']:.1f} | {r['decode_ratio']:.3f} | "
              f"{r['llamo_ttft_s']:.3f} | {r['llava_next_video_ttft_s']:.3f} | {r['ttft_speedup']:.2f}x | "
              f"{r['vision_tower_32_frames_s']:.3f} | {r['llamo_clip_positions']} / {r['llava_clip_positions']} |", flush=True)
    mem = bench_load_memory(args.towers[0])
    results["memory"] = mem
    print(f"\nfrom_pretrained peak RSS growth {mem['from_pretrained_peak_rss_growth_bytes'] / 2**20:.0f} MiB for a "
          f"{mem['checkpoint_bytes'] / 2**20:.0f} MiB checkpoint: ratio {mem['rss_ratio']:.2f} (goal <= 1.3)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
