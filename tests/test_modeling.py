"""LlamoConfig / LlamoModel / LlamoForConditionalGeneration on tiny random configs (CPU, seconds)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, LlamaForCausalLM

from modeling_llamo import LlamoConfig, LlamoForConditionalGeneration, LlamoModel

from .conftest import MOTION_DIM, MOTION_TOKEN_ID, NUM_KEY_FRAMES, clip_inputs, make_prompt, tiny_config

# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------


def test_config_round_trip(tmp_path):
    config = tiny_config(frame_selection="uniform", use_enhancer=False, num_key_frames=8)
    config.save_pretrained(tmp_path)
    loaded = LlamoConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.text_config.hidden_size == 32 and loaded.vision_config.model_type == "siglip_vision_model"
    assert AutoConfig.from_pretrained(tmp_path).__class__ is LlamoConfig


def test_config_defaults_reproduce_the_paper():
    config = LlamoConfig()
    assert config.num_key_frames == 16 and config.num_segments == 8
    assert config.frame_selection == "text_guided"
    assert config.use_enhancer and config.use_adaptive_context and config.use_bidirectional_fusion
    assert config.freeze_vision_tower
    assert config.text_config.model_type == "llama"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_size": 30}, "divisible"),
        ({"frame_selection": "random"}, "frame_selection"),
        ({"motion_encoder_type": "gru"}, "motion_encoder_type"),
        ({"num_key_frames": 0}, "num_key_frames"),
        ({"motion_token_id": 500}, "motion_token_id"),
        ({"estimator_loss_weight": -1.0}, "estimator_loss_weight"),
        ({"key_frame_exploration": -0.5}, "key_frame_exploration"),
        ({"key_frame_grounding_weight": -0.1}, "key_frame_grounding_weight"),
        ({"key_frame_grounding_mode": "peak"}, "key_frame_grounding_mode"),
        ({"key_frame_rule": "asked_span"}, "use_asked_span_head"),
        ({"use_asked_span_head": True, "asked_span_loss_weight": -1.0}, "asked_span_loss_weight"),
        ({"use_count_head": True, "count_word_token_ids": [5, 6]}, "use_asked_span_head"),
        ({"use_asked_span_head": True, "use_count_head": True}, "count_word_token_ids"),
        ({"use_asked_span_head": True, "use_count_head": True, "count_word_token_ids": [5, 500]}, "vocab_size"),
        ({"count_loss_weight": -1.0}, "count_loss_weight"),
    ],
)
def test_invalid_config_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


# ---------------------------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("video, motion", [(False, True), (True, False), (True, True), (False, False)])
def test_forward_shapes_and_loss(model, video, motion):
    has_media = video or motion
    ids = torch.tensor([make_prompt(clips=1 if has_media else 0)])
    media = clip_inputs(frames=10, video=video, motion=motion)
    out = model(input_ids=ids, labels=ids, **media)
    assert out.logits.shape == (1, ids.shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(out.loss)
    if has_media:
        assert out.key_frame_indices.shape == (1, NUM_KEY_FRAMES)
        assert out.frame_scores.shape == (1, 10)
        assert out.window_radii.shape == (1, NUM_KEY_FRAMES)
    else:
        assert out.key_frame_indices is None
    # The estimator's auxiliary loss exists exactly when a clip has both video and motion.
    assert (out.estimator_loss is not None) == (video and motion)


def test_estimator_loss_is_added_to_the_language_loss(model):
    ids = torch.tensor([make_prompt()])
    out = model(input_ids=ids, labels=ids, **clip_inputs(video=True, motion=True))
    lm_only = model.loss_function(logits=out.logits, labels=ids, vocab_size=model.config.text_config.vocab_size)
    torch.testing.assert_close(out.loss, lm_only + model.config.estimator_loss_weight * out.estimator_loss)


def test_answer_loss_equals_the_full_logits_loss_whatever_logits_to_keep(model):
    # The loss projects only labelled positions onto the vocabulary (answer_loss); it must be the usual E13 loss
    # over full logits, with the same gradients, and not depend on which logits the caller asks back.
    ids = torch.tensor([make_prompt(), make_prompt()])
    labels = ids.clone()
    labels[0, :-3] = -100  # answer-only labels of different lengths, as the collator writes them
    labels[1, :-5] = -100
    media = clip_inputs(num_clips=2, motion=True)
    projector = model.model.multi_modal_projector.linear_2.weight
    vocab = model.config.text_config.vocab_size
    for num_items in (None, torch.tensor(11)):
        extra = {} if num_items is None else {"num_items_in_batch": num_items}
        full = model(input_ids=ids, **media)
        reference = model.loss_function(logits=full.logits, labels=labels, vocab_size=vocab, **extra)
        reference_grad = torch.autograd.grad(reference, projector)[0]
        for keep in (0, 1):
            out = model(input_ids=ids, labels=labels, logits_to_keep=keep, **media, **extra)
            assert out.logits.shape[1] == (ids.shape[1] if keep == 0 else 1)
            torch.testing.assert_close(out.loss, reference)
            grad = torch.autograd.grad(out.loss, projector)[0]
            torch.testing.assert_close(grad, reference_grad)


def test_inputs_embeds_equal_input_ids(model):
    ids = torch.tensor([make_prompt()])
    media = clip_inputs(video=True, motion=True)
    from_ids = model(input_ids=ids, **media).logits
    embeds = model.get_input_embeddings()(ids)
    guidance = (ids != MOTION_TOKEN_ID).long()
    from_embeds = model(inputs_embeds=embeds, guidance_mask=guidance, **media).logits
    torch.testing.assert_close(from_ids, from_embeds)


def bare_language_model(model):
    lm = LlamaForCausalLM(model.config.text_config).eval()
    state = {f"model.{k}": v for k, v in model.model.language_model.state_dict().items()}
    state["lm_head.weight"] = model.lm_head.weight
    lm.load_state_dict(state)
    return lm


def test_text_only_equals_bare_language_model(model):
    lm = bare_language_model(model)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    torch.testing.assert_close(model(input_ids=ids).logits, lm(input_ids=ids).logits, rtol=0, atol=0)
    ours = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
    theirs = lm.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
    assert ours.tolist() == theirs.tolist()


def test_untrained_text_gate_leaves_instruction_embeddings_intact(model):
    """E11: the zero-initialised gate means an untrained Cross Talker changes nothing before the first clip."""
    lm = bare_language_model(model)
    ids = torch.tensor([make_prompt(prefix=(5, 6, 7, 8))])
    first_placeholder = ids[0].tolist().index(MOTION_TOKEN_ID)
    with_media = model(input_ids=ids, **clip_inputs(video=True, motion=True)).logits
    bare = lm(input_ids=ids).logits
    torch.testing.assert_close(with_media[:, :first_placeholder], bare[:, :first_placeholder], rtol=0, atol=0)
    # Media do change what comes after the placeholders.
    assert not torch.allclose(with_media[:, -1], bare[:, -1])


# ---------------------------------------------------------------------------------------------------------------
# Key frames
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("selection", ["text_guided", "uniform"])
def test_key_frames_respect_masks_and_k(selection):
    torch.manual_seed(0)
    model = LlamoForConditionalGeneration(tiny_config(frame_selection=selection)).eval()
    ids = torch.tensor([make_prompt(), make_prompt()])
    media = clip_inputs(num_clips=2, frames=12, seed=1)
    media["motion_mask"][0, 7:] = 0  # 7 valid frames
    media["motion_mask"][1, 3:] = 0  # 3 valid frames < K
    media["motion_values"][0, 7:] = 1e3  # padding with extreme values must still never be chosen
    out = model(input_ids=ids, **media)
    first, second = out.key_frame_indices.tolist()
    assert len(first) == NUM_KEY_FRAMES and max(first) < 7 and first == sorted(first) and len(set(first)) == NUM_KEY_FRAMES
    assert second == sorted(second) and set(second) == {0, 1, 2}  # fewer than K frames: all kept, repeated in order
    assert torch.all(out.frame_scores[0, 7:] == 0) and torch.all(out.frame_scores[1, 3:] == 0)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_key_frame_exploration_samples_frames_in_proportion_to_their_scores_while_training(tau):
    """Gumbel-top-K with K = 1 picks frame j with probability s_j^(1/tau) / sum s^(1/tau); padding never, and
    evaluation keeps the plain top-K (the paper's E6)."""
    from modeling_llamo.modeling_llamo import LlamoCrossTalker

    torch.manual_seed(0)
    talker = LlamoCrossTalker(tiny_config(num_key_frames=1, key_frame_exploration=tau))
    scores = torch.tensor([0.1, 0.4, 0.2, 0.3, 0.0, 0.0]).repeat(20000, 1)
    frame_mask = torch.tensor([1, 1, 1, 1, 1, 0]).repeat(20000, 1)  # frame 4 valid with score 0, frame 5 padding
    has_text = torch.ones(20000, dtype=torch.bool)
    picked = talker.train().select_key_frames(scores, frame_mask, has_text)[0][:, 0]
    frequency = torch.bincount(picked, minlength=6).float() / len(picked)
    expected = scores[0] ** (1 / tau) / (scores[0] ** (1 / tau)).sum()
    assert torch.allclose(frequency, expected, atol=0.015), (frequency, expected)
    assert frequency[5] == 0
    assert torch.all(talker.eval().select_key_frames(scores, frame_mask, has_text)[0] == 1)


def test_key_frame_exploration_keeps_k_distinct_valid_frames_in_time_order():
    torch.manual_seed(0)
    model = LlamoForConditionalGeneration(tiny_config(key_frame_exploration=1.0)).train()
    ids = torch.tensor([make_prompt(), make_prompt()])
    media = clip_inputs(num_clips=2, frames=12, seed=1)
    media["motion_mask"][0, 9:] = 0
    draws = {tuple(model(input_ids=ids, **media).key_frame_indices[0].tolist()) for _ in range(8)}
    assert len(draws) > 1  # training samples; the untrained scores would give one top-K every time
    for frames in draws:
        assert list(frames) == sorted(set(frames)) and len(frames) == NUM_KEY_FRAMES and max(frames) < 9
    model.eval()
    assert len({tuple(model(input_ids=ids, **media).key_frame_indices[0].tolist()) for _ in range(3)}) == 1


@pytest.mark.parametrize("training", [False, True])
def test_coverage_frames_are_evenly_spaced_and_the_rest_follow_the_scores(training):
    """`num_coverage_frames` C: the C evenly spaced frames are always among the K, the other K - C are the top
    scores among the rest (in training too, where exploration is on), all distinct and in time order; the
    returned mask marks exactly the evenly spaced ones."""
    from modeling_llamo.modeling_llamo import LlamoCrossTalker, uniform_frame_indices

    torch.manual_seed(0)
    talker = LlamoCrossTalker(tiny_config(num_key_frames=4, num_coverage_frames=2, key_frame_exploration=0.5))
    talker.train(training)
    frame_mask = torch.ones(2, 20, dtype=torch.long)
    frame_mask[1, 12:] = 0
    scores = torch.zeros(2, 20)
    scores[:, 1:3] = torch.tensor([0.5, 0.4])  # the question's favourites: two neighbouring early frames
    has_text = torch.ones(2, dtype=torch.bool)
    coverage = uniform_frame_indices(frame_mask, 2).tolist()
    assert coverage == [[5, 15], [3, 9]]
    for _ in range(5 if training else 1):
        picked, evenly_spaced = talker.select_key_frames(scores, frame_mask, has_text)
        for row, (frames, marks) in enumerate(zip(picked.tolist(), evenly_spaced.tolist())):
            assert frames == sorted(set(frames)) and len(frames) == 4 and max(frames) < frame_mask[row].sum()
            assert [frame for frame, mark in zip(frames, marks) if mark] == coverage[row]
            if not training:  # plain top-K of the rest: the two favourites
                assert set(frames) == set(coverage[row]) | {1, 2}
    talker.config.num_coverage_frames = 0  # the paper's top-K: the favourites and the next-best (ties: lowest)
    picked, evenly_spaced = talker.eval().select_key_frames(scores, frame_mask, has_text)
    assert {1, 2} <= set(picked[0].tolist()) and not evenly_spaced.any()
    talker.config.num_coverage_frames = 4  # C = K is uniform selection
    picked, evenly_spaced = talker.select_key_frames(scores, frame_mask, has_text)
    assert picked.tolist() == uniform_frame_indices(frame_mask, 4).tolist() and evenly_spaced.all()
    talker.config.num_coverage_frames = 2  # a clip without instruction tokens falls back to evenly spaced frames
    picked, evenly_spaced = talker.select_key_frames(scores, frame_mask, torch.tensor([True, False]))
    assert picked[1].tolist() == uniform_frame_indices(frame_mask, 4)[1].tolist()
    assert evenly_spaced[1].all() and evenly_spaced[0].sum() == 2


def test_score_quantile_key_frames_spread_over_the_score_mass():
    """`key_frame_rule="score_quantiles"`: the question-picked frames sit at evenly spaced quantiles of the score
    mass: spread evenly over a stretch holding all of it (where top-K would bunch on its peaks), evenly over the
    clip when scores are flat or zero, distinct and in time order even when one frame holds most of the mass, and
    never on padding or on a coverage frame."""
    from modeling_llamo.modeling_llamo import LlamoCrossTalker, score_quantile_indices, uniform_frame_indices

    frame_mask = torch.ones(4, 40, dtype=torch.long)
    frame_mask[3, 24:] = 0
    scores = torch.full((4, 40), 1e-9)
    scores[0, 20:32] = 1.0  # all the mass on frames 20-31, flat there
    scores[0, 27] = 1.0 + 1e-3  # a tiny peak: top-K's favourite, irrelevant to quantiles
    scores[1] = 0.0  # no mass at all: evenly spaced
    scores[2, 5] = 100.0  # one frame holds nearly all: it and its right-hand neighbours, distinct
    scores[3] = 1.0  # flat on the 24 valid frames
    picked = score_quantile_indices(scores, frame_mask.bool(), 4)
    assert picked[0].tolist() == [21, 24, 27, 30]  # quantiles (k + 0.5) / 4 of 12 equal frames: 1.5, 4.5, ...
    assert picked[1].tolist() == uniform_frame_indices(frame_mask[1:2], 4)[0].tolist()
    assert picked[2].tolist() == [5, 6, 7, 8]
    assert picked[3].tolist() == uniform_frame_indices(frame_mask[3:4], 4)[0].tolist() and max(picked[3]) < 24
    crowded = torch.zeros(1, 40)
    crowded[0, 38] = 1.0  # the mass at the very end: the picks keep room for each other before it
    assert score_quantile_indices(crowded, torch.ones(1, 40, dtype=torch.bool), 4)[0].tolist() == [36, 37, 38, 39]

    talker = LlamoCrossTalker(tiny_config(num_key_frames=6, num_coverage_frames=2, key_frame_rule="score_quantiles"))
    has_text = torch.ones(4, dtype=torch.bool)
    keys, evenly_spaced = talker.eval().select_key_frames(scores, frame_mask, has_text)
    for row in range(4):
        frames, marks = keys[row].tolist(), evenly_spaced[row].tolist()
        coverage = uniform_frame_indices(frame_mask[row:row + 1], 2)[0].tolist()
        assert frames == sorted(set(frames)) and max(frames) < frame_mask[row].sum()
        assert [frame for frame, mark in zip(frames, marks) if mark] == coverage
    spread = [f for f, m in zip(keys[0].tolist(), evenly_spaced[0].tolist()) if not m]
    assert all(20 <= f < 32 for f in spread) and min(b - a for a, b in zip(spread, spread[1:])) >= 2
    talker.config.key_frame_rule = "top_k"  # the paper's rule bunches the same picks around the peak
    top = [f for f, m in zip(*[t[0].tolist() for t in talker.select_key_frames(scores, frame_mask, has_text)]) if not m]
    assert 27 in top and max(top) - min(top) < 12
    with pytest.raises(ValueError, match="key_frame_rule"):
        tiny_config(key_frame_rule="peaks")
    with pytest.raises(ValueError, match="key_frame_exploration"):
        tiny_config(key_frame_rule="score_quantiles", key_frame_exploration=1.0)


def test_score_span_key_frames_keep_one_spacing_and_fixed_slots():
    """`key_frame_rule="score_span"`: the question-picked frames are evenly spaced in time between the score mass's
    outer quantiles (where quantiles crowd them on the dense part), evenly over the clip when scores are flat,
    distinct when the span is too short for them, and they fill the first K - C slots, the coverage frames the
    last C, in every clip, whatever the times."""
    from modeling_llamo.modeling_llamo import LlamoCrossTalker, score_quantile_indices, score_span_indices
    from modeling_llamo.modeling_llamo import uniform_frame_indices

    everywhere = torch.ones(3, 60, dtype=torch.bool)
    scores = torch.full((3, 60), 1e-9)
    scores[0, 10:20] = 3.0  # a dense stretch, then a sparse one: the quantiles crowd frames 10-19
    scores[0, 20:50] = 1.0
    scores[1] = 1.0  # flat: evenly spaced over the clip
    scores[2, 30] = 100.0  # one frame holds nearly all: a span too short, made distinct
    span = score_span_indices(scores, everywhere, 5)
    quantiles = score_quantile_indices(scores, everywhere, 5)
    first, last = quantiles[0, 0].item(), quantiles[0, -1].item()
    assert span[0, 0].item() == first and span[0, -1].item() == last  # the same ends as the quantiles
    gaps = torch.diff(span[0]).tolist()
    assert max(gaps) - min(gaps) <= 1  # one spacing (to a frame), where the quantiles' gaps differ
    assert max(torch.diff(quantiles[0]).tolist()) - min(torch.diff(quantiles[0]).tolist()) > 1
    assert span[1].tolist() == [6, 18, 30, 42, 54]  # flat: from the frame holding the 0.1 quantile to the 0.9 one
    assert span[2].tolist() == sorted(set(span[2].tolist())) and 30 in span[2].tolist()

    talker = LlamoCrossTalker(tiny_config(num_key_frames=7, num_coverage_frames=2, key_frame_rule="score_span"))
    frame_mask = torch.ones(3, 60, dtype=torch.long)
    frame_mask[1, 40:] = 0
    keys, evenly_spaced = talker.eval().select_key_frames(scores, frame_mask, torch.ones(3, dtype=torch.bool))
    for row in range(3):
        frames, marks = keys[row].tolist(), evenly_spaced[row].tolist()
        coverage = uniform_frame_indices(frame_mask[row:row + 1], 2)[0].tolist()
        assert marks == [False] * 5 + [True] * 2 and frames[5:] == coverage  # fixed slots, not time order
        assert frames[:5] == sorted(set(frames[:5])) and not set(frames[:5]) & set(coverage)
        assert max(frames) < frame_mask[row].sum()


def test_heaviest_run_is_the_stretch_with_the_largest_sum():
    """`heaviest_run`: the consecutive valid frames with the largest sum of gains (checked against every run), a
    short doubtful gap bridged, a long one not; padding never joins a run, wherever it lies in the mask."""
    from modeling_llamo.modeling_llamo import heaviest_run

    generator = torch.Generator().manual_seed(0)
    gains = torch.rand(6, 30, generator=generator) - 0.55
    frame_mask = torch.ones(6, 30, dtype=torch.bool)
    frame_mask[1, 20:] = False
    frame_mask[2, :5] = False  # padding first: ranks count valid frames only
    first, last = heaviest_run(gains, frame_mask)
    for row in range(6):
        valid = gains[row][frame_mask[row]]
        best = max((float(valid[i:j + 1].sum()), i, j) for i in range(len(valid)) for j in range(i, len(valid)))
        assert (first[row].item(), last[row].item()) == best[1:], row
    bridged = torch.tensor([[-0.4, 0.4, 0.4, -0.3, 0.4, 0.4, -0.4, -0.4]])
    assert [t.item() for t in heaviest_run(bridged, torch.ones_like(bridged, dtype=torch.bool))] == [1, 5]
    split = torch.tensor([[0.4, 0.4, -0.4, -0.4, -0.4, 0.3, 0.4, 0.4]])
    assert [t.item() for t in heaviest_run(split, torch.ones_like(split, dtype=torch.bool))] == [5, 7]


def test_asked_span_key_frames_are_evenly_spaced_over_the_marked_stretch_in_fixed_slots():
    """`key_frame_rule="asked_span"`: the K - C question-picked frames evenly spaced over the run the asked-span
    head marks (the E6 scores play no part), never on a coverage frame or padding, distinct when the run is
    shorter than them, in slots 0..K-C-1 with the coverage frames after."""
    from modeling_llamo.modeling_llamo import LlamoCrossTalker, asked_span_indices, uniform_frame_indices

    logits = torch.full((3, 60), -6.0)
    logits[0, 20:40] = 6.0
    logits[1, 5:35] = 6.0
    logits[1, 12] = -1.0  # one doubtful frame inside: bridged
    logits[2, 50] = 6.0  # a run of one frame: its neighbours fill in
    frame_mask = torch.ones(3, 60, dtype=torch.bool)
    frame_mask[1, 45:] = False
    everywhere = frame_mask.clone()
    picks = asked_span_indices(logits, frame_mask, everywhere, 5)
    assert picks[0].tolist() == [20, 25, 30, 34, 39]
    assert picks[1, 0].item() == 5 and picks[1, -1].item() == 34
    assert picks[2].tolist() == sorted(set(picks[2].tolist())) and 50 in picks[2].tolist()

    config = tiny_config(num_key_frames=7, num_coverage_frames=2, key_frame_rule="asked_span",
                         use_asked_span_head=True)
    talker = LlamoCrossTalker(config).eval()
    scores = torch.rand(3, 60)  # anything: the rule reads the head's logits
    keys, evenly_spaced = talker.select_key_frames(scores, frame_mask.long(), torch.ones(3, dtype=torch.bool), logits)
    for row in range(3):
        frames, marks = keys[row].tolist(), evenly_spaced[row].tolist()
        coverage = uniform_frame_indices(frame_mask[row:row + 1].long(), 2)[0].tolist()
        assert marks == [False] * 5 + [True] * 2 and frames[5:] == coverage
        assert frames[:5] == sorted(set(frames[:5])) and not set(frames[:5]) & set(coverage)
        assert all(frame_mask[row, frame] for frame in frames)
    assert all(20 <= frame < 40 for frame in keys[0, :5].tolist())


def test_asked_span_loss_is_the_frames_binary_cross_entropy_and_trains_the_head_alone():
    """`asked_span_loss`: mean BCE over the valid frames of clips that have an asked stretch (padding and clips
    without one left out); weighted into the loss, and without labels a model still returns it (a stage that
    trains the head alone); its gradient reaches the head."""
    import torch.nn.functional as F

    from modeling_llamo.modeling_llamo import asked_span_loss

    logits = torch.tensor([[2.0, -1.0, 0.5, torch.finfo(torch.float32).min], [1.0, 1.0, 1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # shorter than T: padded; clip 2 has none
    expected = F.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(asked_span_loss(logits, targets), expected)
    assert asked_span_loss(logits, torch.zeros(2, 4)) is None

    torch.manual_seed(0)
    model = LlamoForConditionalGeneration(tiny_config(use_asked_span_head=True, asked_span_loss_weight=0.5)).train()
    ids, media = torch.tensor([make_prompt()]), clip_inputs(frames=12)
    targets = torch.zeros(1, 12)
    targets[0, 3:7] = 1
    plain = model(input_ids=ids, labels=ids, **media)
    out = model(input_ids=ids, labels=ids, asked_frame_targets=targets, **media)
    assert plain.asked_span_loss is None and out.asked_span_logits.shape == (1, 12)
    torch.testing.assert_close(out.loss, plain.loss + 0.5 * out.asked_span_loss)
    torch.testing.assert_close(out.asked_span_loss, asked_span_loss(out.asked_span_logits, targets))
    out.asked_span_loss.backward()
    head = model.model.cross_talker.asked_span_head
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.out.parameters())
    # The same logits come from the motion path alone (no language model).
    inner = model.model.eval()
    media_only = inner.prompt_media_features(inner.get_input_embeddings()(ids), inner.get_placeholder_mask(ids, None),
                                             **media)
    torch.testing.assert_close(media_only.asked_span_logits, model.eval()(input_ids=ids, **media).asked_span_logits)
    assert LlamoForConditionalGeneration(tiny_config()).model.cross_talker.asked_span_head is None


COUNT_WORDS = [10, 11, 12, 13, 14, 15]  # stand-ins for "one" ... "six" in the tiny vocabulary


def test_count_head_reads_a_sum_of_densities_over_the_asked_span_and_writes_a_number_word():
    """`LlamoCountHead`: sum over frames of sigmoid(span logit) x density (padding and frames outside the span add
    nothing); `repetition_count_loss` is smooth L1 over the clips whose question asks a count, weighted into the
    loss, and trains the head's densities but not the span head; the last placeholder slot holds the language
    model's embedding of the reading's number word (between two words linearly, clamped), whatever the frames."""
    import torch.nn.functional as F

    from modeling_llamo.modeling_llamo import repetition_count_loss

    counts = torch.tensor([3.5, 7.0, 2.0])
    targets = torch.tensor([3.0, 0.0, 4.0])  # clip 2 asks no count
    torch.testing.assert_close(repetition_count_loss(counts, targets),
                               F.smooth_l1_loss(torch.tensor([3.5, 2.0]), torch.tensor([3.0, 4.0])))
    assert repetition_count_loss(counts, torch.zeros(3)) is None

    torch.manual_seed(0)
    config = tiny_config(use_asked_span_head=True, use_count_head=True, count_word_token_ids=COUNT_WORDS,
                         count_loss_weight=0.5)
    model = LlamoForConditionalGeneration(config).train()
    head = model.model.cross_talker.count_head
    assert float(head.density_bias.detach()) == head.initial_density
    ids, media = torch.tensor([make_prompt()]), clip_inputs(frames=12)
    media["motion_mask"] = torch.ones(1, 12, dtype=torch.long)
    media["motion_mask"][0, 10:] = 0
    plain = model(input_ids=ids, labels=ids, **media)
    out = model(input_ids=ids, labels=ids, count_targets=torch.tensor([4.0]), **media)
    assert plain.count_loss is None and out.repetition_counts.shape == (1,)
    torch.testing.assert_close(out.loss, plain.loss + 0.5 * out.count_loss)

    # The reading by hand: the head's densities on the enhanced features, weighted by the span's probabilities.
    seen = {}
    handle = head.register_forward_hook(lambda module, args, result: seen.update(args=args))
    model(input_ids=ids, **media)
    handle.remove()
    features, frame_mask, span_logits = seen["args"]
    hidden = head.context(head.norm(features), frame_mask)
    density = F.softplus(head.out(hidden).squeeze(-1) + head.density_bias)
    expected = (torch.sigmoid(span_logits) * frame_mask * density).sum(-1)
    torch.testing.assert_close(out.repetition_counts, expected)

    model.zero_grad()
    out.count_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.model.cross_talker.asked_span_head.parameters())

    inner = model.model
    words = inner.get_input_embeddings().weight[COUNT_WORDS]
    written = inner.count_word_embeds(torch.tensor([1.0, 2.25, 6.0, 40.0, -3.0]))
    torch.testing.assert_close(written, torch.stack([words[0], 0.75 * words[1] + 0.25 * words[2], words[5],
                                                     words[5], words[0]]))
    # What the language model receives in the last slot is that word; the other K - 1 slots are key frames.
    seen.clear()
    handle = inner.language_model.register_forward_pre_hook(lambda module, args, kwargs: seen.update(kwargs),
                                                            with_kwargs=True)
    with torch.no_grad():
        counts = model.eval()(input_ids=ids, **media).repetition_counts
    handle.remove()
    slots = seen["inputs_embeds"][0, ids[0] == MOTION_TOKEN_ID]
    assert slots.shape[0] == NUM_KEY_FRAMES
    torch.testing.assert_close(slots[-1], inner.count_word_embeds(counts)[0])
    assert LlamoForConditionalGeneration(tiny_config(use_asked_span_head=True)).model.cross_talker.count_head is None


def test_outputs_mark_the_evenly_spaced_key_frames():
    """`evenly_spaced_key_frames` (what `chat --show` draws in grey, via `llamo.inference.evenly_spaced_frames`):
    the C coverage frames under text-guided selection, none with C = 0, all under uniform selection and on
    clips too short to select from."""
    from llamo.inference import evenly_spaced_frames
    from modeling_llamo.modeling_llamo import uniform_frame_indices

    torch.manual_seed(0)
    ids = torch.tensor([make_prompt()])
    media = clip_inputs(frames=20, seed=2)

    def marked(**config):
        output = LlamoForConditionalGeneration(tiny_config(**config)).eval()(input_ids=ids, **media)
        return evenly_spaced_frames(output.key_frame_indices[0], output.evenly_spaced_key_frames[0]), output

    frames, output = marked(num_coverage_frames=2)
    assert frames == uniform_frame_indices(torch.ones(1, 20), 2)[0].tolist()
    assert set(frames) <= set(output.key_frame_indices[0].tolist())
    assert marked()[0] == []
    frames, output = marked(frame_selection="uniform")
    assert frames == sorted(set(output.key_frame_indices[0].tolist()))
    media["motion_mask"][:, 3:] = 0  # 3 valid frames < K: every one is kept, repeated
    assert marked(num_coverage_frames=2)[0] == [0, 1, 2]


def test_coverage_frames_cannot_outnumber_the_key_frames():
    with pytest.raises(ValueError, match="num_coverage_frames"):
        tiny_config(num_key_frames=4, num_coverage_frames=5)


def test_grounding_loss_is_minus_log_the_score_share_on_the_target_frames():
    from modeling_llamo.modeling_llamo import key_frame_grounding_loss

    scores = torch.tensor([[0.1, 0.3, 0.4, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]])
    targets = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # shorter than T: padded; clip 3 has none
    expected = -(torch.log(torch.tensor(0.7)) + torch.log(torch.tensor(0.25))) / 2
    torch.testing.assert_close(key_frame_grounding_loss(scores, targets), expected)
    assert key_frame_grounding_loss(scores, torch.zeros(3, 5)) is None


def test_even_grounding_is_the_kl_from_uniform_over_the_targets_and_prefers_spread_to_a_peak():
    """`kind="even"`: KL(uniform over the target frames || s / sum(s)); 0 only for scores spread evenly over the
    targets, above the share loss otherwise. Two clips with all their mass on the target have the same share loss
    (0) but the one peaked on a single target frame pays the even loss, which a count's even grid needs."""
    from modeling_llamo.modeling_llamo import key_frame_grounding_loss

    targets = torch.tensor([[0, 1, 1, 1, 1, 0]])
    spread = torch.tensor([[0.0, 0.25, 0.25, 0.25, 0.25, 0.0]])
    peaked = torch.tensor([[0.0, 0.7, 0.1, 0.1, 0.1, 0.0]])
    leaky = torch.tensor([[0.2, 0.15, 0.15, 0.15, 0.15, 0.2]])
    for scores in (spread, peaked):
        torch.testing.assert_close(key_frame_grounding_loss(scores, targets), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(key_frame_grounding_loss(spread, targets, "even"), torch.tensor(0.0), atol=1e-4, rtol=0)
    expected = -(torch.tensor([0.7, 0.1, 0.1, 0.1]).log().mean()) - torch.tensor(4.0).log()
    torch.testing.assert_close(key_frame_grounding_loss(peaked, targets, "even"), expected, atol=1e-4, rtol=0)
    assert key_frame_grounding_loss(leaky, targets, "even") >= key_frame_grounding_loss(leaky, targets) - 1e-4 > 0
    # Unnormalised scores (E6's max over tokens does not sum to 1) are normalised first.
    torch.testing.assert_close(key_frame_grounding_loss(3 * peaked, targets, "even"), expected, atol=1e-4, rtol=0)
    assert key_frame_grounding_loss(spread, torch.zeros(1, 6), "even") is None


def grounded_model_and_inputs(**overrides):
    """A tiny model in training mode with the grounding loss on, a prompt, a 12-frame clip and targets on 3-6."""
    torch.manual_seed(0)
    model = LlamoForConditionalGeneration(tiny_config(**overrides)).train()
    targets = torch.zeros(1, 12)
    targets[0, 3:7] = 1
    return model, torch.tensor([make_prompt()]), clip_inputs(frames=12), targets


def test_the_configured_grounding_mode_is_the_one_trained():
    """`LlamoConfig.key_frame_grounding_mode` picks the loss the forward adds, and its gradient reaches W_Q and W_K."""
    from modeling_llamo.modeling_llamo import key_frame_grounding_loss

    model, ids, media, targets = grounded_model_and_inputs(key_frame_grounding_weight=1.0,
                                                           key_frame_grounding_mode="even")
    out = model(input_ids=ids, labels=ids, key_frame_targets=targets, **media)
    scores = out.frame_scores.detach()
    torch.testing.assert_close(out.grounding_loss.detach(), key_frame_grounding_loss(scores, targets, "even"))
    assert not torch.isclose(out.grounding_loss.detach(), key_frame_grounding_loss(scores, targets, "share"))
    out.grounding_loss.backward()
    talker = model.model.cross_talker
    assert talker.w_q.weight.grad.abs().sum() > 0 and talker.w_k.weight.grad.abs().sum() > 0


def test_grounding_loss_is_weighted_into_the_loss_and_reaches_every_frames_score(model):
    """With `key_frame_grounding_weight` the loss gains `w * grounding_loss`, whose gradient alone (no answer loss
    back-propagated) trains W_Q and W_K."""
    grounded, ids, media, targets = grounded_model_and_inputs(key_frame_grounding_weight=0.5)
    plain = grounded(input_ids=ids, labels=ids, **media)
    assert plain.grounding_loss is None  # no targets, no term
    out = grounded(input_ids=ids, labels=ids, key_frame_targets=targets, **media)
    torch.testing.assert_close(out.loss, plain.loss + 0.5 * out.grounding_loss)
    share = (out.frame_scores[0, 3:7].sum() / out.frame_scores[0].sum()).detach()
    torch.testing.assert_close(out.grounding_loss.detach(), -share.log())
    (0.5 * out.grounding_loss).backward()
    talker = grounded.model.cross_talker
    assert talker.w_q.weight.grad.abs().sum() > 0 and talker.w_k.weight.grad.abs().sum() > 0
    # Off by default: the same targets change nothing.
    torch.testing.assert_close(model(input_ids=ids, labels=ids, key_frame_targets=targets, **media).loss,
                               model(input_ids=ids, labels=ids, **media).loss)


def test_text_guided_selection_follows_the_question(model):
    """Different instructions choose different frames from the same motion (the point of E5-E6)."""
    media = clip_inputs(frames=40, seed=3)
    chosen = set()
    for words in [(5, 6, 7), (20, 21, 22), (40, 41, 42), (60, 61, 62), (80, 81, 82)]:
        ids = torch.tensor([make_prompt(prefix=words)])
        chosen.add(tuple(model(input_ids=ids, **media).key_frame_indices[0].tolist()))
    assert len(chosen) > 1


def test_gradients_reach_wq_wk_and_only_the_trainable_set(model):
    model.train()
    trainable = model.set_paper_trainable_parameters()
    assert 0 < trainable < sum(p.numel() for p in model.parameters())
    ids = torch.tensor([make_prompt()])
    media = clip_inputs(frames=12, video=True, motion=True)
    out = model(input_ids=ids, labels=ids, **media)
    out.loss.backward()
    talker = model.model.cross_talker
    assert talker.w_q.weight.grad is not None and talker.w_q.weight.grad.abs().sum() > 0
    assert talker.w_k.weight.grad is not None and talker.w_k.weight.grad.abs().sum() > 0
    assert talker.window_head.weight.grad.abs().sum() > 0  # E7's relaxed window is differentiable
    assert model.model.text_gate.gate.grad.abs().sum() > 0  # the zero gate still learns
    assert all(p.grad is None for p in model.model.frame_encoder.vision_tower.parameters())
    assert model.model.frame_encoder.proj.weight.grad is not None
    assert model.model.motion_estimator.out.weight.grad.abs().sum() > 0  # auxiliary loss trains the estimator


def test_frozen_language_model_when_lora_will_train_it(model):
    model.set_paper_trainable_parameters(train_language_model=False)
    assert not any(p.requires_grad for p in model.model.language_model.parameters())
    assert all(p.requires_grad for p in model.model.cross_talker.parameters())


@pytest.mark.parametrize(
    "overrides",
    [
        {"frame_selection": "uniform"},
        {"use_enhancer": False},
        {"use_adaptive_context": False},
        {"use_bidirectional_fusion": False},
        {"motion_encoder_type": "conv"},
        {"vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "num_hidden_layers": 1,
                           "num_attention_heads": 4, "intermediate_size": 64, "image_size": 32, "patch_size": 8}},
    ],
)
def test_ablations_and_variants_run(overrides):
    torch.manual_seed(0)
    model = LlamoForConditionalGeneration(tiny_config(**overrides)).eval()
    ids = torch.tensor([make_prompt()])
    out = model(input_ids=ids, labels=ids, **clip_inputs(video=True, motion=True))
    assert torch.isfinite(out.loss) and out.key_frame_indices.shape == (1, NUM_KEY_FRAMES)


# ---------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("video, motion", [(False, True), (True, False), (True, True)])
def test_generate_with_each_modality_encodes_media_once(model, video, motion):
    calls = []
    hook = model.model.cross_talker.register_forward_hook(lambda *args: calls.append(1))
    ids = torch.tensor([make_prompt()])
    out = model.generate(input_ids=ids, max_new_tokens=5, do_sample=False, **clip_inputs(video=video, motion=motion))
    hook.remove()
    assert out.shape == (1, ids.shape[1] + 5)
    assert len(calls) == 1


def test_generate_matches_a_full_forward_without_cache(model):
    """KV-cache decoding gives the same greedy tokens as recomputing the whole prompt with media each step."""
    ids = torch.tensor([make_prompt()])
    media = clip_inputs(video=True, motion=True)
    cached = model.generate(input_ids=ids, max_new_tokens=5, do_sample=False, **media)
    seq = ids
    for _ in range(5):
        logits = model(input_ids=seq, **media).logits
        seq = torch.cat([seq, logits[:, -1:].argmax(-1)], dim=1)
    assert cached.tolist() == seq.tolist()


def test_sampling_beam_search_and_num_return_sequences(model):
    ids = torch.tensor([make_prompt(), make_prompt(prefix=(20, 21, 22))])
    media = clip_inputs(num_clips=2, video=True, motion=True)
    sampled = model.generate(input_ids=ids, max_new_tokens=4, do_sample=True, top_k=5, num_return_sequences=3, **media)
    assert sampled.shape == (6, ids.shape[1] + 4)
    beams = model.generate(input_ids=ids, max_new_tokens=4, num_beams=3, num_return_sequences=2, do_sample=False, **media)
    assert beams.shape == (4, ids.shape[1] + 4)
    # The best beam of each row equals a beam search of that row alone (rows keep their own clips).
    for row in range(2):
        alone = model.generate(
            input_ids=ids[row : row + 1], max_new_tokens=4, num_beams=3, do_sample=False,
            **{k: v[row : row + 1] for k, v in media.items()},
        )
        assert beams[2 * row].tolist() == alone[0].tolist()


def test_batched_generation_with_left_padding_equals_one_by_one(model):
    prompts = [make_prompt(prefix=(5, 6, 7, 8, 9, 10)), make_prompt(prefix=(20,)), make_prompt(prefix=(30, 31), clips=2)]
    frames = [10, 6, 8, 5]  # row 2 holds two clips
    clips = [clip_inputs(frames=n, video=True, motion=True, seed=i) for i, n in enumerate(frames)]
    singles = []
    clip_start = 0
    for prompt in prompts:
        n = prompt.count(MOTION_TOKEN_ID) // NUM_KEY_FRAMES
        row_clips = clips[clip_start : clip_start + n]
        clip_start += n
        media = pad_clips(row_clips)
        out = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=6, do_sample=False, **media)
        singles.append(out[0, len(prompt) :].tolist())

    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    batched = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, **pad_clips(clips))
    assert batched[:, width:].tolist() == singles


def pad_clips(clips):
    """Right-pads clips of different lengths into one batch with masks (what the processor does)."""
    frames = max(c["motion_values"].shape[1] for c in clips)
    out = {}
    for key in clips[0]:
        tensors = []
        for c in clips:
            pad = frames - c[key].shape[1]
            value = c[key]
            tensors.append(torch.cat([value, value.new_zeros(value.shape[0], pad, *value.shape[2:])], dim=1))
        out[key] = torch.cat(tensors)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------------


def test_save_load_round_trip_identical_logits(model, tmp_path):
    model.save_pretrained(tmp_path)
    files = os.listdir(tmp_path)
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    loaded = LlamoForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = torch.tensor([make_prompt()])
    media = clip_inputs(video=True, motion=True)
    torch.testing.assert_close(loaded(input_ids=ids, **media).logits, model(input_ids=ids, **media).logits, rtol=0, atol=0)
    assert all(not p.requires_grad for p in loaded.model.frame_encoder.vision_tower.parameters())


def test_auto_classes(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert type(AutoModelForImageTextToText.from_pretrained(tmp_path)) is LlamoForConditionalGeneration
    backbone = AutoModel.from_pretrained(tmp_path, dtype=torch.float32)
    assert type(backbone) is LlamoModel
    ids = torch.tensor([make_prompt()])
    media = clip_inputs()
    torch.testing.assert_close(
        backbone(input_ids=ids, **media).last_hidden_state, model.model(input_ids=ids, **media).last_hidden_state
    )
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageTextToText"].endswith("LlamoForConditionalGeneration")


def test_remote_code_load_without_the_package(model, tmp_path):
    """`trust_remote_code=True` from a saved folder in a process where `modeling_llamo` cannot be imported."""
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    assert (folder / "modeling_llamo.py").exists() and (folder / "configuration_llamo.py").exists()
    ids = torch.tensor([make_prompt()])
    media = clip_inputs(motion=True)
    torch.save({"ids": ids, **media, "logits": model(input_ids=ids, **media).logits}, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["modeling_llamo"] = None  # the package is not importable here
        sys.modules["processing_llamo"] = None
        import torch
        from transformers import AutoModelForImageTextToText
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        model = AutoModelForImageTextToText.from_pretrained({str(folder)!r}, trust_remote_code=True, dtype=torch.float32)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        logits = model(input_ids=expected["ids"], motion_values=expected["motion_values"],
                       motion_mask=expected["motion_mask"]).logits
        torch.testing.assert_close(logits, expected["logits"])
        print("REMOTE_OK")
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "REMOTE_OK" in result.stdout, result.stderr[-3000:]


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------


def test_placeholder_count_mismatch(model):
    ids = torch.tensor([make_prompt(clips=1)])
    with pytest.raises(ValueError, match=r"Found 4 `<motion>` placeholder tokens.*2 clip"):
        model(input_ids=ids, **clip_inputs(num_clips=2))
    broken = torch.tensor([make_prompt(clips=1)[:-6] + [13, 14, 15, 16, 17, 18]])  # 3 placeholders for 1 clip
    with pytest.raises(ValueError, match="placeholder"):
        model(input_ids=broken, **clip_inputs())


def test_wrong_motion_width(model):
    ids = torch.tensor([make_prompt()])
    with pytest.raises(ValueError, match=rf"\(num_clips, frames, {MOTION_DIM}\).*got \(1, 10, 7\)"):
        model(input_ids=ids, motion_values=torch.randn(1, 10, 7))


@pytest.mark.parametrize("key", ["motion_values", "pixel_values_videos"])
def test_nan_or_inf_in_inputs(model, key):
    ids = torch.tensor([make_prompt()])
    media = clip_inputs(video=True, motion=True)
    media[key].view(-1)[3] = float("nan")
    with pytest.raises(ValueError, match=f"`{key}` contains 1 NaN/Inf"):
        model(input_ids=ids, **media)


def test_media_without_placeholders(model):
    with pytest.raises(ValueError, match="no `<motion>` placeholder"):
        model(input_ids=torch.tensor([[5, 6, 7]]), **clip_inputs())


def test_placeholders_without_media(model):
    with pytest.raises(ValueError, match="no media were given"):
        model(input_ids=torch.tensor([make_prompt()]))


def test_clip_with_no_valid_frames(model):
    media = clip_inputs()
    media["motion_mask"].zero_()
    with pytest.raises(ValueError, match="neither valid video frames nor valid motion frames"):
        model(input_ids=torch.tensor([make_prompt()]), **media)
