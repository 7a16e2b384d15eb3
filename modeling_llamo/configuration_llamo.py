"""Configuration of LLaMo (Human Motion Instruction Tuning, CVPR 2025).

The paper fixes the method (equations E1-E13 in docs/SPEC.md) but not the sizes; the defaults here are ours
and are documented field by field. Invalid combinations raise at construction so a bad config never reaches
a training run.
"""


from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

FRAME_SELECTION_MODES = ("text_guided", "uniform")
KEY_FRAME_RULES = ("top_k", "score_quantiles", "score_span", "asked_span")
SLOTTED_KEY_FRAME_RULES = ("score_span", "asked_span")  # question-picked frames in slots 0..K-C-1, coverage after
KEY_FRAME_GROUNDING_MODES = ("share", "even")
MOTION_ENCODER_TYPES = ("transformer", "conv")


@strict
class LlamoConfig(PreTrainedConfig):
    r"""
    Configuration of [`LlamoForConditionalGeneration`].

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Vision tower applied per video frame (E1). SigLIP (`siglip_vision_model`) or CLIP (`clip_vision_model`).
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Any decoder-only causal language model of transformers (E12); Llama by default.
        motion_feature_dim (`int`, defaults to 202):
            Width of one motion frame as the processor writes it (`motion_representation`).
        motion_representation (`str`, defaults to `"smpl22_rot6d_joints"`):
            Name of the per-frame motion features this checkpoint takes; the processor converts inputs into it.
        hidden_size (`int`, defaults to 512):
            Width `d` of the motion/video streams and the Cross Talker.
        num_attention_heads (`int`, defaults to 8):
            Heads of every attention block of the streams (encoder, estimator, enhancer, Cross Talker).
        intermediate_size (`int`, defaults to 1024):
            Feed-forward width of those blocks.
        motion_encoder_type (`str`, defaults to `"transformer"`):
            Temporal encoder of E2: `"transformer"` or `"conv"` (1-D convolutions).
        num_motion_encoder_layers (`int`, defaults to 2):
            Depth of that temporal encoder.
        num_estimator_layers (`int`, defaults to 2):
            Depth of the Motion Estimator (video features -> motion features, used when only video is given).
        num_enhancer_layers (`int`, defaults to 1):
            Self-attention blocks per stream in the Motion Feature Enhancer (E3).
        num_key_frames (`int`, defaults to 16):
            K, the number of key frames (and of `<motion>` placeholder tokens per clip) (E6).
        num_segments (`int`, defaults to 8):
            Number of mean-pooled segments giving the global context (E9).
        motion_token_id (`int`, defaults to 0):
            Token id of the `<motion>` placeholder; set by the processor/builder once the tokenizer is extended.
        estimator_loss_weight (`float`, defaults to 1.0):
            Weight of the estimator's auxiliary regression loss when video and motion come together; 0 disables it.
        frame_selection (`str`, defaults to `"text_guided"`):
            `"text_guided"` (E5-E6) or `"uniform"` (ablation: K evenly spaced frames, no text scores).
        key_frame_exploration (`float`, defaults to 0.0):
            Training only: temperature `tau` of Gumbel noise added to the log-scores before E6's top-K, which then
            samples K frames without replacement with probability proportional to `s_j^(1/tau)`. E6's
            straight-through gradient reaches only the frames picked, so with 0 (the paper's plain top-K) a frame
            that ranks low never gets the gradient that could raise it. Evaluation and generation always take the
            top-K.
        num_coverage_frames (`int`, defaults to 0):
            C of the K key frames are evenly spaced over the clip whatever the question; the other K - C are the
            top scores among the rest (E6). Ours, not the paper's (0, its plain top-K): the question's scores favour
            the stretch its words name, so a question about what comes *after* that stretch, or about a quiet one
            (a turn, a walk), can end up with no key frame on the moments it asks about. `"uniform"` selection is
            C = K.
        key_frame_rule (`str`, defaults to `"top_k"`):
            How text-guided selection turns the E6 scores into the K - C question-picked key frames. `"top_k"`: the
            paper's, the highest scores. `"score_quantiles"` (ours): the frames at K - C evenly spaced quantiles of
            the clip's score mass, i.e. spread over the moments in proportion to their share of the scores. Top-K
            bunches the picks on a few peaks; a count needs the asked stretch sampled from end to end, which
            quantiles give wherever the scores put their mass (and they fall back to even spacing when scores are
            flat). `"score_span"` (ours): K - C frames evenly spaced in time between the outer two of those
            quantiles, placed in slots 0..K-C-1 and the C evenly spaced frames after them (not interleaved in time),
            so slot i means the same relative moment of the scored stretch in every clip (quantiles crowd the picks
            where scores are dense, and interleaving moves every slot with where the coverage frames fall). On
            llamo-demo it did not make the count easier to read: the scored stretch is not the counted segment
            (README, "Where it fails"). `"asked_span"` (ours, needs `use_asked_span_head`): the same slots, the
            K - C frames evenly spaced over the stretch the asked-span head marks as the one the question asks
            about (`asked_span_indices`). Distinct frames either way.
        key_frame_grounding_weight (`float`, defaults to 0.0):
            Training only, ours (the paper learns selection from the answer loss alone): weight of an auxiliary
            loss, `-log` of the share of the E6 scores `s_j` that falls on the frames a label says the question is
            about (`key_frame_targets`, e.g. the asked and named segments of a BABEL-QA question). E6's
            straight-through gradient only reaches frames already picked; this one reaches every frame's score.
        key_frame_grounding_mode (`str`, defaults to `"share"`):
            Training only, ours: what the grounding loss asks of the scores on the target frames. `"share"`: as
            much of the score mass there as possible, however it is spread inside. `"even"`: the score mass spread
            evenly over them, `KL(uniform over the targets || s / sum(s))`, which bounds the share loss from above
            (Jensen), so it asks for the share too. Under `key_frame_rule="score_quantiles"` evenly spread scores
            put the question-picked frames on an even grid over the asked stretch, which a count needs.
        use_asked_span_head (`bool`, defaults to `False`):
            Ours: a small head (`LlamoAskedSpanHead`) that gives every frame a logit for lying in the stretch the
            question asks about; `key_frame_rule="asked_span"` reads it. Off: no such weights.
        asked_span_loss_weight (`float`, defaults to 1.0):
            Training only, ours: weight of that head's per-frame binary cross-entropy (`asked_span_loss`) against
            `asked_frame_targets` (1 on the asked segment's frames; `LlamoDataCollator(asked_frame_targets=True)`).
        use_count_head (`bool`, defaults to `False`):
            Ours (needs `use_asked_span_head`): a small head (`LlamoCountHead`) that reads the repetition count of
            the stretch the asked-span head marks as a sum of per-frame repetition densities, and writes it into
            the last of the K placeholder slots as the language model's own embedding of the number word
            (`count_word_token_ids`), so answering a count is copying a word rather than counting frames.
        count_loss_weight (`float`, defaults to 1.0):
            Training only, ours: weight of that head's loss (`repetition_count_loss`) against `count_targets`.
        count_word_token_ids (`list[int]`, *optional*):
            With `use_count_head`: the language model's first token of each count's word, "one" ... (one entry per
            count from 1; the head's reading is clamped to that range). `build_llamo_from_parts` fills it in.
        use_enhancer (`bool`, defaults to `True`):
            Whether the Motion Feature Enhancer (E3-E4) runs; without it video is not fused into motion.
        use_adaptive_context (`bool`, defaults to `True`):
            Whether key frames gather local (E7-E8) and global (E9) context.
        use_bidirectional_fusion (`bool`, defaults to `True`):
            Whether key frames and instruction text attend to each other (E10) and text is fed back (E11).
        freeze_vision_tower (`bool`, defaults to `True`):
            Vision tower frozen, as in the paper.
        freeze_motion_encoder (`bool`, defaults to `False`):
            The paper freezes a pretrained motion encoder; none public fits, so ours trains unless told.
        max_timestamp (`float`, defaults to 600.0):
            Longest clip, in seconds, the sinusoidal time encoding is scaled for.
        projector_hidden_act (`str`, defaults to `"gelu"`):
            Activation of the key-frame projector and of the stream feed-forwards.
        motion_fps (`float`, defaults to 30.0):
            Rate assumed for frame times when the caller gives no timestamps.
        tie_word_embeddings (`bool`, defaults to `False`):
            Follows the language model's own setting.
    """

    model_type = "llamo"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="siglip_vision_model",
            init_kwargs={
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "image_size": 224,
                "patch_size": 16,
            },
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    motion_feature_dim: int = 202
    motion_representation: str = "smpl22_rot6d_joints"
    hidden_size: int = 512
    num_attention_heads: int = 8
    intermediate_size: int = 1024
    motion_encoder_type: str = "transformer"
    num_motion_encoder_layers: int = 2
    num_estimator_layers: int = 2
    num_enhancer_layers: int = 1
    num_key_frames: int = 16
    num_segments: int = 8
    motion_token_id: int = 0
    estimator_loss_weight: float = 1.0
    frame_selection: str = "text_guided"
    key_frame_exploration: float = 0.0
    num_coverage_frames: int = 0
    key_frame_rule: str = "top_k"
    key_frame_grounding_weight: float = 0.0
    key_frame_grounding_mode: str = "share"
    use_asked_span_head: bool = False
    asked_span_loss_weight: float = 1.0
    use_count_head: bool = False
    count_loss_weight: float = 1.0
    count_word_token_ids: list | None = None
    use_enhancer: bool = True
    use_adaptive_context: bool = True
    use_bidirectional_fusion: bool = True
    freeze_vision_tower: bool = True
    freeze_motion_encoder: bool = False
    max_timestamp: float = 600.0
    projector_hidden_act: str = "gelu"
    motion_fps: float = 30.0
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # Composite configs keep the language model's tying choice (SmolLM2 ties its embeddings).
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        self._check_values()

    def _check_values(self):
        def require(condition, message):
            if not condition:
                raise ValueError(f"LlamoConfig: {message}")

        for name in ("motion_feature_dim", "hidden_size", "num_attention_heads", "intermediate_size",
                     "num_key_frames", "num_segments"):
            require(getattr(self, name) > 0, f"`{name}` must be positive, got {getattr(self, name)}.")
        for name in ("num_motion_encoder_layers", "num_estimator_layers", "num_enhancer_layers"):
            require(getattr(self, name) >= 0, f"`{name}` must be >= 0, got {getattr(self, name)}.")
        require(
            self.hidden_size % self.num_attention_heads == 0,
            f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
            f"({self.num_attention_heads}).",
        )
        require(
            self.frame_selection in FRAME_SELECTION_MODES,
            f"`frame_selection` must be one of {FRAME_SELECTION_MODES}, got {self.frame_selection!r}.",
        )
        require(
            self.key_frame_rule in KEY_FRAME_RULES,
            f"`key_frame_rule` must be one of {KEY_FRAME_RULES}, got {self.key_frame_rule!r}.",
        )
        require(
            self.key_frame_grounding_mode in KEY_FRAME_GROUNDING_MODES,
            f"`key_frame_grounding_mode` must be one of {KEY_FRAME_GROUNDING_MODES}, got {self.key_frame_grounding_mode!r}.",
        )
        require(
            self.key_frame_exploration == 0 or self.key_frame_rule == "top_k",
            "`key_frame_exploration` perturbs the ranking of `key_frame_rule=\"top_k\"`; "
            f"`{self.key_frame_rule}` has no ranking to perturb: set it to 0.",
        )
        require(
            self.key_frame_rule != "asked_span" or self.use_asked_span_head,
            "`key_frame_rule=\"asked_span\"` reads the asked-span head: set `use_asked_span_head=True`.",
        )
        require(self.asked_span_loss_weight >= 0, "`asked_span_loss_weight` must be >= 0.")
        require(not self.use_count_head or self.use_asked_span_head,
                "`use_count_head` counts over the stretch the asked-span head marks: set `use_asked_span_head=True`.")
        require(not self.use_count_head or len(self.count_word_token_ids or []) >= 2,
                "`use_count_head` writes its reading as a number word: set `count_word_token_ids` (the first token "
                "of \"one\", \"two\", ...; `build_llamo_from_parts` does).")
        require(self.count_loss_weight >= 0, "`count_loss_weight` must be >= 0.")
        require(
            self.motion_encoder_type in MOTION_ENCODER_TYPES,
            f"`motion_encoder_type` must be one of {MOTION_ENCODER_TYPES}, got {self.motion_encoder_type!r}.",
        )
        require(self.estimator_loss_weight >= 0, "`estimator_loss_weight` must be >= 0.")
        require(self.key_frame_exploration >= 0, "`key_frame_exploration` must be >= 0.")
        require(self.key_frame_grounding_weight >= 0, "`key_frame_grounding_weight` must be >= 0.")
        require(
            0 <= self.num_coverage_frames <= self.num_key_frames,
            f"`num_coverage_frames` must be in [0, num_key_frames = {self.num_key_frames}], got "
            f"{self.num_coverage_frames}.",
        )
        require(self.max_timestamp > 0 and self.motion_fps > 0, "`max_timestamp` and `motion_fps` must be > 0.")
        # Text-guided selection scores frames against the instruction; the bidirectional fusion and the text
        # gate read the same instruction features. Both need a language model that exposes input embeddings,
        # which every decoder-only model has, so only the vocabulary can be checked here.
        vocab_size = getattr(self.text_config, "vocab_size", None)
        require(
            vocab_size is None or 0 <= self.motion_token_id < vocab_size,
            f"`motion_token_id` ({self.motion_token_id}) must be a valid token id of the language model "
            f"(vocab_size={vocab_size}).",
        )
        require(
            vocab_size is None or all(0 <= int(token) < vocab_size for token in self.count_word_token_ids or []),
            f"`count_word_token_ids` ({self.count_word_token_ids}) must be token ids of the language model "
            f"(vocab_size={vocab_size}).",
        )
        require(
            getattr(self.text_config, "is_encoder_decoder", False) is False,
            "`text_config` must describe a decoder-only causal language model.",
        )


__all__ = ["LlamoConfig"]
