"""LLaMo: a language model that reads human motion (and video) in its native continuous form.

Layout follows transformers' multimodal models (LLaVA-NeXT-Video, Qwen2-VL): `LlamoPreTrainedModel`,
`LlamoModel` (encoders + Cross Talker + language model backbone) and `LlamoForConditionalGeneration`
(adds the LM head, the loss and generation). Each module names the equation of docs/SPEC.md (E1-E13) it
implements.

Media come per *clip*, in the order their `<motion>` markers appear in the batch (row 0's clips first).
Every clip is expanded by the processor into `num_key_frames` (K) placeholder tokens; a clip may carry video
frames, motion frames, or both on one shared timeline (same T, same mask).

Decisions the paper leaves open (SPEC.md section 7), made here:
- Positional information: sinusoidal encoding of each frame's timestamp (in frames at `motion_fps`), added to
  both streams before any attention, so order and spacing survive the top-K selection.
- Estimator: a temporal transformer over the encoded video frames with a linear read-out, regressed (MSE over
  valid frames) onto the *detached* motion encoding, so video never pulls the motion encoder toward itself.
- Key-frame selection gradient: straight-through. The chosen features are multiplied by
  `1 + s - stop_grad(s)`, which is 1 in the forward pass (features unchanged) and gives d/ds = feature in the
  backward pass, so W_Q and W_K learn which frames help the answer.
- Fewer than K valid frames: every frame is kept and frames are repeated in time order to fill the K slots.
- Adaptive window: the hard window `|j-k| <= r_k T` of E7 is relaxed to the bias `log sigmoid((r_k T - |j-k|)/tau)`
  with tau = 1 frame: ~0 inside, falling linearly outside, so r_k gets a gradient.
- Segments: `num_segments` contiguous, equal shares of the valid frames, mean-pooled; empty ones are masked.
- Several clips in one conversation: each clip is processed on its own and guided by its own row's
  instruction tokens; their fused text features are summed into that row.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils import ModelOutput

from .configuration_llamo import SLOTTED_KEY_FRAME_RULES, LlamoConfig

CLIP_INPUT_NAMES = ("pixel_values_videos", "frame_mask", "motion_values", "motion_mask", "frame_timestamps")
"""Model inputs that hold one entry per clip (not per batch row)."""

PREFILL_ONLY_INPUT_NAMES = CLIP_INPUT_NAMES + ("guidance_mask",)
"""Inputs consumed at prefill; decode steps read the KV cache instead, so media are encoded exactly once."""


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LlamoCrossTalkerOutput(ModelOutput):
    """What the Cross Talker made of each clip: its key-frame features and the selection behind them.

    Args:
        key_features (`torch.FloatTensor` of shape `(num_clips, K, hidden_size)`):
            Key-frame features after local/global context and fusion (E8-E10), before the projector (E11).
        fused_text (`torch.FloatTensor` of shape `(num_clips, L, hidden_size)`, *optional*):
            Instruction-token features that attended to the key frames (E10).
        key_frame_indices, evenly_spaced_key_frames, frame_scores, window_radii, asked_span_logits,
            repetition_counts: see [`LlamoMediaOutput`].
    """

    key_features: torch.FloatTensor | None = None
    fused_text: torch.FloatTensor | None = None
    key_frame_indices: torch.LongTensor | None = None
    evenly_spaced_key_frames: torch.BoolTensor | None = None
    frame_scores: torch.FloatTensor | None = None
    window_radii: torch.FloatTensor | None = None
    asked_span_logits: torch.FloatTensor | None = None
    repetition_counts: torch.FloatTensor | None = None


@dataclass
class LlamoMediaOutput(ModelOutput):
    """What the motion/video path produced for each clip.

    Args:
        key_frame_embeds (`torch.FloatTensor` of shape `(num_clips, K, text_hidden_size)`):
            Projected key-frame features written into the `<motion>` placeholders (E11).
        text_embeds_delta (`torch.FloatTensor` of shape `(batch_size, seq_len, text_hidden_size)`, *optional*):
            Gated fused-text features added to the instruction token embeddings (E10-E11).
        key_frame_indices (`torch.LongTensor` of shape `(num_clips, K)`):
            Frame index (on the clip's timeline) of each key frame, in time order (under
            `key_frame_rule="score_span"`: the question-picked ones in time order, then the evenly spaced ones).
        evenly_spaced_key_frames (`torch.BoolTensor` of shape `(num_clips, K)`):
            Which key frames are evenly spaced whatever the question (`num_coverage_frames`; all of them under
            uniform selection) rather than picked by the question's scores.
        frame_scores (`torch.FloatTensor` of shape `(num_clips, T)`):
            Score `s_j` of every frame (E6); 0 on padding frames.
        window_radii (`torch.FloatTensor` of shape `(num_clips, K)`, *optional*):
            Adaptive window ratio `r_k` of each key frame (E7).
        asked_span_logits (`torch.FloatTensor` of shape `(num_clips, T)`, *optional*):
            With `use_asked_span_head`: per frame, the logit that it lies in the stretch the question asks about
            ([`LlamoAskedSpanHead`]); the dtype's lowest value on padding frames.
        repetition_counts (`torch.FloatTensor` of shape `(num_clips,)`, *optional*):
            With `use_count_head`: the count head's reading of the repetitions in that stretch ([`LlamoCountHead`]),
            which the last placeholder slot carries to the language model as a number word.
        estimator_loss (`torch.FloatTensor`, *optional*):
            Auxiliary regression loss of the Motion Estimator on clips that have both video and motion.
    """

    key_frame_embeds: torch.FloatTensor | None = None
    text_embeds_delta: torch.FloatTensor | None = None
    key_frame_indices: torch.LongTensor | None = None
    evenly_spaced_key_frames: torch.BoolTensor | None = None
    frame_scores: torch.FloatTensor | None = None
    window_radii: torch.FloatTensor | None = None
    asked_span_logits: torch.FloatTensor | None = None
    repetition_counts: torch.FloatTensor | None = None
    estimator_loss: torch.FloatTensor | None = None


@dataclass
class LlamoModelOutputWithPast(BaseModelOutputWithPast):
    """[`BaseModelOutputWithPast`] plus what the question selected: see [`LlamoMediaOutput`]."""

    key_frame_indices: torch.LongTensor | None = None
    evenly_spaced_key_frames: torch.BoolTensor | None = None
    frame_scores: torch.FloatTensor | None = None
    window_radii: torch.FloatTensor | None = None
    asked_span_logits: torch.FloatTensor | None = None
    repetition_counts: torch.FloatTensor | None = None
    estimator_loss: torch.FloatTensor | None = None


@dataclass
class LlamoCausalLMOutputWithPast(CausalLMOutputWithPast):
    """[`CausalLMOutputWithPast`] plus what the question selected: see [`LlamoMediaOutput`]; and `grounding_loss`,
    [`key_frame_grounding_loss`] (unweighted) when `key_frame_targets` were given and the config weighs it; and
    `asked_span_loss`, [`asked_span_loss`] (unweighted) when `asked_frame_targets` were given to a model with the
    asked-span head; and `count_loss`, [`repetition_count_loss`] (unweighted) when `count_targets` were given to a
    model with the count head."""

    key_frame_indices: torch.LongTensor | None = None
    evenly_spaced_key_frames: torch.BoolTensor | None = None
    frame_scores: torch.FloatTensor | None = None
    window_radii: torch.FloatTensor | None = None
    asked_span_logits: torch.FloatTensor | None = None
    repetition_counts: torch.FloatTensor | None = None
    estimator_loss: torch.FloatTensor | None = None
    grounding_loss: torch.FloatTensor | None = None
    asked_span_loss: torch.FloatTensor | None = None
    count_loss: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Building blocks shared by every stream
# ----------------------------------------------------------------------------------------------------------------


def key_frame_grounding_loss(frame_scores, key_frame_targets, mode="share"):
    """The key-frame grounding loss (`LlamoConfig.key_frame_grounding_weight`, ours), averaged over the clips that
    have target frames; None when none has. Top-K selection ranks frames by the E6 scores and quantile selection
    spreads the picks over their mass, so where the scores put their mass is where the key frames land.

    `mode` (`LlamoConfig.key_frame_grounding_mode`): `"share"`, `-log` of the share of each clip's scores on its target
    frames; `"even"`, `KL(u || p)` from the uniform distribution `u` over the target frames to the normalised
    scores `p = s / sum(s)`, i.e. `-mean_target log p_j - log(#targets)`: 0 only when the scores are spread
    evenly over the targets and nothing is left elsewhere, and never below the share loss (Jensen).

    Args:
        frame_scores: `(num_clips, T)` scores `s_j`, 0 on padding.
        key_frame_targets: `(num_clips, T')` 1 on the frames the question is about; padded or cut to T.
        mode: `"share"` or `"even"`.
    """
    num_frames = frame_scores.shape[1]
    targets = key_frame_targets.to(frame_scores.device, frame_scores.dtype)[:, :num_frames]
    targets = F.pad(targets, (0, num_frames - targets.shape[1]))
    num_targets = targets.sum(-1)
    has_target = num_targets > 0
    if not bool(has_target.any()):
        return None
    total = frame_scores.sum(-1, keepdim=True).clamp_min(torch.finfo(frame_scores.dtype).tiny)
    if mode == "share":
        share = (frame_scores * targets).sum(-1) / total[:, 0]
        per_clip = -share.clamp_min(1e-6).log()
    elif mode == "even":
        # + 1e-6 rather than a clamp: a target frame whose score has collapsed still gets a gradient.
        log_p = (frame_scores / total + 1e-6).log()
        num_targets = num_targets.clamp_min(1)
        per_clip = -(targets * log_p).sum(-1) / num_targets - num_targets.log()
    else:
        raise ValueError(f"Unknown key-frame grounding mode {mode!r}; expected 'share' or 'even'.")
    return per_clip[has_target].mean()


def masked_attention(query, key, value, key_mask=None, attn_bias=None):
    """Scaled dot-product attention over `(N, heads, T, head_dim)` tensors.

    `key_mask` (N, Tk) marks keys that may be attended to; `attn_bias` (N, Tq, Tk) is added to the logits.
    Rows with no valid key (e.g. an instruction-less prompt) return zeros instead of NaN.
    """
    mask = None
    no_valid_key = None
    if key_mask is not None:
        key_mask = key_mask.bool()
        no_valid_key = ~key_mask.any(-1)  # (N,)
        # A row with nothing to attend to would softmax over -inf only; give it every key and zero it below.
        key_mask = key_mask | no_valid_key[:, None]
        mask = torch.zeros(key_mask.shape, dtype=query.dtype, device=query.device)
        mask = mask.masked_fill(~key_mask, torch.finfo(query.dtype).min)[:, None, None, :]
    if attn_bias is not None:
        bias = attn_bias[:, None].to(query.dtype)
        mask = bias if mask is None else mask + bias
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    if no_valid_key is not None and bool(no_valid_key.any()):
        out = out.masked_fill(no_valid_key[:, None, None, None], 0.0)
    return out


class LlamoAttention(nn.Module):
    """Multi-head attention used by every block of the streams (self-, cross-, windowed and segment attention)."""

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _split(self, x):
        return x.view(*x.shape[:2], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden_states, context, key_mask=None, attn_bias=None):
        q, k, v = self._split(self.q_proj(hidden_states)), self._split(self.k_proj(context)), self._split(self.v_proj(context))
        out = masked_attention(q, k, v, key_mask=key_mask, attn_bias=attn_bias)
        return self.o_proj(out.transpose(1, 2).reshape(hidden_states.shape))


class LlamoAttentionBlock(nn.Module):
    """Pre-norm residual block `x + Attn(norm(x), norm(context)) + FFN`.

    Self-attention when `context` is None (E3), cross-attention otherwise (E4, E8, E9, E10).
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.norm_query = nn.LayerNorm(config.hidden_size)
        self.norm_context = nn.LayerNorm(config.hidden_size)
        self.attention = LlamoAttention(config)
        self.norm_ffn = nn.LayerNorm(config.hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size),
            ACT2FN[config.projector_hidden_act],
            nn.Linear(config.intermediate_size, config.hidden_size),
        )

    def forward(self, hidden_states, context=None, key_mask=None, attn_bias=None):
        query = self.norm_query(hidden_states)
        context = query if context is None else self.norm_context(context)
        hidden_states = hidden_states + self.attention(query, context, key_mask=key_mask, attn_bias=attn_bias)
        return hidden_states + self.ffn(self.norm_ffn(hidden_states))


class LlamoTemporalStack(nn.Module):
    """A stack of self-attention blocks over time, padding frames masked out of every key set."""

    def __init__(self, config: LlamoConfig, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(LlamoAttentionBlock(config) for _ in range(num_layers))

    def forward(self, hidden_states, frame_mask):
        for layer in self.layers:
            hidden_states = layer(hidden_states, key_mask=frame_mask)
        return hidden_states


class LlamoTemporalConvs(nn.ModuleList):
    """Residual 1-D convolutions over time, `x + act(conv(x))` per layer (one layer per dilation), padding frames
    zeroed before each so they leak nothing."""

    def __init__(self, config: LlamoConfig, dilations=(1,), kernel_size: int = 3):
        super().__init__(
            nn.Conv1d(config.hidden_size, config.hidden_size, kernel_size, padding=dilation * (kernel_size // 2),
                      dilation=dilation)
            for dilation in dilations
        )
        self.act = ACT2FN[config.projector_hidden_act]

    def forward(self, hidden_states, frame_mask):
        keep = frame_mask[..., None].to(hidden_states.dtype)
        for conv in self:
            hidden_states = hidden_states + self.act(conv((hidden_states * keep).transpose(1, 2)).transpose(1, 2))
        return hidden_states * keep


class LlamoTimeEncoding(nn.Module):
    """Sinusoidal encoding of frame timestamps (seconds), so temporal order survives key-frame selection.

    Times are expressed in frames at `motion_fps`, so one frame step has the resolution of a position index.
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.frames_per_second = config.motion_fps
        self.max_position = config.max_timestamp * config.motion_fps
        self.hidden_size = config.hidden_size

    def forward(self, timestamps):
        # Frequencies are computed here rather than kept in a buffer: non-persistent buffers are left
        # uninitialised when `from_pretrained` builds the model on the meta device.
        half = self.hidden_size // 2
        exponent = torch.arange(half, dtype=torch.float32, device=timestamps.device) / max(half - 1, 1)
        inv_freq = torch.exp(-math.log(self.max_position) * exponent)
        angles = (timestamps.float() * self.frames_per_second)[..., None] * inv_freq
        encoding = torch.cat([angles.sin(), angles.cos()], dim=-1)
        if encoding.shape[-1] < self.hidden_size:  # odd widths
            encoding = F.pad(encoding, (0, self.hidden_size - encoding.shape[-1]))
        return encoding


# ----------------------------------------------------------------------------------------------------------------
# Module 1: multimodal feature extraction (E1-E4)
# ----------------------------------------------------------------------------------------------------------------


class LlamoFrameEncoder(nn.Module):
    """E1 `F_V = f_v(V)`: the vision tower per frame, pooled to one vector, mapped to width d.

    Only valid frames go through the tower, so padding costs nothing.
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.proj = nn.Linear(config.vision_config.hidden_size, config.hidden_size)

    def forward(self, pixel_values_videos, frame_mask):
        num_clips, num_frames = pixel_values_videos.shape[:2]
        valid = frame_mask.bool()
        frames = pixel_values_videos[valid].to(self.proj.weight.dtype)
        features = pixel_values_videos.new_zeros(num_clips, num_frames, self.proj.out_features, dtype=self.proj.weight.dtype)
        if frames.shape[0] == 0:
            return features
        tower_out = self.vision_tower(pixel_values=frames)
        pooled = getattr(tower_out, "pooler_output", None)
        if pooled is None:  # towers without a pooling head: mean over patches
            pooled = tower_out.last_hidden_state.mean(dim=1)
        features = features.masked_scatter(valid[..., None], self.proj(pooled))
        return features


class LlamoMotionEncoder(nn.Module):
    """E2 `F_M = f_m(M)`: a per-frame MLP then a temporal encoder, one feature per motion frame.

    No downsampling and no quantisation: motion stays continuous, frame by frame.
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.frame_mlp = nn.Sequential(
            nn.Linear(config.motion_feature_dim, config.hidden_size),
            ACT2FN[config.projector_hidden_act],
            nn.Linear(config.hidden_size, config.hidden_size),
        )
        if config.motion_encoder_type == "transformer":
            self.temporal = LlamoTemporalStack(config, config.num_motion_encoder_layers)
        else:
            self.temporal = LlamoTemporalConvs(config, dilations=(1,) * config.num_motion_encoder_layers)

    def forward(self, motion_values, motion_mask, time_encoding):
        return self.temporal(self.frame_mlp(motion_values) + time_encoding, motion_mask)


class LlamoMotionEstimator(nn.Module):
    """Estimates motion features from video features when a clip has no motion (SPEC.md, Motion Estimator).

    Trained with an auxiliary regression loss toward the encoded real motion on clips that have both.
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.temporal = LlamoTemporalStack(config, config.num_estimator_layers)
        self.norm = nn.LayerNorm(config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, video_features, frame_mask):
        return self.out(self.norm(self.temporal(video_features, frame_mask)))


class LlamoMotionFeatureEnhancer(nn.Module):
    """E3 `F'_V = F_V + SelfAttn(F_V)`, `F'_M = F_M + SelfAttn(F_M)` and E4 `F~_M = F'_M + CrossAttn(F'_M, F'_V)`.

    Video reaches the language model only through `F~_M`.
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.video_self = LlamoTemporalStack(config, config.num_enhancer_layers)
        self.motion_self = LlamoTemporalStack(config, config.num_enhancer_layers)
        self.motion_queries_video = LlamoAttentionBlock(config)

    def forward(self, motion_features, motion_mask, video_features=None, frame_mask=None, has_video=None):
        motion_features = self.motion_self(motion_features, motion_mask)
        if video_features is None:
            return motion_features
        video_features = self.video_self(video_features, frame_mask)
        fused = self.motion_queries_video(motion_features, video_features, key_mask=frame_mask)
        # Clips without video skip E4.
        return torch.where(has_video[:, None, None], fused, motion_features)


# ----------------------------------------------------------------------------------------------------------------
# Module 2: Cross Talker (E5-E11)
# ----------------------------------------------------------------------------------------------------------------


def valid_frame_order(frame_mask):
    """Indices of each clip's valid frames first (in time order), then its padding; and the valid counts."""
    order = torch.argsort((~frame_mask.bool()).to(torch.int8), dim=-1, stable=True)
    return order, frame_mask.bool().sum(-1)


def uniform_frame_indices(frame_mask, num_key_frames):
    """K evenly spaced valid frames per clip (bin centres); with fewer than K frames, all kept and repeated."""
    order, lengths = valid_frame_order(frame_mask)
    slots = torch.arange(num_key_frames, device=frame_mask.device, dtype=torch.float32) + 0.5
    ranks = torch.floor(slots[None, :] * lengths[:, None].float() / num_key_frames).long()
    ranks = torch.minimum(ranks, (lengths[:, None] - 1).clamp(min=0))
    return torch.gather(order, 1, ranks)


def score_mass_share(scores, eligible):
    """Per clip: the eligible frames first, in time order (`valid_frame_order`), their counts, and the cumulative
    share of the scores up to and including each of them (even steps when a clip's scores are all zero)."""
    order, lengths = valid_frame_order(eligible)
    mass = torch.gather(scores.float() * eligible.float(), 1, order)  # eligible frames first, in time order
    cumulative = mass.cumsum(-1)
    total = cumulative[:, -1:]
    even = (torch.arange(1, scores.shape[1] + 1, device=scores.device).float()[None, :]
            / lengths[:, None].clamp(min=1).float()).clamp(max=1.0)
    cumulative = torch.where(total > 0, cumulative / total.clamp_min(torch.finfo(torch.float32).tiny), even)
    return order, lengths, cumulative


def distinct_frames(order, lengths, positions):
    """Frames at `positions` (`(N, count)`, non-decreasing, into `order`) made distinct: each lifted past its
    predecessor, then kept below the room its successors need. Needs >= `count` eligible frames per clip."""
    count = positions.shape[-1]
    steps = torch.arange(count, device=positions.device)
    positions = torch.cummax(positions - steps, dim=-1).values + steps
    positions = torch.minimum(positions, lengths[:, None] - count + steps).clamp(min=0)
    return torch.gather(order, 1, positions)


def score_quantile_indices(scores, eligible, count):
    """`key_frame_rule="score_quantiles"`: per clip, the eligible frames where the cumulative share of the scores
    passes `(k + 0.5) / count`, k = 0..count-1, made distinct and kept in time order (a frame holding more
    than one quantile's mass passes the extra picks to its neighbours). Flat or zero scores give evenly spaced
    frames. Needs >= `count` eligible frames per clip (the caller falls back to even spacing otherwise)."""
    order, lengths, cumulative = score_mass_share(scores, eligible)
    targets = ((torch.arange(count, device=scores.device).float() + 0.5) / count).expand(scores.shape[0], count)
    positions = torch.searchsorted(cumulative.contiguous(), targets.contiguous(), right=True)  # frame whose [lo, hi) holds it
    return distinct_frames(order, lengths, positions)


def score_span_indices(scores, eligible, count):
    """`key_frame_rule="score_span"`: per clip, `count` eligible frames evenly spaced in time from the one at the
    score mass's `0.5 / count` quantile to the one at its `1 - 0.5 / count` quantile (the first and last of
    `score_quantile_indices`), in time order. Where the quantiles put more picks on the dense stretches, this
    keeps one spacing over the whole stretch the scores cover, so pick i is the same relative moment of that
    stretch in every clip. Needs >= `count` eligible frames per clip."""
    order, lengths, cumulative = score_mass_share(scores, eligible)
    tail = 0.5 / count
    ends = torch.tensor([tail, 1.0 - tail], device=scores.device).expand(scores.shape[0], 2)
    first, last = torch.searchsorted(cumulative.contiguous(), ends.contiguous(), right=True).unbind(-1)
    return evenly_spaced_between(order, lengths, first, last, count)


def evenly_spaced_between(order, lengths, first, last, count):
    """`count` distinct frames evenly spaced from position `first` to position `last` (`(N,)` each) of `order`'s
    eligible frames (`lengths` per clip); `last` is kept inside the clip and at or past `first`."""
    last = torch.minimum(last, lengths - 1)
    fraction = torch.arange(count, device=order.device).float() / max(count - 1, 1)
    positions = torch.round(first[:, None] + fraction[None, :] * (last - first).clamp(min=0)[:, None].float())
    return distinct_frames(order, lengths, positions.long())


def heaviest_run(gains, frame_mask):
    """Per clip, the run of consecutive valid frames with the largest sum of `gains` (`(N, T)`): `(first, last)`,
    `(N,)` each, as ranks among the clip's valid frames (`frame_ranks`), both inclusive. One pass of prefix
    sums: the best run ending at frame j starts at the frame i <= j whose prefix sum (the gains before i) is the
    lowest."""
    order, lengths = valid_frame_order(frame_mask)
    ranks = torch.arange(gains.shape[1], device=gains.device)[None, :]
    # Padding, ordered last, gets a loss no run would take on (every valid gain here is above -1).
    ordered = torch.gather(gains.float(), 1, order).masked_fill(ranks >= lengths[:, None], -1.0)
    prefix = F.pad(ordered.cumsum(-1), (1, 0))  # prefix[:, j]: the sum of the gains before frame j
    lowest, lowest_at = torch.cummin(prefix[:, :-1], dim=-1)
    last = (prefix[:, 1:] - lowest).argmax(-1)
    first = torch.gather(lowest_at, 1, last[:, None])[:, 0]
    return first, last


def asked_span_indices(span_logits, frame_mask, eligible, count):
    """`key_frame_rule="asked_span"`: per clip, `count` eligible frames evenly spaced in time over the stretch the
    asked-span head believes the question asks about: the run of consecutive valid frames that maximises
    `sum(p_j - 1/2)` of its probabilities `p_j = sigmoid(logit_j)` (frames it holds more likely in than out
    count for the run, the others against it, so a short doubtful gap is bridged and a long one is not).
    Needs >= `count` eligible frames per clip."""
    first, last = heaviest_run(torch.sigmoid(span_logits.float()) - 0.5, frame_mask)
    ranks, eligible = frame_ranks(frame_mask), eligible.bool()
    order, lengths = valid_frame_order(eligible)
    # The run's ends as positions among the eligible frames (the coverage frames are not eligible).
    first = (eligible & (ranks < first[:, None])).sum(-1).clamp(max=lengths - 1)
    last = (eligible & (ranks <= last[:, None])).sum(-1) - 1
    return evenly_spaced_between(order, lengths, first, last, count)


def frame_ranks(frame_mask):
    """Position of each frame among its clip's valid frames (0..n-1); padding frames get -1."""
    mask = frame_mask.bool()
    return torch.where(mask, mask.long().cumsum(-1) - 1, torch.full_like(mask, -1, dtype=torch.long))


class LlamoAskedSpanHead(nn.Module):
    """Ours (the paper has no such head): per frame, a logit that it lies in the stretch the question asks about
    (the segment whose action, direction, body part or count is wanted), trained with a per-frame binary
    cross-entropy (`asked_span_loss`) and read by `key_frame_rule="asked_span"`. E6's scores are a softmax over
    frames, trained (or not) to put mass on the moments that matter; they do not say where such a stretch starts
    and ends, and a count needs those ends within a few percent (README, "Where it fails").

    Temporal context first (dilated convolutions: where one action gives way to another is a change over
    frames), then the frames read the instruction (a cross-attention block: which action, which relation), then
    more temporal context so neighbouring frames agree."""

    dilations = (1, 2, 4)  # kernel 5: each stack sees 29 frames

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size)
        self.motion_context = LlamoTemporalConvs(config, self.dilations, kernel_size=5)
        self.read_question = LlamoAttentionBlock(config)
        self.span_context = LlamoTemporalConvs(config, self.dilations, kernel_size=5)
        self.out = nn.Linear(config.hidden_size, 1)

    def forward(self, motion_features, frame_mask, text_features, text_mask):
        hidden = self.motion_context(self.norm(motion_features), frame_mask)
        hidden = self.read_question(hidden, text_features, key_mask=text_mask)
        hidden = self.span_context(hidden, frame_mask)
        logits = self.out(hidden).squeeze(-1)
        return logits.masked_fill(~frame_mask.bool(), torch.finfo(logits.dtype).min)


def asked_span_loss(span_logits, asked_frame_targets):
    """The asked-span head's loss (`LlamoConfig.asked_span_loss_weight`): binary cross-entropy of each valid
    frame's logit against 1 inside the asked stretch and 0 outside, averaged over the valid frames of the clips that
    have one; None when none has.

    Args:
        span_logits: `(num_clips, T)`, the dtype's lowest value on padding frames (as the head writes them).
        asked_frame_targets: `(num_clips, T')` 1 on the frames of the asked stretch; padded or cut to T.
    """
    num_frames = span_logits.shape[1]
    targets = asked_frame_targets.to(span_logits.device, torch.float32)[:, :num_frames]
    targets = F.pad(targets, (0, num_frames - targets.shape[1]))
    valid = span_logits > torch.finfo(span_logits.dtype).min
    counted = valid & (targets.sum(-1, keepdim=True) > 0)
    if not bool(counted.any()):
        return None
    return F.binary_cross_entropy_with_logits(span_logits.float()[counted], targets[counted])


class LlamoCountHead(nn.Module):
    """Ours (the paper has no such head): the repetition count of the stretch the question asks about, as the sum
    over its frames of a per-frame repetition density (repetitions per frame, >= 0), each frame weighted by the
    asked-span head's probability that it lies in that stretch. A density, as in repetition-counting work, rather
    than a read-out of K fixed slots: the sum is the same count however long the stretch is and wherever it lies,
    and each frame's density needs only the local period, which a window of dilated convolutions sees. A linear
    read-out of the key frames the language model receives found 0.69 of the counts within one at best
    (README, "Where it fails"), and the language model found fewer."""

    dilations = (1, 2, 4, 8)  # kernel 5: the stack sees 61 frames, several periods of the slowest repetition
    initial_density = -3.0  # softplus(-3) ~ 0.05 repetitions per frame: a count of a few over a typical stretch

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size)
        self.context = LlamoTemporalConvs(config, self.dilations, kernel_size=5)
        self.out = nn.Linear(config.hidden_size, 1, bias=False)
        self.density_bias = nn.Parameter(torch.tensor(self.initial_density))

    def forward(self, motion_features, frame_mask, span_logits):
        """`(num_clips,)` counts: `sum_t sigmoid(span_logit_t) * density_t` over the valid frames. The span's
        probabilities are detached: the count's loss trains the densities, the span head has its own."""
        hidden = self.context(self.norm(motion_features), frame_mask)
        density = F.softplus(self.out(hidden).squeeze(-1).float() + self.density_bias.float())
        in_span = torch.sigmoid(span_logits.detach().float()) * frame_mask.float()
        return (in_span * density).sum(-1)


def repetition_count_loss(repetition_counts, count_targets):
    """The count head's loss (`LlamoConfig.count_loss_weight`): smooth L1 (Huber, delta 1 repetition) between each
    clip's reading and its question's count, over the clips whose question asks for one (`count_targets` > 0);
    None when none does."""
    targets = count_targets.to(repetition_counts.device, torch.float32).flatten()
    counted = targets > 0
    if not bool(counted.any()):
        return None
    return F.smooth_l1_loss(repetition_counts.float()[counted], targets[counted])


class LlamoCrossTalker(nn.Module):
    """Module 2 of the paper: the question picks the moments that matter, which then gather context.

    - E5 `A = softmax_frames(F_T W_Q (F~_M W_K)^T / sqrt(d))` over the instruction tokens `F_T`.
    - E6 `s_j = max_i A_ij`, top-K frames re-sorted in time, straight-through gradient to W_Q, W_K.
    - E7 adaptive window ratio `r_k = sigmoid(w^T f_k)` per key frame.
    - E8 local context: key frame attends to the frames of its window.
    - E9 global context: key frame attends to `num_segments` mean-pooled segments.
    - E10 bidirectional fusion: key frames attend to text, text attends to key frames.
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.config = config
        self.num_key_frames = config.num_key_frames
        self.num_segments = config.num_segments
        self.text_proj = nn.Linear(config.text_config.hidden_size, config.hidden_size)
        self.w_q = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.w_k = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        if config.use_adaptive_context:
            self.window_head = nn.Linear(config.hidden_size, 1)
            self.local_context = LlamoAttentionBlock(config)
            self.global_context = LlamoAttentionBlock(config)
        if config.use_bidirectional_fusion:
            self.frames_attend_text = LlamoAttentionBlock(config)
            self.text_attends_frames = LlamoAttentionBlock(config)
        self.asked_span_head = LlamoAskedSpanHead(config) if config.use_asked_span_head else None
        self.count_head = LlamoCountHead(config) if config.use_count_head else None

    def frame_scores(self, text_features, text_mask, motion_features, frame_mask):
        """E5-E6: per-frame scores, 0 on padding frames. Clips with no instruction token get uniform scores."""
        query = self.w_q(text_features)
        key = self.w_k(motion_features)
        logits = query @ key.transpose(1, 2) / math.sqrt(query.shape[-1])  # (N, L, T)
        logits = logits.masked_fill(~frame_mask.bool()[:, None, :], float("-inf"))
        attention = logits.softmax(dim=-1)  # softmax over frames
        attention = attention.masked_fill(~text_mask.bool()[:, :, None], float("-inf"))
        scores = attention.max(dim=1).values  # max over instruction tokens
        has_text = text_mask.bool().any(-1)
        uniform = frame_mask.float() / frame_mask.float().sum(-1, keepdim=True).clamp(min=1)
        return torch.where(has_text[:, None], scores, uniform).masked_fill(~frame_mask.bool(), 0.0), has_text

    def select_key_frames(self, scores, frame_mask, has_text, span_logits=None):
        """E6: top-K valid frames by score, in time order (while training, perturbed by `key_frame_exploration`;
        with `key_frame_rule="score_quantiles"`, the frames at K evenly spaced quantiles of the score mass instead;
        with `"score_span"`, K frames evenly spaced in time over the stretch holding the score mass; with
        `"asked_span"`, over the stretch the asked-span head marks, from `span_logits`).
        With `num_coverage_frames` C > 0, C of them are evenly spaced and the other K - C are picked from the rest;
        in time order, except under the span rules: the K - C picks first, then the C evenly spaced frames.
        Fewer than K valid frames: all, repeated in order.

        Returns `(indices, evenly_spaced)`, both `(N, K)`: the key frames and which of them are evenly spaced
        whatever the question (the coverage frames; every one under uniform selection, on clips too short to
        select from, and on clips without instruction tokens)."""
        num_clips, num_frames = scores.shape
        uniform = uniform_frame_indices(frame_mask, self.num_key_frames)
        all_evenly_spaced = torch.ones_like(uniform, dtype=torch.bool)
        num_coverage = self.config.num_coverage_frames
        if self.config.frame_selection == "uniform" or num_frames < self.num_key_frames or num_coverage >= self.num_key_frames:
            return uniform, all_evenly_spaced
        ranking = scores
        if self.training and self.config.key_frame_exploration > 0:
            # Gumbel-top-K: top-K of log s + tau * G samples without replacement with p ~ s^(1/tau), so frames
            # ranked low are picked now and then and E6's straight-through gradient reaches their scores too.
            uniform_noise = torch.rand_like(scores).clamp(1e-6, 1 - 1e-6)
            gumbel = -torch.log(-torch.log(uniform_noise))
            log_scores = scores.clamp_min(torch.finfo(scores.dtype).tiny).log()
            ranking = log_scores + self.config.key_frame_exploration * gumbel
        eligible = frame_mask.bool()
        if num_coverage > 0:
            # Evenly spaced frames are distinct once a clip has >= K valid frames (the only clips that use `top`).
            coverage = uniform_frame_indices(frame_mask, num_coverage)
            eligible = eligible.scatter(1, coverage, False)
        num_picked = self.num_key_frames - num_coverage
        if self.config.key_frame_rule == "score_quantiles":
            picked = score_quantile_indices(scores, eligible, num_picked)
        elif self.config.key_frame_rule == "score_span":
            picked = score_span_indices(scores, eligible, num_picked)
        elif self.config.key_frame_rule == "asked_span":
            picked = asked_span_indices(span_logits, frame_mask, eligible, num_picked)
        else:
            picked = ranking.masked_fill(~eligible, float("-inf")).topk(num_picked, dim=-1).indices
        if self.config.key_frame_rule in SLOTTED_KEY_FRAME_RULES:
            # Slots of their own: the picks (in time order) first, then the coverage frames, so slot i holds the
            # same relative moment of the scored stretch in every clip instead of wherever time order puts it.
            top = torch.cat([picked, coverage], dim=-1) if num_coverage > 0 else picked
            top_evenly_spaced = torch.arange(self.num_key_frames, device=top.device)[None, :] >= num_picked
            top_evenly_spaced = top_evenly_spaced.expand(num_clips, -1)
        elif num_coverage > 0:
            top = torch.cat([coverage, picked], dim=-1)
            is_coverage = torch.arange(self.num_key_frames, device=top.device) < num_coverage
            top, order = top.sort(dim=-1)
            top_evenly_spaced = is_coverage[order]
        else:
            top = picked.sort(dim=-1).values
            top_evenly_spaced = torch.zeros_like(all_evenly_spaced)
        use_top = ((frame_mask.bool().sum(-1) >= self.num_key_frames) & has_text)[:, None]
        return torch.where(use_top, top, uniform), torch.where(use_top, top_evenly_spaced, all_evenly_spaced)

    def window_bias(self, radii, key_indices, frame_mask):
        """E7 relaxed: `log sigmoid((r_k T - |j - k|) / 1 frame)`, distances counted in valid frames."""
        ranks = frame_ranks(frame_mask).float()  # (N, T)
        key_ranks = torch.gather(ranks, 1, key_indices)  # (N, K)
        lengths = frame_mask.float().sum(-1, keepdim=True)  # (N, 1)
        distance = (ranks[:, None, :] - key_ranks[:, :, None]).abs()  # (N, K, T)
        return F.logsigmoid(radii[..., None] * lengths[..., None] - distance)

    def segment_features(self, motion_features, frame_mask):
        """E9's `F_seg`: `num_segments` contiguous, equal shares of the valid frames, mean-pooled."""
        ranks = frame_ranks(frame_mask)
        lengths = frame_mask.long().sum(-1, keepdim=True).clamp(min=1)
        segment_of_frame = torch.div(ranks.clamp(min=0) * self.num_segments, lengths, rounding_mode="floor")
        weights = F.one_hot(segment_of_frame, self.num_segments).to(motion_features.dtype)  # (N, T, S)
        weights = weights * frame_mask[..., None].to(motion_features.dtype)
        counts = weights.sum(1)  # (N, S)
        pooled = weights.transpose(1, 2) @ motion_features / counts.clamp(min=1)[..., None]
        return pooled, counts > 0

    def forward(self, motion_features, frame_mask, text_embeds, text_mask):
        text_features = self.text_proj(text_embeds)
        scores, has_text = self.frame_scores(text_features, text_mask, motion_features, frame_mask)
        span_logits, counts = None, None
        if self.asked_span_head is not None:
            span_logits = self.asked_span_head(motion_features, frame_mask, text_features, text_mask)
        if self.count_head is not None:
            counts = self.count_head(motion_features, frame_mask, span_logits)
        key_indices, evenly_spaced = self.select_key_frames(scores, frame_mask, has_text, span_logits)
        gather_index = key_indices[..., None].expand(-1, -1, motion_features.shape[-1])
        key_features = torch.gather(motion_features, 1, gather_index)
        if self.config.frame_selection == "text_guided":
            # Straight-through: value unchanged, gradient d/ds = feature reaches W_Q and W_K (E6).
            key_scores = torch.gather(scores, 1, key_indices)[..., None]
            key_features = key_features * (1.0 + key_scores - key_scores.detach())

        radii = None
        if self.config.use_adaptive_context:
            radii = torch.sigmoid(self.window_head(key_features)).squeeze(-1)  # E7
            bias = self.window_bias(radii, key_indices, frame_mask)
            key_features = self.local_context(key_features, motion_features, key_mask=frame_mask, attn_bias=bias)  # E8
            segments, segment_mask = self.segment_features(motion_features, frame_mask)
            key_features = self.global_context(key_features, segments, key_mask=segment_mask)  # E9

        fused_text = None
        if self.config.use_bidirectional_fusion:  # E10, both directions read the same inputs
            frames_out = self.frames_attend_text(key_features, text_features, key_mask=text_mask)
            fused_text = self.text_attends_frames(text_features, key_features)
            key_features = frames_out
        return LlamoCrossTalkerOutput(
            key_features=key_features,
            fused_text=fused_text,
            key_frame_indices=key_indices,
            evenly_spaced_key_frames=evenly_spaced,
            frame_scores=scores,
            window_radii=radii,
            asked_span_logits=span_logits,
            repetition_counts=counts,
        )


class LlamoMultiModalProjector(nn.Module):
    """E11: key-frame features (width d) to the language model's width, for the `<motion>` placeholders."""

    def __init__(self, config: LlamoConfig):
        super().__init__()
        text_hidden = config.text_config.hidden_size
        self.linear_1 = nn.Linear(config.hidden_size, text_hidden)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(text_hidden, text_hidden)

    def forward(self, features):
        return self.linear_2(self.act(self.linear_1(features)))


class LlamoTextGate(nn.Module):
    """E11's text half: fused text features back to the LM width, through a zero-initialised gate.

    At initialisation the gate is 0, so an untrained Cross Talker leaves the language model's behaviour intact.
    """

    def __init__(self, config: LlamoConfig):
        super().__init__()
        self.proj = nn.Linear(config.hidden_size, config.text_config.hidden_size)
        self.gate = nn.Parameter(torch.zeros(config.text_config.hidden_size))

    def forward(self, fused_text):
        return self.gate * self.proj(fused_text)


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


class LlamoPreTrainedModel(PreTrainedModel):
    config: LlamoConfig
    config_class = LlamoConfig
    base_model_prefix = "model"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["LlamoAttentionBlock"]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, LlamoTextGate):
            with torch.no_grad():
                module.gate.zero_()
        if isinstance(module, LlamoCountHead):
            with torch.no_grad():
                module.density_bias.fill_(LlamoCountHead.initial_density)

    def apply_freezing(self):
        """Freezes what the config says is frozen (vision tower by default, as in the paper)."""
        backbone = self if isinstance(self, LlamoModel) else self.model
        backbone.frame_encoder.vision_tower.requires_grad_(not self.config.freeze_vision_tower)
        if self.config.freeze_motion_encoder:
            backbone.motion_encoder.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # Loading assigns fresh parameter tensors, which drops `requires_grad=False`: freeze again.
        model = super().from_pretrained(*args, **kwargs)
        model.apply_freezing()
        return model


def check_finite(name, tensor):
    if tensor is not None and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"`{name}` contains {bad} NaN/Inf value(s); expected finite numbers (shape {tuple(tensor.shape)}).")


class LlamoModel(LlamoPreTrainedModel):
    """Encoders, Motion Feature Enhancer, Cross Talker, projector and the language model backbone (no LM head)."""

    def __init__(self, config: LlamoConfig):
        super().__init__(config)
        self.frame_encoder = LlamoFrameEncoder(config)
        self.motion_encoder = LlamoMotionEncoder(config)
        self.motion_estimator = LlamoMotionEstimator(config)
        self.time_encoding = LlamoTimeEncoding(config)
        self.enhancer = LlamoMotionFeatureEnhancer(config) if config.use_enhancer else None
        self.cross_talker = LlamoCrossTalker(config)
        self.multi_modal_projector = LlamoMultiModalProjector(config)
        self.text_gate = LlamoTextGate(config) if config.use_bidirectional_fusion else None
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()
        self.apply_freezing()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    # ---- placeholders ------------------------------------------------------------------------------------------

    def get_placeholder_mask(self, input_ids, inputs_embeds):
        """Positions of the `<motion>` placeholder tokens, from ids or, without ids, from their embedding."""
        if input_ids is not None:
            return input_ids == self.config.motion_token_id
        placeholder = self.get_input_embeddings()(
            torch.tensor(self.config.motion_token_id, dtype=torch.long, device=inputs_embeds.device)
        )
        return (inputs_embeds == placeholder).all(-1)

    def clip_rows(self, placeholder_mask, num_clips):
        """Batch row of every clip, from the placeholder counts; raises if counts and media disagree."""
        k = self.config.num_key_frames
        per_row = placeholder_mask.long().sum(-1)
        total = int(per_row.sum())
        if total != num_clips * k:
            raise ValueError(
                f"Found {total} `<motion>` placeholder tokens in the prompt but {num_clips} clip(s) of media, which "
                f"need {num_clips} x num_key_frames ({k}) = {num_clips * k} placeholders. Let the processor expand "
                f"one `<motion>` marker per clip."
            )
        if bool((per_row % k != 0).any()):
            raise ValueError(
                f"Each batch row must hold a multiple of num_key_frames ({k}) placeholder tokens, got {per_row.tolist()}."
            )
        return torch.repeat_interleave(torch.arange(per_row.shape[0], device=per_row.device), per_row // k)

    # ---- media ---------------------------------------------------------------------------------------------------

    def _check_media(self, pixel_values_videos, frame_mask, motion_values, motion_mask):
        if motion_values is not None:
            if motion_values.dim() != 3 or motion_values.shape[-1] != self.config.motion_feature_dim:
                raise ValueError(
                    f"`motion_values` must have shape (num_clips, frames, {self.config.motion_feature_dim}) for "
                    f"representation {self.config.motion_representation!r}, got {tuple(motion_values.shape)}."
                )
            check_finite("motion_values", motion_values)
        if pixel_values_videos is not None:
            if pixel_values_videos.dim() != 5:
                raise ValueError(
                    "`pixel_values_videos` must have shape (num_clips, frames, channels, height, width), got "
                    f"{tuple(pixel_values_videos.shape)}."
                )
            check_finite("pixel_values_videos", pixel_values_videos)
        if pixel_values_videos is not None and motion_values is not None and pixel_values_videos.shape[0] != motion_values.shape[0]:
            raise ValueError(
                f"`pixel_values_videos` has {pixel_values_videos.shape[0]} clips but `motion_values` has "
                f"{motion_values.shape[0]}; give one entry per clip in both (all-zero mask for a missing modality)."
            )
        for name, values, mask in (("frame_mask", pixel_values_videos, frame_mask), ("motion_mask", motion_values, motion_mask)):
            if values is not None and mask is not None and tuple(mask.shape) != tuple(values.shape[:2]):
                raise ValueError(f"`{name}` must have shape {tuple(values.shape[:2])}, got {tuple(mask.shape)}.")

    def get_media_features(
        self,
        text_embeds: torch.Tensor,
        guidance_mask: torch.Tensor,
        clip_rows: torch.LongTensor,
        pixel_values_videos: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        motion_values: torch.Tensor | None = None,
        motion_mask: torch.Tensor | None = None,
        frame_timestamps: torch.Tensor | None = None,
    ) -> LlamoMediaOutput:
        """Runs E1-E11 for every clip and returns the placeholder embeddings and the selection it made.

        Args:
            text_embeds: `(batch, seq_len, text_hidden)` input embeddings of the prompt (the instruction source).
            guidance_mask: `(batch, seq_len)` 1 on instruction tokens.
            clip_rows: `(num_clips,)` batch row of each clip.
        """
        self._check_media(pixel_values_videos, frame_mask, motion_values, motion_mask)
        ref = motion_values if motion_values is not None else pixel_values_videos
        num_clips, dtype, device = ref.shape[0], self.multi_modal_projector.linear_1.weight.dtype, ref.device
        lengths = [t.shape[1] for t in (pixel_values_videos, motion_values) if t is not None]
        num_frames = max(lengths)

        def padded_mask(mask, values):
            if values is None:
                return torch.zeros(num_clips, num_frames, dtype=torch.bool, device=device)
            mask = torch.ones(values.shape[:2], dtype=torch.bool, device=device) if mask is None else mask.bool()
            return F.pad(mask, (0, num_frames - mask.shape[1]))

        frame_mask = padded_mask(frame_mask, pixel_values_videos)
        motion_mask = padded_mask(motion_mask, motion_values)
        has_video, has_motion = frame_mask.any(-1), motion_mask.any(-1)
        if not bool((has_video | has_motion).all()):
            empty = (~(has_video | has_motion)).nonzero().flatten().tolist()
            raise ValueError(f"Clip(s) {empty} have neither valid video frames nor valid motion frames (all-zero masks).")
        # One timeline per clip: the motion's when it has motion, else the video's.
        timeline_mask = torch.where(has_motion[:, None], motion_mask, frame_mask)
        if frame_timestamps is None:
            frame_timestamps = torch.arange(num_frames, device=device, dtype=torch.float32)[None].expand(num_clips, -1) / self.config.motion_fps
        else:
            check_finite("frame_timestamps", frame_timestamps)
            frame_timestamps = F.pad(frame_timestamps.float(), (0, num_frames - frame_timestamps.shape[1]))
        time_encoding = self.time_encoding(frame_timestamps).to(dtype)

        video_features = None
        if pixel_values_videos is not None:
            video_features = self.frame_encoder(pixel_values_videos, frame_mask[:, : pixel_values_videos.shape[1]])  # E1
            video_features = F.pad(video_features, (0, 0, 0, num_frames - video_features.shape[1])) + time_encoding

        motion_features, estimator_loss = None, None
        if motion_values is not None:
            motion_values = F.pad(motion_values.to(dtype), (0, 0, 0, num_frames - motion_values.shape[1]))
            motion_features = self.motion_encoder(motion_values, motion_mask, time_encoding)  # E2
        if video_features is not None:
            estimated = self.motion_estimator(video_features, frame_mask)
            both = has_video & has_motion
            if motion_features is not None and bool(both.any()) and self.config.estimator_loss_weight > 0:
                weight = (frame_mask & motion_mask & both[:, None]).to(dtype)[..., None]
                error = (estimated - motion_features.detach()).pow(2) * weight
                estimator_loss = error.sum() / (weight.sum() * estimated.shape[-1]).clamp(min=1)
            motion_features = estimated if motion_features is None else torch.where(has_motion[:, None, None], motion_features, estimated)

        if self.enhancer is not None:  # E3-E4
            motion_features = self.enhancer(motion_features, timeline_mask, video_features, frame_mask, has_video)

        clip_text = text_embeds[clip_rows].to(dtype)
        clip_guidance = guidance_mask[clip_rows].bool()
        selection = self.cross_talker(motion_features, timeline_mask, clip_text, clip_guidance)
        key_frame_embeds = self.multi_modal_projector(selection.key_features)  # E11
        if selection.repetition_counts is not None:
            # The last slot carries the count head's reading instead of a frame (`use_count_head`).
            count_embeds = self.count_word_embeds(selection.repetition_counts).to(key_frame_embeds.dtype)
            key_frame_embeds = torch.cat([key_frame_embeds[:, :-1], count_embeds[:, None]], dim=1)

        text_delta = None
        if selection.fused_text is not None:
            per_clip = self.text_gate(selection.fused_text) * clip_guidance[..., None].to(dtype)
            text_delta = torch.zeros_like(text_embeds, dtype=per_clip.dtype).index_add(0, clip_rows, per_clip)
        return LlamoMediaOutput(
            key_frame_embeds=key_frame_embeds,
            text_embeds_delta=text_delta,
            key_frame_indices=selection.key_frame_indices,
            evenly_spaced_key_frames=selection.evenly_spaced_key_frames,
            frame_scores=selection.frame_scores,
            window_radii=selection.window_radii,
            asked_span_logits=selection.asked_span_logits,
            repetition_counts=selection.repetition_counts,
            estimator_loss=estimator_loss,
        )

    def count_word_embeds(self, repetition_counts):
        """`(num_clips, text_hidden)`: each count as the language model's own input embedding of its number word's
        first token (`config.count_word_token_ids`), between the two nearest whole counts' linearly, clamped to the
        words there are; so the answer can be copied from the prompt. Detached: the answer loss does not train the
        count head or those embedding rows through it."""
        token_ids = torch.tensor(self.config.count_word_token_ids, device=repetition_counts.device)
        words = self.get_input_embeddings()(token_ids).detach().float()
        position = (repetition_counts.detach().float() - 1).clamp(0, len(token_ids) - 1)
        low = position.floor().long()
        high = (low + 1).clamp(max=len(token_ids) - 1)
        share = (position - low)[:, None]
        return words[low] * (1 - share) + words[high] * share

    def prompt_media_features(self, inputs_embeds, placeholder_mask, attention_mask=None, guidance_mask=None,
                              **media_inputs) -> LlamoMediaOutput:
        """`get_media_features` for a prompt: each clip's batch row from the `<motion>` placeholders (one marker's
        worth per clip), and the instruction tokens (`guidance_mask`) by default every attended token that is not a
        placeholder. Runs no language model, so a stage that trains only the motion path (e.g. the asked-span
        head alone) calls this instead of `forward`."""
        reference = media_inputs.get("motion_values")
        reference = media_inputs.get("pixel_values_videos") if reference is None else reference
        num_clips = reference.shape[0]
        if not bool(placeholder_mask.any()):
            raise ValueError(
                f"Got media for {num_clips} clip(s) but the prompt has no `<motion>` placeholder token "
                f"(id {self.config.motion_token_id}); put one `<motion>` marker per clip in the text and let the "
                "processor expand it."
            )
        clip_rows = self.clip_rows(placeholder_mask, num_clips)
        if guidance_mask is None:
            guidance_mask = ~placeholder_mask
            if attention_mask is not None and attention_mask.dim() == 2:
                guidance_mask = guidance_mask & attention_mask.bool()
        return self.get_media_features(inputs_embeds, guidance_mask, clip_rows, **media_inputs)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        frame_mask: torch.Tensor | None = None,
        motion_values: torch.FloatTensor | None = None,
        motion_mask: torch.Tensor | None = None,
        frame_timestamps: torch.FloatTensor | None = None,
        guidance_mask: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> LlamoModelOutputWithPast:
        r"""
        pixel_values_videos (`torch.FloatTensor` of shape `(num_clips, frames, channels, height, width)`, *optional*):
            Video frames per clip, as the processor prepares them.
        frame_mask (`torch.Tensor` of shape `(num_clips, frames)`, *optional*):
            1 on real video frames, 0 on padding (all zeros for a clip without video).
        motion_values (`torch.FloatTensor` of shape `(num_clips, frames, motion_feature_dim)`, *optional*):
            Canonical motion features per clip.
        motion_mask (`torch.Tensor` of shape `(num_clips, frames)`, *optional*):
            1 on real motion frames, 0 on padding (all zeros for a clip without motion).
        frame_timestamps (`torch.FloatTensor` of shape `(num_clips, frames)`, *optional*):
            Time of every frame in seconds (the clip's shared timeline); defaults to `index / motion_fps`.
        guidance_mask (`torch.Tensor` of shape `(batch_size, seq_len)`, *optional*):
            1 on the instruction tokens that guide key-frame selection; defaults to every attended,
            non-placeholder token.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of `input_ids` or `inputs_embeds`.")
        # The checks below read values back to the host; decode steps (a filled cache, ids the model generated
        # itself) skip them so that generation on an accelerator does not wait on the device every token.
        prefill = cache is None or cache.get_seq_length() == 0
        if (
            prefill
            and input_ids is not None
            and input_ids.numel()
            and int(input_ids.max()) >= self.get_input_embeddings().num_embeddings
        ):
            raise ValueError(
                f"`input_ids` holds token id {int(input_ids.max())} but the language model has "
                f"{self.get_input_embeddings().num_embeddings} embeddings; resize them after adding tokens."
            )
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)

        has_media = motion_values is not None or pixel_values_videos is not None
        placeholder_mask = self.get_placeholder_mask(input_ids, inputs_embeds)
        media = LlamoMediaOutput()
        if has_media:
            media = self.prompt_media_features(
                inputs_embeds, placeholder_mask, attention_mask, guidance_mask,
                pixel_values_videos=pixel_values_videos, frame_mask=frame_mask, motion_values=motion_values,
                motion_mask=motion_mask, frame_timestamps=frame_timestamps,
            )
            if media.text_embeds_delta is not None:
                inputs_embeds = inputs_embeds + media.text_embeds_delta.to(inputs_embeds.dtype)
            key_frame_embeds = media.key_frame_embeds.to(inputs_embeds.device, inputs_embeds.dtype)
            inputs_embeds = inputs_embeds.masked_scatter(placeholder_mask[..., None], key_frame_embeds.reshape(-1))
        elif prefill and bool(placeholder_mask.any()):
            # Decode steps may legitimately emit the token; a prompt with placeholders but no media is a mistake.
            raise ValueError(
                f"The prompt holds {int(placeholder_mask.sum())} `<motion>` placeholder tokens but no media were given; "
                "pass `motion_values` and/or `pixel_values_videos` (one clip per marker)."
            )

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return LlamoModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            key_frame_indices=media.key_frame_indices,
            evenly_spaced_key_frames=media.evenly_spaced_key_frames,
            frame_scores=media.frame_scores,
            window_radii=media.window_radii,
            asked_span_logits=media.asked_span_logits,
            repetition_counts=media.repetition_counts,
            estimator_loss=media.estimator_loss,
        )


class LlamoForConditionalGeneration(LlamoPreTrainedModel, GenerationMixin):
    """LLaMo with a language-modelling head: `forward` for training (E13), `generate` for answers (E12)."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: LlamoConfig):
        super().__init__(config)
        self.model = LlamoModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def set_paper_trainable_parameters(self, train_language_model: bool = True):
        """The paper's trainable set (SPEC.md section 4): encoders frozen; enhancer, Cross Talker, projector,
        estimator and (unless `train_language_model=False`, e.g. when peft LoRA handles it) the language model
        trained. Returns the number of trainable parameters."""
        self.requires_grad_(True)
        self.model.frame_encoder.vision_tower.requires_grad_(False)
        self.model.motion_encoder.requires_grad_(not self.config.freeze_motion_encoder)
        if not train_language_model:
            self.model.language_model.requires_grad_(False)
            self.lm_head.requires_grad_(False)
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        frame_mask: torch.Tensor | None = None,
        motion_values: torch.FloatTensor | None = None,
        motion_mask: torch.Tensor | None = None,
        frame_timestamps: torch.FloatTensor | None = None,
        guidance_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        key_frame_targets: torch.Tensor | None = None,
        asked_frame_targets: torch.Tensor | None = None,
        count_targets: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> LlamoCausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*):
            Next-token targets; -100 on prompt and placeholder positions so only answers are learned (E13).
        key_frame_targets (`torch.Tensor` of shape `(num_clips, frames)`, *optional*):
            1 on the frames of each clip's timeline that the question is about (`LlamoDataCollator(...,
            key_frame_targets=True)` builds them); with labels and `config.key_frame_grounding_weight > 0` they add
            `key_frame_grounding_loss` to the loss.
        asked_frame_targets (`torch.Tensor` of shape `(num_clips, frames)`, *optional*):
            1 on the frames of the stretch each clip's question asks about (`LlamoDataCollator(...,
            asked_frame_targets=True)`); with `config.use_asked_span_head` they add `asked_span_loss`, weighted by
            `config.asked_span_loss_weight`, to the loss (given labels).
        count_targets (`torch.Tensor` of shape `(num_clips,)`, *optional*):
            The count each clip's question asks for, 0 where it asks none (`LlamoDataCollator(...,
            count_targets=True)`); with `config.use_count_head` they add `repetition_count_loss`, weighted by
            `config.count_loss_weight`, to the loss (given labels).
        See [`LlamoModel.forward`] for the media arguments.
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            pixel_values_videos=pixel_values_videos,
            frame_mask=frame_mask,
            motion_values=motion_values,
            motion_mask=motion_mask,
            frame_timestamps=frame_timestamps,
            guidance_mask=guidance_mask,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])

        loss = None
        if labels is not None:  # E13: answer tokens only, plus the estimator's auxiliary loss
            loss = self.answer_loss(hidden_states, labels, **kwargs)
            if outputs.estimator_loss is not None:
                loss = loss + self.config.estimator_loss_weight * outputs.estimator_loss
        grounding_loss = None
        if key_frame_targets is not None and outputs.frame_scores is not None and self.config.key_frame_grounding_weight > 0:
            grounding_loss = key_frame_grounding_loss(outputs.frame_scores, key_frame_targets,
                                                      self.config.key_frame_grounding_mode)
            if loss is not None and grounding_loss is not None:
                loss = loss + self.config.key_frame_grounding_weight * grounding_loss
        span_loss = None
        if asked_frame_targets is not None and outputs.asked_span_logits is not None:
            span_loss = asked_span_loss(outputs.asked_span_logits, asked_frame_targets)
            if loss is not None and span_loss is not None:
                loss = loss + self.config.asked_span_loss_weight * span_loss
        count_loss = None
        if count_targets is not None and outputs.repetition_counts is not None:
            count_loss = repetition_count_loss(outputs.repetition_counts, count_targets)
            if loss is not None and count_loss is not None:
                loss = loss + self.config.count_loss_weight * count_loss
        return LlamoCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            key_frame_indices=outputs.key_frame_indices,
            evenly_spaced_key_frames=outputs.evenly_spaced_key_frames,
            frame_scores=outputs.frame_scores,
            window_radii=outputs.window_radii,
            asked_span_logits=outputs.asked_span_logits,
            repetition_counts=outputs.repetition_counts,
            estimator_loss=outputs.estimator_loss,
            grounding_loss=grounding_loss,
            asked_span_loss=span_loss,
            count_loss=count_loss,
        )

    def answer_loss(self, hidden_states: torch.Tensor, labels: torch.LongTensor, **kwargs) -> torch.Tensor:
        """E13's next-token NLL, with the LM head applied only at the positions whose next token is labelled.

        The same value as the usual loss over full logits (same positions, same reduction, `num_items_in_batch`
        honoured), but answers are a few tokens of each prompt, and projecting every position onto the vocabulary and
        back-propagating a full log-softmax is a large share of a training step (`benchmarks/bench_train.py`: the
        step takes 0.80-0.83x as long without it on CPU). So the loss does not
        depend on `logits_to_keep`, and a training loop that does not read the logits passes `logits_to_keep=1`.
        """
        shift_labels = F.pad(labels.to(hidden_states.device), (0, 1), value=-100)[:, 1:]
        labelled = shift_labels != -100
        answer_logits = self.lm_head(hidden_states[labelled])
        return self.loss_function(logits=answer_logits, labels=None, shift_labels=shift_labels[labelled],
                                  vocab_size=self.config.text_config.vocab_size, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, cache=None, attention_mask=None,
                                      inputs_embeds=None, is_first_iteration=False, **kwargs):
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            cache=cache,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        # Media live in the KV cache after prefill: never re-encode them on decode steps.
        if not is_first_iteration and kwargs.get("use_cache", True):
            for name in PREFILL_ONLY_INPUT_NAMES:
                model_inputs.pop(name, None)
        return model_inputs

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """Beam search / `num_return_sequences`: rows are repeated, so each row's block of clips is repeated too."""
        if expand_size == 1:
            return input_ids, model_kwargs
        clip_inputs = {name: model_kwargs.pop(name) for name in CLIP_INPUT_NAMES if model_kwargs.get(name) is not None}
        if clip_inputs and input_ids is None:
            raise ValueError("Expanding media for beam search / num_return_sequences needs `input_ids`.")
        if clip_inputs:
            # Clips are stored row after row; repeat each row's block of clips `expand_size` times in place.
            per_row = (input_ids == self.config.motion_token_id).long().sum(-1) // self.config.num_key_frames
            starts = (torch.cumsum(per_row, 0) - per_row).tolist()
            order = [i for start, n in zip(starts, per_row.tolist()) for _ in range(expand_size) for i in range(start, start + n)]
            for name, value in clip_inputs.items():
                clip_inputs[name] = value[torch.tensor(order, dtype=torch.long, device=value.device)]
        input_ids, model_kwargs = super()._expand_inputs_for_generation(
            expand_size=expand_size, is_encoder_decoder=is_encoder_decoder, input_ids=input_ids, **model_kwargs
        )
        model_kwargs.update(clip_inputs)
        return input_ids, model_kwargs


__all__ = ["LlamoPreTrainedModel", "LlamoModel", "LlamoForConditionalGeneration"]
