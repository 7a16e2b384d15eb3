"""The ablation script (examples/ablate_demo.py) and the suite evaluation it shares with examples/evaluate_demo.py."""

import json
import os

import pytest
import torch

from llamo.data.motion_qa import generate_suite
from llamo.evaluation.suite import asked_segments, choice_correctness, count_within_one, sample_items
from llamo.training.tiny import tiny_model, tiny_processor

from .conftest import load_example


@pytest.fixture(scope="module")
def suite_and_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    data = root / "suite"
    generate_suite(data, num_sequences=24, seed=3, render_videos=False)
    processor = tiny_processor(num_key_frames=4, max_motion_frames=48)
    model = tiny_model(processor, seed=0)
    checkpoint = root / "tiny"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    return str(data), str(checkpoint)


def test_sample_items_is_seeded_and_respects_modality(suite_and_checkpoint):
    data, _ = suite_and_checkpoint
    choice, counting = sample_items(data, "train", limit=9, seed=1)
    again, _ = sample_items(data, "train", limit=9, seed=1)
    assert [item.id for item in choice] == [item.id for item in again] and len(choice) == 9
    assert {item.meta["query_type"] for item in choice} <= {"action", "direction", "body_part"}
    assert all(item.motion and item.video is None for item in choice)
    assert all(isinstance(item.answer, int) for item in counting) and len(counting) == 3
    with pytest.raises(FileNotFoundError, match="render_videos=True"):
        sample_items(data, "train", limit=4, modality="video")
    with pytest.raises(ValueError, match="modality"):
        sample_items(data, "train", limit=4, modality="audio")


def test_variants_flip_the_switches_they_name(suite_and_checkpoint):
    checkpoint = suite_and_checkpoint[1]
    ablate = load_example("ablate_demo")
    full = ablate.load_variant(checkpoint, ablate.VARIANTS["full"], batch_size=2)
    assert full.model.config.num_key_frames == 4 and full.model.model.enhancer is not None
    k8 = ablate.load_variant(checkpoint, ablate.VARIANTS["k8"], batch_size=2)
    assert k8.model.config.num_key_frames == 8 and k8.processor.num_key_frames == 8
    assert k8.model.model.cross_talker.num_key_frames == 8
    with pytest.raises(SystemExit, match="--init-from"):
        load_example("train_demo").main(["--init-from", checkpoint, "--config", "use_enhancer=false", "--data", suite_and_checkpoint[0]])
    assert ablate.load_variant(checkpoint, ablate.VARIANTS["no_enhancer"], batch_size=2).model.model.enhancer is None
    data, _ = suite_and_checkpoint
    choice, _ = sample_items(data, "test", limit=2)
    inputs = k8.model_inputs(choice)  # the prompts the harness scores: 8 placeholders per clip, and the model takes them
    assert ((inputs["input_ids"] == k8.processor.motion_token_id).sum(-1) == 8).all()
    with torch.no_grad():
        k8.model(**inputs)
    coverage = ablate.load_variant(checkpoint, ablate.VARIANTS["coverage"], batch_size=2)
    assert coverage.model.config.num_coverage_frames == 2 and k8.model.config.num_coverage_frames == 0
    uniform = ablate.load_variant(checkpoint, ablate.VARIANTS["uniform"], batch_size=2)
    assert uniform.model.config.frame_selection == "uniform"
    quantiles = ablate.load_variant(checkpoint, ablate.VARIANTS["quantiles"], batch_size=2)
    assert quantiles.model.config.key_frame_rule == "score_quantiles" and full.model.config.key_frame_rule == "top_k"
    with torch.no_grad():  # the rule changes which frames are picked, not what the model can take
        picked = quantiles.model(**quantiles.model_inputs(choice)).key_frame_indices
    assert picked.shape == (len(choice), 4) and (picked.diff(dim=-1) > 0).all()
    # The trained weights are the checkpoint's in every variant (only the switches differ).
    torch.testing.assert_close(uniform.model.model.cross_talker.w_q.weight, full.model.model.cross_talker.w_q.weight)


def test_variant_overrides_keep_the_trained_share_of_coverage_frames():
    from modeling_llamo import LlamoConfig

    ablate = load_example("ablate_demo")
    trained = LlamoConfig(num_key_frames=16, num_coverage_frames=8)
    assert ablate.config_overrides(ablate.VARIANTS["k4"], trained) == {"num_key_frames": 4, "num_coverage_frames": 2}
    assert ablate.config_overrides(ablate.VARIANTS["full"], trained) == {}
    assert ablate.config_overrides(ablate.VARIANTS["top_k"], trained) == {"num_coverage_frames": 0}
    # On a checkpoint trained with the score-quantile rule, the paper's top-K also puts the rule back.
    quantile_trained = LlamoConfig(num_key_frames=16, num_coverage_frames=4, key_frame_rule="score_quantiles")
    assert ablate.config_overrides(ablate.VARIANTS["top_k"], quantile_trained) == {
        "key_frame_rule": "top_k", "num_coverage_frames": 0}
    assert ablate.config_overrides(ablate.VARIANTS["quantiles"], quantile_trained) == {}
    assert ablate.config_overrides(ablate.VARIANTS["k8"], LlamoConfig(num_key_frames=16)) == {"num_key_frames": 8}
    assert ablate.retrain_overrides(ablate.VARIANTS["coverage"]) == {"num_coverage_frames": 8}
    # Variants that would rerun the full row are left out; video rows change the input, not a switch.
    assert ablate.same_as_full(["full", "k16", "k8", "video"], lambda v: ablate.config_overrides(v, trained)) == ["k16"]
    assert ablate.same_as_full(["k16", "k32"], ablate.retrain_overrides) == ["k16"]


def test_ablation_script_writes_one_row_per_variant_and_resumes(suite_and_checkpoint, tmp_path):
    data, checkpoint = suite_and_checkpoint
    ablate = load_example("ablate_demo")
    argv = ["--model", checkpoint, "--data", data, "--split", "test", "--limit", "3", "--batch-size", "3",
            "--output", str(tmp_path)]
    ablate.main(argv)  # no --variants and a suite without videos: the motion variants only
    table = (tmp_path / "ablation.md").read_text()
    # The tiny checkpoint has K = 4, no evenly spaced frames and top-K: k4, top_k and top_scores would rerun full.
    motion_variants = [name for name, v in ablate.VARIANTS.items() if v.modality == "motion" and not v.retrain_only
                       and name not in ("k4", "top_k", "top_scores")]
    variants_table, paired_table, *per_type, paired_obo = table.split("\n\n")[1:]
    rows = [line for line in variants_table.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert [row.split(":")[0][2:] for row in rows] == motion_variants
    assert all(os.path.exists(tmp_path / name / "babel_qa" / "report.json") for name in motion_variants)
    # The paired table: every other variant against the full model, on the same questions.
    full = choice_correctness(tmp_path / "full")
    paired = [line.strip("| ").split(" | ") for line in paired_table.strip().splitlines()[2:]]
    assert [cells[0] for cells in paired] == motion_variants[1:]
    for name, difference, _, only_full, only_variant, n in paired:
        variant = choice_correctness(tmp_path / name)
        assert int(n) == len(full) == 3
        assert int(only_full) == sum(full[i] and not variant[i] for i in full)
        assert float(difference) == pytest.approx(100 * (sum(variant.values()) - sum(full.values())) / 3, abs=0.05)
    # ... the same per query type, on that type's questions ...
    assert [t.split(" minus ")[0] for t in per_type] == ["| variant | action acc", "| variant | direction acc",
                                                          "| variant | body part acc"]
    for kind, per_type_table in zip(("action", "direction", "body_part"), per_type):
        n = {line.strip("| ").split(" | ")[-1] for line in per_type_table.strip().splitlines()[2:]}
        assert n == {str(len(choice_correctness(tmp_path / "full", query_type=kind)))}
    assert sum(len(choice_correctness(tmp_path / "full", query_type=k)) for k in ("action", "direction", "body_part")) == 3
    # ... and counting OBO, on the same counting questions.
    full_obo = count_within_one(tmp_path / "full")
    paired = [line.strip("| ").split(" | ") for line in paired_obo.strip().splitlines()[2:]]
    assert paired_obo.startswith("| variant | count OBO minus full's") and [c[0] for c in paired] == motion_variants[1:]
    for name, _, _, only_full, only_variant, n in paired:
        variant = count_within_one(tmp_path / name)
        assert int(n) == len(full_obo) and int(only_variant) == sum(variant[i] and not full_obo[i] for i in full_obo)
    # A second run reuses every cached prediction and writes the same table.
    ablate.main(argv)
    assert (tmp_path / "ablation.md").read_text() == table
    with pytest.raises(FileNotFoundError, match="render_videos=True"):
        ablate.main(argv + ["--variants", "video"])
    with pytest.raises(SystemExit, match="only with --retrain"):
        ablate.main(argv + ["--variants", "full", "explore"])


def test_asked_segments_name_the_segment_each_question_is_about(suite_and_checkpoint):
    """The segment `asked_segments` names holds each question's answer: the action itself for action questions,
    one of its directions or body parts for the others (before / after / in between: a neighbour of the filter)."""
    data, _ = suite_and_checkpoint
    asked = asked_segments(data)
    with open(os.path.join(data, "questions.json")) as f:
        questions = json.load(f)
    with open(os.path.join(data, "motion_concepts.json")) as f:
        concepts = json.load(f)
    checked = set()
    for question_id, question in questions.items():
        if question["query_type"] not in ("query_action", "query_direction", "query_body_part"):
            continue
        kind = question["query_type"].removeprefix("query_")
        holders = {segment["action"] for segment in concepts[question["babel_id"]]
                   if question["answer"] in segment["attributes"].get(kind, [])}
        action, num_actions = asked[question_id]
        assert action in holders and num_actions == len(concepts[question["babel_id"]]), question
        checked.add(question["relation_type"])
    assert checked == {"no_relation", "before", "after", "in_between"}


def test_key_frame_placement_reads_where_the_key_frames_fall(suite_and_checkpoint):
    """Evenly spaced key frames put on each segment about its share of the clip, the table's last column; the
    question-named segment is the asked one when there is no relation."""
    import numpy as np

    from llamo import inference
    from llamo.evaluation.harness import LlamoPredictor
    from llamo.evaluation.suite import key_frame_placement

    data, checkpoint = suite_and_checkpoint
    model, processor = inference.load(checkpoint, frame_selection="uniform", num_key_frames=32)
    predictor = LlamoPredictor(model, processor, max_new_tokens=4, batch_size=5)
    table = key_frame_placement(predictor, data, "train", limit=40)

    def parse(table):
        return {line.split(" | ")[0][2:]: [float("nan") if cell == "-" else float(cell)
                                           for cell in line.strip("| ").split(" | ")[1:]]
                for line in table.splitlines()[2:]}

    rows = parse(table)
    assert {"no relation", "before", "after", "counting"} <= set(rows)
    choice, counting = sample_items(data, "train", 40)
    assert sum(row[0] for name, row in rows.items() if name != "counting") == 40 - sum(  # every choice question
        item.id not in asked_segments(data) for item in choice)                       # filters on a segment here
    assert rows["counting"][0] == len(counting)  # every counting question names its segment
    for relation, (n, on_asked, picked_on_asked, none_there, on_named, clip_share, unseen) in rows.items():
        assert abs(on_asked - clip_share) < 0.06, (relation, on_asked, clip_share)
        assert none_there == 0  # 32 evenly spaced frames reach every segment
        assert np.isnan(picked_on_asked)  # uniform selection: the question picked none of them
        assert 0 < unseen < 0.5, (relation, unseen)  # 32 evenly spaced frames leave no long stretch unseen
    assert np.isclose(rows["no relation"][1], rows["no relation"][4])
    # 4 evenly spaced key frames leave longer stretches unseen than 32, on every row
    sparse = LlamoPredictor(*inference.load(checkpoint, frame_selection="uniform", num_key_frames=4),
                            max_new_tokens=4, batch_size=5)
    for relation, row in parse(key_frame_placement(sparse, data, "train", limit=40)).items():
        assert row[6] > rows[relation][6], (relation, row[6], rows[relation][6])
    # the paper's top-K: every key frame is the question's pick, so both shares are one and the same
    top_k = LlamoPredictor(*inference.load(checkpoint, num_coverage_frames=0), max_new_tokens=4, batch_size=5)
    for relation, (n, on_asked, picked_on_asked, *_) in parse(key_frame_placement(top_k, data, "train", limit=40)).items():
        assert np.isclose(on_asked, picked_on_asked), relation
    # the harness's key-frame picture marks the evenly spaced frames: under uniform selection, all of them
    selection = predictor.key_frames(sample_items(data, "train", 1)[0][0])
    assert set(selection["coverage_frame_indices"]) == set(selection["key_frame_indices"])


def test_count_probe_reads_the_asked_segment_the_key_frames_and_the_clip(suite_and_checkpoint):
    """The probe's "asked segment" features are the clip's own when the clip is that one segment and differ when
    it holds others; moving its ends changes them, more the further; the key-frame features are the K outputs the
    projector receives, the picked-frame ones the same K frames' features before E7-E11; the localisation of a
    one-segment clip is perfect where its score span covers the clip; the table has one row per feature set with
    rates in [0, 1], then one localisation row per split."""
    from llamo import inference
    from llamo.evaluation.harness import LlamoPredictor
    from llamo.evaluation.suite import PROBE_JITTERS, _probe_features, count_probe, question_segments

    data, checkpoint = suite_and_checkpoint
    predictor = LlamoPredictor(*inference.load(checkpoint), max_new_tokens=4, batch_size=5)
    found = question_segments(data)
    counting = sample_items(data, "train", 90)[1]
    features = _probe_features(predictor, counting, 30.0, found)
    assert features["key frames"].shape == (len(counting), 4 * predictor.model.config.hidden_size)
    assert features["picked frames"].shape == features["key frames"].shape
    assert not torch.equal(features["picked frames"], features["key frames"])  # before and after E7-E11
    near, far = (features[f"asked segment, ends off by <= {share:.0%}"] for share in PROBE_JITTERS)
    distance = lambda moved: (moved - features["asked segment"]).norm(dim=-1).mean()  # noqa: E731
    assert 0 < distance(near) < distance(far)
    localisation = features["localisation"]
    assert localisation.shape == (len(counting), 4) and ((0 <= localisation) & (localisation <= 1)).all()
    assert "head's span" not in features  # no asked-span head, no such read-out
    lengths = set()
    for row, item in enumerate(counting):
        alone = len(found[item.id]["segments"]) == 1
        lengths.add(alone)
        assert torch.equal(features["asked segment"][row], features["whole clip"][row]) == alone, item.id
        if alone:  # the only segment holds all the score mass and all of any span
            assert localisation[row, 3] == 1 and localisation[row, 0] == localisation[row, 1]
    assert lengths == {True, False}
    assert features["count"].tolist() == [float(item.answer) for item in counting]
    table = count_probe(predictor, data, ["train", "test"], train_limit=20, limit=30)
    readouts, localised = table.split("\n\nHow well")
    rows = [line.strip("| ").split(" | ") for line in readouts.splitlines()[4:]]
    names = ("key frames", "picked frames", "asked segment", "asked segment, ends off by <= 5%",
             "asked segment, ends off by <= 20%", "score span", "whole clip")
    assert [row[:2] for row in rows] == [[split, name] for name in names for split in ("train", "test")]
    assert all(0 <= float(row[4]) <= float(row[3]) <= 1 for row in rows)
    spans, most = localised.split("\n\n| split | asked segment holds")
    span_rows = [line.strip("| ").split(" | ") for line in spans.splitlines()[4:]]
    assert [row[:3] for row in span_rows] == [["train", "10", "score span"], ["test", "3", "score span"]]
    assert all(0 <= float(value) <= 1 for row in span_rows for value in row[3:])
    most_rows = [line.strip("| ").split(" | ") for line in most.splitlines()[2:]]
    assert [row[0] for row in most_rows] == ["train", "test"] and all(0 <= float(row[1]) <= 1 for row in most_rows)

    # With the asked-span head: its run is read out and located too, one more row each.
    processor = predictor.processor
    headed = LlamoPredictor(tiny_model(processor, seed=0, use_asked_span_head=True).eval(), processor,
                            max_new_tokens=4, batch_size=5)
    features = _probe_features(headed, counting, 30.0, found)
    assert features["head's span"].shape == features["score span"].shape
    assert features["localisation"].shape == (len(counting), 7)
    table = count_probe(headed, data, ["test"], train_limit=20, limit=30)
    assert "| test | head's span |" in table and "| test | 3 | head's span |" in table


def test_count_head_readings_score_the_heads_own_counts_and_answers_report_them(suite_and_checkpoint):
    """`count_head_readings`: the count head's reading of the split's counting questions (the ones
    `evaluate_split` asks), rounded, scored against the true counts; a model without the head is refused. An
    answer from a model with the head reports its reading and leaves out the last slot's frame (it holds the
    reading)."""
    from llamo import inference
    from llamo.evaluation.harness import LlamoPredictor
    from llamo.evaluation.suite import count_head_readings

    data, checkpoint = suite_and_checkpoint
    processor = LlamoPredictor(*inference.load(checkpoint), max_new_tokens=4, batch_size=5).processor
    with pytest.raises(ValueError, match="no count head"):
        count_head_readings(LlamoPredictor(*inference.load(checkpoint), batch_size=5), data, "test", limit=30)
    model = tiny_model(processor, seed=0, use_asked_span_head=True, use_count_head=True,
                       count_word_token_ids=list(range(10, 22))).eval()
    headed = LlamoPredictor(model, processor, max_new_tokens=4, batch_size=5)
    result = count_head_readings(headed, data, "test", limit=30)
    counting = sample_items(data, "test", 30)[1]
    assert result["counts"] == [float(item.answer) for item in counting] and result["total"] == len(counting)
    error = (torch.tensor(result["readings"]).round() - torch.tensor(result["counts"])).abs()
    assert result["obo"] == pytest.approx(float((error <= 1).float().mean()))
    assert result["obz"] == pytest.approx(float((error == 0).float().mean())) and all(r >= 0 for r in result["readings"])
    item = counting[0]
    reply = inference.answer(model, processor, headed.messages(item), max_new_tokens=2,
                             processor_kwargs={"motion_fps": float(item.fps), "up_axis": item.up_axis})
    assert len(reply.repetition_counts) == 1 and reply.repetition_counts[0] >= 0
    assert len(reply.key_frame_indices[0]) == model.config.num_key_frames - 1


def test_retrain_reuses_only_the_finished_run_of_the_same_variant(tmp_path):
    """`--retrain` skips training when a variant's folder already holds weights; those must be that variant's
    finished run, or its row would report another model."""
    ablate = load_example("ablate_demo")
    recipe_path = tmp_path / "recipe.json"
    uniform = ablate.VARIANTS["uniform"]

    def write(**recipe):
        recipe_path.write_text(json.dumps({"steps": 1200, "planned_steps": 1200, "seed": 0, "modality": "motion",
                                           "config_overrides": {"frame_selection": "uniform"}, **recipe}))

    write()
    ablate.check_trained_variant(str(recipe_path), uniform, steps=1200, seed=0)  # the finished run: reused
    write(steps=400)  # stopped at a --save-every checkpoint
    with pytest.raises(SystemExit, match="unfinished run \\(400 of 1200"):
        ablate.check_trained_variant(str(recipe_path), uniform, steps=1200, seed=0)
    write()
    with pytest.raises(SystemExit, match="steps=1200 \\(asked: 4000\\)"):
        ablate.check_trained_variant(str(recipe_path), uniform, steps=4000, seed=0)
    for other in ("no_enhancer", "full"):  # a uniform run in another variant's folder
        with pytest.raises(SystemExit, match="config=\\{'frame_selection': 'uniform'\\} \\(asked: "):
            ablate.check_trained_variant(str(recipe_path), ablate.VARIANTS[other], steps=1200, seed=0)
    write(config_overrides={"frame_selection": "text_guided"})  # train_demo records its default selection
    ablate.check_trained_variant(str(recipe_path), ablate.VARIANTS["full"], steps=1200, seed=0)
    with pytest.raises(SystemExit, match="seed=0 \\(asked: 1\\)"):
        ablate.check_trained_variant(str(recipe_path), uniform, steps=1200, seed=1)


def test_train_demo_config_overrides_parse_and_recipes_restore_them():
    train_demo = load_example("train_demo")
    assert train_demo.parse_overrides(["num_key_frames=8", "use_enhancer=false", "frame_selection=uniform"]) == {
        "num_key_frames": 8, "use_enhancer": False, "frame_selection": "uniform"}
    with pytest.raises(SystemExit):
        train_demo.parse_overrides(["num_key_frames"])
    from llamo.demo import recipe_config_overrides

    assert recipe_config_overrides({"frame_selection": "uniform"}) == {"frame_selection": "uniform"}
    recipe = {"config_overrides": {"num_key_frames": 8, "frame_selection": "text_guided"}, "frame_selection": "text_guided"}
    assert recipe_config_overrides(recipe) == {"num_key_frames": 8, "frame_selection": "text_guided"}


def test_evaluate_demo_against_an_earlier_run_writes_the_paired_difference(suite_and_checkpoint, tmp_path):
    """`evaluate_demo.py --against DIR`: the same checkpoint against itself differs on no question, and against
    a run whose answers differ it counts exactly the discordant questions of the two scored files, for choice
    accuracy and for counting OBO."""
    data, checkpoint = suite_and_checkpoint
    evaluate = load_example("evaluate_demo")
    common = ["--model", checkpoint, "--data", data, "--splits", "test", "--limit", "6", "--batch-size", "4"]
    evaluate.main(common + ["--output", str(tmp_path / "first")])

    def paired_row(against, measure):
        sections = (tmp_path / "again" / "summary.md").read_text().split("\n\n")
        title = f"test, {measure}, against {against}:"
        section = next(s for s in sections if s.startswith(title))
        return section.strip().splitlines()[-1].strip("| ").split(" | ")

    evaluate.main(common + ["--output", str(tmp_path / "again"), "--against", str(tmp_path / "first")])
    assert paired_row(tmp_path / "first", "choice acc") == ["this model", "+0.0", "0.0", "0", "0", "6"]
    assert paired_row(tmp_path / "first", "count OBO") == ["this model", "+0.0", "0.0", "0", "0", "2"]
    # A reference whose choice answers all flip and whose counts are all far off: every question is discordant
    # where this model is right.
    flipped = tmp_path / "flipped" / "test"
    for task in ("babel_qa", "counting"):
        (flipped / task).mkdir(parents=True)
    rows = [json.loads(line) for line in (tmp_path / "first" / "test" / "babel_qa" / "scored_items.jsonl").open()]
    (flipped / "babel_qa" / "scored_items.jsonl").write_text(
        "".join(json.dumps({**r, "correct": not r["correct"]}) + "\n" for r in rows))
    counts = [json.loads(line) for line in (tmp_path / "first" / "test" / "counting" / "scored_items.jsonl").open()]
    (flipped / "counting" / "scored_items.jsonl").write_text(
        "".join(json.dumps({**r, "extracted": r["answer"] + 5}) + "\n" for r in counts))
    evaluate.main(common + ["--output", str(tmp_path / "again"), "--against", str(tmp_path / "flipped")])
    cells = paired_row(tmp_path / "flipped", "choice acc")
    right = sum(r["correct"] for r in rows)
    assert cells[0] == "this model" and int(cells[3]) == len(rows) - right and int(cells[4]) == right
    assert float(cells[1]) == pytest.approx(100 * (2 * right - len(rows)) / len(rows), abs=0.05)
    within_one = sum(r["extracted"] is not None and abs(r["extracted"] - r["answer"]) <= 1 for r in counts)
    cells = paired_row(tmp_path / "flipped", "count OBO")
    assert int(cells[3]) == 0 and int(cells[4]) == within_one and int(cells[5]) == len(counts)
    # The error breakdown: every count said and every true count is tallied once.
    summary = (tmp_path / "again" / "summary.md").read_text()
    said = next(line for line in summary.splitlines() if line.startswith("| said |")).strip("| ").split(" | ")[1:]
    true = next(line for line in summary.splitlines() if line.startswith("| true |")).strip("| ").split(" | ")[1:-1]
    assert sum(map(int, said)) == len(counts) == sum(map(int, true))
    per_question = [line for line in summary.splitlines() if line.startswith("| How many times")]
    assert sum(int(line.rsplit("(", 1)[1].split(")")[0]) for line in per_question) == len(counts)
    assert {line.split(" | ")[0][2:] for line in per_question} == {r["question"] for r in counts}
    assert "Wrong body parts:" in summary
    # ... and the accuracy by the action asked about: every choice question counted once, under its type
    by_action, by_length = summary.split("Choice accuracy by the action asked about:")[1].strip().split("\n\n")[:2]
    for table in (by_action, by_length):  # every choice question counted once per table, under its type
        cells = [line.strip("| ").split(" | ")[1:] for line in table.splitlines()[2:]]
        for column, kind in enumerate(("action", "direction", "body_part")):
            n = sum(int(cell[column].split("(")[1].rstrip(")")) for cell in cells if cell[column] != "-")
            assert n == sum(r["query_type"] == kind for r in rows)
    assert {line.split(" | ")[0][2:] for line in by_length.splitlines()[2:]} <= {"1", "2", "3"}
    with pytest.raises(SystemExit, match="no 'test' evaluation"):
        evaluate.main(common + ["--output", str(tmp_path / "x"), "--against", str(tmp_path / "missing")])
