"""Evaluation harness: answer extraction, metrics, judges (HTTP mocked locally, tiny local LM), BABEL-QA loader,
resumable runs, reports, plots and the CLI. No network: the HTTP judge talks to a server on 127.0.0.1."""

import http.server
import json
import math
import shutil
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from llamo.evaluation import cli
from llamo.evaluation.answers import (
    ACTION_VOCAB,
    ACTIONS,
    BODY_PART_VOCAB,
    BODY_PARTS,
    DIRECTION_VOCAB,
    DIRECTIONS,
    Vocabulary,
    extract_choice,
    extract_count,
    vocabulary_for_query_type,
)
from llamo.evaluation.harness import (
    CountingTask,
    EvalItem,
    LlamoPredictor,
    OpenQATask,
    load_babel_qa,
    load_counting,
    load_open_qa,
    run_evaluation,
)
from llamo.evaluation.judge import (
    JUDGE_SYSTEM_PROMPT,
    HTTPJudge,
    JudgeResult,
    LocalJudge,
    build_judge_messages,
    judge_from_spec,
    parse_judgement,
)
from llamo.evaluation.metrics import babel_qa_metrics, counting_metrics, judge_metrics
from llamo.evaluation.plots import plot_key_frames

BABEL_MINI = Path(__file__).parent / "fixtures" / "babel_qa_mini"


# ---------------------------------------------------------------------------------------------------------------
# Vocabulary and answer extraction
# ---------------------------------------------------------------------------------------------------------------


def test_vocabulary_sizes_match_the_paper():
    assert len(ACTIONS) == len(set(ACTIONS)) == 55
    assert len(BODY_PARTS) == 8 and len(DIRECTIONS) == 4
    assert set(DIRECTIONS) == {"left", "right", "forward", "backwards"}
    assert "transition" not in ACTIONS and "hop" not in ACTIONS and "lift something" not in ACTIONS
    assert vocabulary_for_query_type("query_body_part") is BODY_PART_VOCAB
    assert vocabulary_for_query_type("direction") is DIRECTION_VOCAB
    with pytest.raises(ValueError):
        vocabulary_for_query_type("query_colour")


CHOICE_CASES = [
    # (answer text, vocabulary, expected canonical concept or None)
    ("walk", ACTION_VOCAB, "walk"),
    ("The person is walking.", ACTION_VOCAB, "walk"),
    ("They walked slowly across the room.", ACTION_VOCAB, "walk"),
    ("The person runs forward.", ACTION_VOCAB, "run"),
    ("He ran.", ACTION_VOCAB, "run"),
    ("Jumping jacks.", ACTION_VOCAB, "jumping jacks"),
    ("The person hops on one foot.", ACTION_VOCAB, "jump"),
    ("The person jumps rope.", ACTION_VOCAB, "jump rope"),
    ("She picks something up from the floor.", ACTION_VOCAB, "take/pick something up"),
    ("take/pick something up", ACTION_VOCAB, "take/pick something up"),
    ("The man lifts a box.", ACTION_VOCAB, "take/pick something up"),
    ("They place something on the table.", ACTION_VOCAB, "place something"),
    ("The person is squatting down.", ACTION_VOCAB, "squat"),
    ("stands up from the chair", ACTION_VOCAB, "stand up"),
    ("He sat down.", ACTION_VOCAB, "sit"),
    ("waving", ACTION_VOCAB, "wave"),
    ("The person walks on tiptoes.", ACTION_VOCAB, "tiptoe"),
    ("does a hand stand", ACTION_VOCAB, "handstand"),
    ("The person does not walk, they run.", ACTION_VOCAB, "run"),
    ("Not walking but jogging.", ACTION_VOCAB, "jog"),
    ("Rather than walking, the person jogs.", ACTION_VOCAB, "jog"),
    ("It is not a jump.", ACTION_VOCAB, None),
    ("I cannot tell from the motion.", ACTION_VOCAB, None),
    ("", ACTION_VOCAB, None),
    (
        "The person throws the ball and then catches it.",
        ACTION_VOCAB,
        "throw",
    ),  # earliest mention wins
    ("kicks with the right foot", ACTION_VOCAB, "kick"),
    ("left hand", BODY_PART_VOCAB, "left hand"),
    ("The person uses their right hand.", BODY_PART_VOCAB, "right hand"),
    ("They use the hand on the left.", BODY_PART_VOCAB, "left hand"),
    ("Arm (left)", BODY_PART_VOCAB, "left arm"),
    ("right-leg", BODY_PART_VOCAB, "right leg"),
    ("both feet, mostly the left foot", BODY_PART_VOCAB, "left foot"),
    ("The person kicks with their right foot.", BODY_PART_VOCAB, "right foot"),
    ("Not the left leg but the right leg.", BODY_PART_VOCAB, "right leg"),
    ("The left.", BODY_PART_VOCAB, None),  # a side alone is no body part
    ("left", DIRECTION_VOCAB, "left"),
    ("The person moves to the left.", DIRECTION_VOCAB, "left"),
    ("They walk backward.", DIRECTION_VOCAB, "backwards"),
    ("backwards", DIRECTION_VOCAB, "backwards"),
    ("The person steps back.", DIRECTION_VOCAB, "backwards"),
    ("moving forwards", DIRECTION_VOCAB, "forward"),
    ("The person goes straight ahead.", DIRECTION_VOCAB, "forward"),
    ("leftward", DIRECTION_VOCAB, "left"),
    (
        "The person raises their left hand and moves forward.",
        DIRECTION_VOCAB,
        "forward",
    ),  # "left hand" is no direction
    ("Not left but right.", DIRECTION_VOCAB, "right"),
    ("The person sways back and forth.", DIRECTION_VOCAB, None),
    ("Right away the person turns left.", DIRECTION_VOCAB, "left"),
    ("The right foot.", DIRECTION_VOCAB, None),
]


@pytest.mark.parametrize("text, vocab, expected", CHOICE_CASES)
def test_extract_choice(text, vocab, expected):
    assert extract_choice(text, vocab) == expected


def test_extract_choice_avoids_concepts_echoed_from_the_question():
    # Q: "What direction does the person move before they move left?" (BABEL-QA never answers with a filter concept)
    answer = "Before moving left, the person moves forward."
    assert extract_choice(answer, DIRECTION_VOCAB) == "left"
    assert extract_choice(answer, DIRECTION_VOCAB, avoid=["left"]) == "forward"
    # only the avoided concept named: it is still the extracted (and wrong) answer
    assert extract_choice("left", DIRECTION_VOCAB, avoid=["left"]) == "left"


def test_extract_choice_custom_vocabulary():
    vocab = Vocabulary("sport", ("golf", "baseball"), {"baseball": ("batting", "pitch")})
    assert extract_choice("It looks like a pitch.", vocab) == "baseball"
    assert extract_choice("The golfer swings; golf.", vocab) == "golf"
    assert extract_choice("tennis", vocab) is None


COUNT_CASES = [
    ("3", 3),
    ("The person jumps 3 times.", 3),
    ("three times", 3),
    ("Three.", 3),
    ("He does it twice.", 2),
    ("once", 1),
    ("The action is repeated 5x.", 5),
    ("twenty-one repetitions", 21),
    ("I count 12 reps in total.", 12),
    ("It lasts 10 seconds and the person squats 4 times.", 4),
    ("At frame 30 the person starts; they squat 6 times.", 6),
    ("The one on the left jumps seven times.", 7),
    ("Not 3 but 4 times.", 4),
    ("about 2.6 times", 3),
    ("a couple of times", 2),
    ("The person uses one leg to hop 3 times.", 3),
    ("zero times", 0),
    ("The person repeats the motion many times.", None),
    ("I cannot count the repetitions.", None),
    ("It takes 8 seconds.", None),
    ("", None),
]


@pytest.mark.parametrize("text, expected", COUNT_CASES)
def test_extract_count(text, expected):
    assert extract_count(text) == expected


def test_count_in_words_is_read_back_by_extract_count():
    from llamo.evaluation.answers import count_in_words

    assert [count_in_words(n) for n in (0, 7, 11, 12, 20, 23)] == ["zero", "seven", "eleven", "twelve", "twenty",
                                                                     "twenty-three"]
    assert [extract_count(count_in_words(n)) for n in range(100)] == list(range(100))
    for bad in (-1, 100):
        with pytest.raises(ValueError, match="0..99"):
            count_in_words(bad)


# ---------------------------------------------------------------------------------------------------------------
# Metrics, against hand-computed values
# ---------------------------------------------------------------------------------------------------------------


def test_babel_qa_metrics_hand_computed():
    preds = ["walk", "run", None, "left", "left hand", "forward"]
    golds = ["walk", "jump", "jump", "left", "right hand", "forward"]
    qtypes = ["action", "action", "action", "direction", "body_part", "direction"]
    rels = ["none", "before", "after", "after", "none", "in_between"]
    m = babel_qa_metrics(preds, golds, qtypes, rels)
    assert m["correct"] == 3 and m["total"] == 6 and m["accuracy"] == pytest.approx(0.5)
    assert m["num_unparsed"] == 1
    assert m["by_query_type"]["action"] == {
        "accuracy": pytest.approx(1 / 3),
        "correct": 1,
        "total": 3,
    }
    assert m["by_query_type"]["direction"]["accuracy"] == 1.0
    assert m["by_query_type"]["body_part"]["accuracy"] == 0.0
    assert m["by_relation"]["none"]["accuracy"] == 0.5
    assert m["by_relation"]["after"] == {"accuracy": 0.5, "correct": 1, "total": 2}
    assert m["by_relation"]["in_between"]["accuracy"] == 1.0
    assert list(m["by_relation"]) == ["none", "before", "after", "in_between"]
    assert m["by_query_type_and_relation"]["action/before"]["accuracy"] == 0.0


def test_paired_accuracy_difference_hand_computed():
    from llamo.evaluation.metrics import paired_accuracy_difference

    reference = {"a": True, "b": True, "c": False, "d": False, "e": True}
    other = {"a": True, "b": False, "c": True, "d": False, "e": False, "only_in_other": True}
    result = paired_accuracy_difference(reference, other)
    # on a..e: per-item differences 0, 1, -1, 0, 1 -> mean 0.2, population variance 0.6 - 0.04 = 0.56
    assert result["n"] == 5 and result["only_reference"] == 2 and result["only_other"] == 1
    assert result["difference"] == pytest.approx(0.2)
    assert result["standard_error"] == pytest.approx((0.56 / 5) ** 0.5)
    assert paired_accuracy_difference({"a": True}, {"b": True})["n"] == 0


def test_counting_metrics_hand_computed():
    m = counting_metrics([3, 5, None, 10], [3, 4, 2, 8])
    assert m["obz"] == pytest.approx(1 / 4)
    assert m["obo"] == pytest.approx(2 / 4)
    # |3-3|/3 = 0, |5-4|/4 = .25, unparsed -> 0: |0-2|/2 = 1, |10-8|/8 = .25
    assert m["mae"] == pytest.approx((0 + 0.25 + 1 + 0.25) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 4 + 4) / 4))
    assert m["mae_parsed"] == pytest.approx(0.5 / 3)
    assert m["rmse_parsed"] == pytest.approx(math.sqrt(5 / 3))
    assert m["num_unparsed"] == 1 and m["total"] == 4
    # gt = 0 uses the absolute error
    assert counting_metrics([2], [0])["mae"] == pytest.approx(2.0)


def test_judge_metrics_hand_computed():
    m = judge_metrics(
        [True, False, True, False],
        [5, 1, 4, 0],
        ["body", "body", "direction", "direction"],
        [True, True, True, False],
    )
    assert m["accuracy"] == 0.5 and m["score"] == pytest.approx(2.5) and m["num_unparsed"] == 1
    assert m["by_category"]["body"] == {"accuracy": 0.5, "score": 3.0, "total": 2}
    assert m["by_category"]["direction"]["score"] == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------------------------
# Judges
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, correct, score, parsed",
    [
        ('{"correct": "yes", "score": 4}', True, 4.0, True),
        ('```json\n{"correct": "no", "score": 1}\n```', False, 1.0, True),
        ("{'pred': 'yes', 'score': 5}", True, 5.0, True),
        (
            'Sure! Here is my evaluation: {"correct": true, "score": "3"}. Hope it helps.',
            True,
            3.0,
            True,
        ),
        ('{"correct": "yes", "score": 9}', True, 5.0, True),  # clamped
        ("correct: no\nscore: 2", False, 2.0, True),
        ("Yes.", True, 5.0, True),
        ("Score: 4", True, 4.0, True),
        ("I am not sure what you mean.", False, 0.0, False),
        ("", False, 0.0, False),
    ],
)
def test_parse_judgement(reply, correct, score, parsed):
    result = parse_judgement(reply)
    assert (result.correct, result.score, result.parsed) == (correct, score, parsed)


class _JudgeHandler(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list] = []
    fail_first = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        prediction = body["messages"][1]["content"].split("Predicted answer: ")[1].split("\n")[0]
        verdict = {"correct": "yes", "score": 5} if "kick" in prediction else {"correct": "no", "score": 1}
        payload = {"choices": [{"message": {"role": "assistant", "content": json.dumps(verdict)}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def judge_server():
    _JudgeHandler.requests = []
    _JudgeHandler.fail_first = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _JudgeHandler
    server.shutdown()
    server.server_close()


def test_http_judge_from_environment_with_retry(judge_server, monkeypatch):
    url, handler = judge_server
    monkeypatch.setenv("LLAMO_JUDGE_URL", url)
    monkeypatch.setenv("LLAMO_JUDGE_API_KEY", "sk-test")
    monkeypatch.setenv("LLAMO_JUDGE_MODEL", "judge-model")
    handler.fail_first = 1  # one 503, then success
    judge = judge_from_spec("http")
    judge.backoff = 0.0
    result = judge.judge("What does the person do?", "The person kicks.", "A kick with the right leg.")
    assert result == JudgeResult(True, 5.0, '{"correct": "yes", "score": 5}', True)
    assert len(handler.requests) == 2
    request = handler.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "judge-model" and request["body"]["temperature"] == 0.0
    assert request["body"]["messages"][0] == {
        "role": "system",
        "content": JUDGE_SYSTEM_PROMPT,
    }
    assert judge.name == "http:judge-model"


def test_http_judge_errors(judge_server):
    url, handler = judge_server
    assert HTTPJudge.endpoint("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert HTTPJudge.endpoint("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    handler.fail_first = 5
    judge = HTTPJudge(url=url, model="m", max_retries=1, backoff=0.0, timeout=5)
    with pytest.raises(RuntimeError, match="failed after 2 attempts"):
        judge.judge("q", "r", "p")
    # nothing listens on a closed port: a clear error, no hang
    judge = HTTPJudge(url="http://127.0.0.1:9", max_retries=0, timeout=2)
    with pytest.raises(RuntimeError):
        judge.judge("q", "r", "p")


def _word_tokenizer():
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = [
        "<pad>",
        "<unk>",
        "<eos>",
        "{",
        "}",
        '"correct":',
        '"yes",',
        '"no",',
        '"score":',
        "4",
        "1",
    ]
    words += sorted(
        {
            w
            for text in (
                JUDGE_SYSTEM_PROMPT,
                "Question: Reference answer: Predicted answer: Reply only with JSON: JSON: What does the person do? "
                + "kicks. kick A with right leg.",
            )
            for w in text.split()
        }
        - set(words)
    )
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")


def _tiny_lm(vocab_size):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def test_local_judge_with_a_tiny_model():
    tokenizer = _word_tokenizer()
    model = _tiny_lm(len(tokenizer))
    reply = '{ "correct": "yes", "score": 4 }'
    forced = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    prompt_len = {}

    def allowed(batch_id, ids):  # force the reply the real judge would give, token by token
        prompt_len.setdefault(batch_id, len(ids))
        step = len(ids) - prompt_len[batch_id]
        return [forced[min(step, len(forced) - 1)]]

    judge = LocalJudge(
        model,
        tokenizer,
        max_new_tokens=len(forced) + 2,
        prefix_allowed_tokens_fn=allowed,
    )
    result = judge.judge("What does the person do?", "kicks.", "A kick with right leg.")
    assert result.parsed and result.correct and result.score == 4.0
    assert result.raw.replace(" ", "") == reply.replace(" ", "")

    # an unconstrained random tiny model: the pipeline runs; gibberish is an unparsed, incorrect verdict
    free = LocalJudge(model, tokenizer, max_new_tokens=4).judge("What does the person do?", "kicks.", "kick")
    assert isinstance(free, JudgeResult) and free.score in (0.0, 1.0, 4.0, 5.0)

    # the chat-template path: the judge's system + user messages go through the tokenizer's template
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}JSON:"
    ids, _ = LocalJudge(model, tokenizer).prompt_ids("What does the person do?", "kicks.", "kick")
    text = tokenizer.decode(ids[0])
    assert text.startswith("You evaluate") and text.endswith("JSON:")


def test_judge_messages_and_spec():
    messages = build_judge_messages("Q?", "ref", "pred")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Question: Q?" in messages[1]["content"] and "Predicted answer: pred" in messages[1]["content"]
    assert judge_from_spec(None) is None
    with pytest.raises(ValueError):
        judge_from_spec("gpt")


# ---------------------------------------------------------------------------------------------------------------
# BABEL-QA loader (fixture in the released layout)
# ---------------------------------------------------------------------------------------------------------------


def test_babel_qa_loader_on_fixture():
    items = load_babel_qa(BABEL_MINI, split="test")
    split = json.loads((BABEL_MINI / "split_question_ids.json").read_text())
    assert [item.id for item in items] == split["test"]
    first = items[0]
    assert first.question == "What action does the person do while they move forward?"
    assert first.prompt.startswith(first.question) and first.prompt != first.question
    assert first.answer == "walk"
    assert first.meta == {
        "babel_id": "1833",
        "query_type": "action",
        "relation_type": "none",
        "filter_concepts": ["forward"],
    }
    assert first.fps == 30.0 and first.up_axis == "z"
    joints = np.load(first.motion, allow_pickle=False)
    assert joints.ndim == 3 and joints.shape[1:] == (22, 3) and joints.dtype == np.float32
    assert {item.meta["relation_type"] for item in items} == {"none", "before", "after"}
    assert {item.meta["query_type"] for item in items} == {
        "action",
        "body_part",
        "direction",
    }
    # every gold answer is in the closed vocabulary of its query type
    for item in load_babel_qa(BABEL_MINI, split="all"):
        assert item.answer in vocabulary_for_query_type(item.meta["query_type"])
    assert len(load_babel_qa(BABEL_MINI, split="all")) == 8
    assert load_babel_qa(BABEL_MINI, split="val")[0].meta["relation_type"] == "in_between"
    assert len(load_babel_qa(BABEL_MINI, split="test", limit=2)) == 2
    assert load_babel_qa(BABEL_MINI, split="test", prompt_suffix="")[0].prompt == first.question


def test_babel_qa_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_babel_qa(tmp_path)
    shutil.copy(BABEL_MINI / "questions.json", tmp_path / "questions.json")
    with pytest.raises(FileNotFoundError, match="split file"):
        load_babel_qa(tmp_path, split="test")
    shutil.copy(BABEL_MINI / "split_question_ids.json", tmp_path / "split_question_ids.json")
    with pytest.raises(ValueError, match="Split 'dev'"):
        load_babel_qa(tmp_path, split="dev")
    with pytest.raises(FileNotFoundError, match="Motion of question"):
        load_babel_qa(tmp_path, split="test")


# ---------------------------------------------------------------------------------------------------------------
# Runs: batching, cache, resume, reports, plots
# ---------------------------------------------------------------------------------------------------------------

BABEL_ANSWERS = {
    "000001": "The person is walking.",
    "000002": "They jump.",
    "000003": "The person uses the left hand.",
    "000005": "After moving forward, the person moves to the left.",
    "000006": "Hard to say.",
    "000007": "backward",
}


class FakePredictor:
    """Answers from a table; records what it was asked; can crash after some batches."""

    name = "fake-model"

    def __init__(self, answers, crash_after_batches=None):
        self.answers, self.crash_after = answers, crash_after_batches
        self.calls = []

    def predict(self, items):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append([item.id for item in items])
        return [self.answers[item.id] for item in items]


def test_babel_qa_run_report_and_plots(tmp_path):
    items = load_babel_qa(BABEL_MINI, split="test")
    predictor = FakePredictor(BABEL_ANSWERS)
    report = run_evaluation(
        "babel_qa",
        items,
        predictor,
        tmp_path,
        batch_size=4,
        progress=False,
        plot_item="000003",
    )
    assert predictor.calls == [
        ["000001", "000002", "000003", "000005"],
        ["000006", "000007"],
    ]
    m = report["metrics"]
    # correct: 000001 walk, 000002 jump, 000005 left (forward is avoided: it is the question's filter concept)
    assert (m["correct"], m["total"], m["num_unparsed"]) == (3, 6, 1)
    assert m["by_query_type"]["action"]["accuracy"] == 1.0
    assert m["by_query_type"]["body_part"]["accuracy"] == 0.0
    assert m["by_query_type"]["direction"] == {
        "accuracy": pytest.approx(1 / 3),
        "correct": 1,
        "total": 3,
    }
    assert report["model"] == "fake-model" and report["num_items"] == 6
    for name in (
        "report.json",
        "report.md",
        "predictions.jsonl",
        "scored_items.jsonl",
        "accuracy_by_type.png",
        "key_frames_000003.png",
    ):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "report.json").read_text()) == report
    md = (tmp_path / "report.md").read_text()
    assert "| accuracy | 0.5000 |" in md and "### By relation" in md
    scored = [json.loads(line) for line in (tmp_path / "scored_items.jsonl").read_text().splitlines()]
    assert scored[4] == {
        **scored[4],
        "id": "000006",
        "extracted": None,
        "correct": False,
    }
    assert (tmp_path / "accuracy_by_type.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_after_interruption_gives_the_same_report(tmp_path):
    items = load_babel_qa(BABEL_MINI, split="test")
    reference = run_evaluation(
        "babel_qa",
        items,
        FakePredictor(BABEL_ANSWERS),
        tmp_path / "full",
        batch_size=2,
        progress=False,
    )

    out = tmp_path / "interrupted"
    crashing = FakePredictor(BABEL_ANSWERS, crash_after_batches=2)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation("babel_qa", items, crashing, out, batch_size=2, progress=False)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and not (out / "report.json").exists()
    # a kill in the middle of a write leaves a truncated line: ignored, and the next append starts a new line
    with open(out / "predictions.jsonl", "a") as handle:
        handle.write('{"id": "000006", "predic')

    resumed = FakePredictor(BABEL_ANSWERS)
    report = run_evaluation("babel_qa", items, resumed, out, batch_size=2, progress=False)
    assert resumed.calls == [["000006", "000007"]]  # only the missing items
    assert report == reference
    assert (out / "report.json").read_text() == (tmp_path / "full" / "report.json").read_text()
    assert (out / "scored_items.jsonl").read_text() == (tmp_path / "full" / "scored_items.jsonl").read_text()

    again = FakePredictor(BABEL_ANSWERS)  # everything cached: nothing to predict
    assert run_evaluation("babel_qa", items, again, out, progress=False) == reference and again.calls == []
    fresh = FakePredictor(BABEL_ANSWERS)  # --no-resume redoes everything
    run_evaluation("babel_qa", items, fresh, out, batch_size=10, resume=False, progress=False)
    assert fresh.calls == [[item.id for item in items]]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 6


def test_two_models_in_one_output_folder_never_share_answers(tmp_path):
    """Evaluating a second checkpoint into a folder that holds the first's predictions must not reuse them (its
    report would be the first model's); each model resumes from its own answers."""
    items = load_babel_qa(BABEL_MINI, split="test")
    first = run_evaluation("babel_qa", items, FakePredictor(BABEL_ANSWERS), tmp_path / "a", progress=False)

    wrong = {item_id: "nothing" for item_id in BABEL_ANSWERS}
    other = FakePredictor(wrong)
    other.name = "other-model"
    out = tmp_path / "shared"
    run_evaluation("babel_qa", items, FakePredictor(BABEL_ANSWERS), out, progress=False)
    report = run_evaluation("babel_qa", items, other, out, batch_size=10, progress=False)
    assert other.calls == [[item.id for item in items]]  # nothing reused from fake-model
    assert report["model"] == "other-model" and report["metrics"]["accuracy"] == 0.0 != first["metrics"]["accuracy"]

    again = FakePredictor(BABEL_ANSWERS)  # back to the first model: its own cached answers, no call
    assert run_evaluation("babel_qa", items, again, out, progress=False) == first and again.calls == []

    # a cache written before records named their model is still resumed
    legacy = tmp_path / "legacy"
    run_evaluation("babel_qa", items, FakePredictor(BABEL_ANSWERS), legacy, progress=False)
    rows = [json.loads(line) for line in (legacy / "predictions.jsonl").read_text().splitlines()]
    (legacy / "predictions.jsonl").write_text("".join(
        json.dumps({k: v for k, v in row.items() if k != "model"}) + "\n" for row in rows))
    resumed = FakePredictor(BABEL_ANSWERS)
    assert run_evaluation("babel_qa", items, resumed, legacy, progress=False) == first and resumed.calls == []


def test_duplicate_ids_and_bad_predictor(tmp_path):
    items = [EvalItem("a", "q?", "walk", meta={"query_type": "action", "relation_type": "none"})] * 2
    with pytest.raises(ValueError, match="unique"):
        run_evaluation("babel_qa", items, FakePredictor({}), tmp_path, progress=False)

    class Short:
        def predict(self, items):
            return []

    with pytest.raises(RuntimeError, match="0 answers for 1"):
        run_evaluation("babel_qa", items[:1], Short(), tmp_path, progress=False)


def _write_motion(path, frames=40):
    rng = np.random.default_rng(0)
    np.save(path, rng.normal(size=(frames, 22, 3)).astype(np.float32))


def test_counting_run(tmp_path):
    (tmp_path / "motions").mkdir()
    rows = []
    for i, count in enumerate([3, 4, 2, 8]):
        _write_motion(tmp_path / "motions" / f"m{i}.npy")
        rows.append({"id": f"c{i}", "motion": f"motions/m{i}.npy", "count": count, "fps": 30})
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_counting(tmp_path, split="test")
    assert items[0].motion == str(tmp_path / "motions" / "m0.npy") and items[0].answer == 3
    answers = {
        "c0": "3 times",
        "c1": "The person squats five times.",
        "c2": "I can't tell.",
        "c3": "10",
    }
    report = run_evaluation(CountingTask(), items, FakePredictor(answers), tmp_path / "out", progress=False)
    m = report["metrics"]
    assert m["obz"] == pytest.approx(0.25) and m["obo"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx(0.375) and m["rmse"] == pytest.approx(1.5)
    assert (tmp_path / "out" / "counts_scatter.png").is_file()
    assert "OBZ" in (tmp_path / "out" / "report.md").read_text()


class CountingJudge:
    name = "counting-judge"

    def __init__(self):
        self.calls = 0

    def judge(self, question, reference, prediction):
        self.calls += 1
        ok = reference.split()[-1].strip(".") in prediction
        return JudgeResult(ok, 5.0 if ok else 1.0, "{}", True)


def test_open_qa_run_with_cached_judgments(tmp_path):
    rows = [
        {
            "id": "q1",
            "motion": "m.npy",
            "question": "What does the person do?",
            "answer": "The person kicks.",
            "category": "body",
        },
        {
            "id": "q2",
            "motion": "m.npy",
            "question": "Which way?",
            "answer": "They turn left.",
            "category": "direction",
        },
        {
            "id": "q3",
            "video": "v.mp4",
            "question": "Why?",
            "reference": "To keep balance.",
            "category": "reasoning",
        },
    ]
    data = tmp_path / "movid.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_open_qa(data)
    assert items[2].answer == "To keep balance." and items[2].video == str(tmp_path / "v.mp4")
    answers = {"q1": "A strong kicks.", "q2": "right", "q3": "for balance."}
    judge = CountingJudge()
    report = run_evaluation(
        OpenQATask(judge),
        items,
        FakePredictor(answers),
        tmp_path / "out",
        progress=False,
    )
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx(2 / 3) and m["score"] == pytest.approx(11 / 3)
    assert report["judge"] == "counting-judge" and judge.calls == 3
    assert set(m["by_category"]) == {"body", "direction", "reasoning"}
    for name in ("judgments.jsonl", "judge_scores.png", "accuracy_by_type.png"):
        assert (tmp_path / "out" / name).is_file()
    # rerun: predictions and verdicts come from the caches
    judge2 = CountingJudge()
    assert (
        run_evaluation(
            OpenQATask(judge2),
            items,
            FakePredictor(answers),
            tmp_path / "out",
            progress=False,
        )
        == report
    )
    assert judge2.calls == 0
    # a second model in the same folder: its own answers, judged once each; the first model's verdicts stay cached
    other = FakePredictor({**answers, "q2": "left"})
    other.name = "other-model"
    judge3 = CountingJudge()
    second = run_evaluation(OpenQATask(judge3), items, other, tmp_path / "out", progress=False)
    assert other.calls and judge3.calls == 1 and second["model"] == "other-model"
    judge4 = CountingJudge()
    assert run_evaluation(OpenQATask(judge4), items, FakePredictor(answers), tmp_path / "out", progress=False) == report
    assert judge4.calls == 0
    with pytest.raises(ValueError, match="needs a judge"):
        run_evaluation("open_qa", items, FakePredictor(answers), tmp_path / "out2", progress=False)


def test_open_qa_run_with_http_judge(judge_server, tmp_path):
    url, handler = judge_server
    items = [
        EvalItem("q1", "What does the person do?", "The person kicks.", motion="m.npy"),
        EvalItem("q2", "Which way?", "Left.", motion="m.npy"),
    ]
    report = run_evaluation(
        OpenQATask(HTTPJudge(url=url, model="m", backoff=0)),
        items,
        FakePredictor({"q1": "a kick", "q2": "right"}),
        tmp_path,
        progress=False,
    )
    assert report["metrics"]["accuracy"] == 0.5 and report["metrics"]["score"] == 3.0
    assert len(handler.requests) == 2


# ---------------------------------------------------------------------------------------------------------------
# Plots, predictor, CLI
# ---------------------------------------------------------------------------------------------------------------


def test_plot_key_frames(tmp_path):
    joints = np.load(BABEL_MINI / "motion_sequences" / "4021" / "joints.npy")
    scores = np.linspace(0, 1, 30)  # on a coarser timeline than the 75 joint frames: mapped proportionally
    path = plot_key_frames(joints, scores, [20, 24, 27, 29], tmp_path / "kf.png", fps=30, title="wave")
    assert Path(path).read_bytes()[:4] == b"\x89PNG"
    plot_key_frames(joints, scores, [3, 24, 27, 29], tmp_path / "kf2.png", coverage_frame_indices=[3])
    plot_key_frames(
        str(BABEL_MINI / "motion_sequences" / "1833" / "joints.npy"),
        None,
        None,
        tmp_path / "k2.png",
    )
    with pytest.raises(ValueError):
        plot_key_frames(np.zeros((10, 263)), None, None, tmp_path / "bad.png")


class _FakeProcessor:
    def __init__(self):
        self.calls = []

    def apply_chat_template(self, conversations, **kwargs):
        from transformers.feature_extraction_utils import BatchFeature

        self.calls.append((conversations, kwargs))
        ids = torch.tensor([[0, 5, 6, 7], [5, 6, 7, 8]][: len(conversations)])
        return BatchFeature({"input_ids": ids, "attention_mask": torch.ones_like(ids)})

    def batch_decode(self, tokens, skip_special_tokens=True):
        return [" ".join(str(int(t)) for t in row) + " " for row in tokens]


class _FakeModel:
    device = torch.device("cpu")

    def generate(self, input_ids, attention_mask, max_new_tokens, do_sample):
        assert do_sample is False
        new = torch.full((input_ids.shape[0], 2), 42)
        return torch.cat([input_ids, new], dim=1)


def test_llamo_predictor_builds_messages_and_decodes_new_tokens():
    processor = _FakeProcessor()
    predictor = LlamoPredictor(_FakeModel(), processor, max_new_tokens=2, batch_size=2, name="fake")
    items = [EvalItem(str(i), f"q{i}?", motion=f"m{i}.npy", fps=30.0, up_axis="z") for i in range(3)]
    assert predictor.predict(items) == ["42 42"] * 3
    conversations, kwargs = processor.calls[0]
    assert conversations[0] == [
        {
            "role": "user",
            "content": [
                {"type": "motion", "path": "m0.npy"},
                {"type": "text", "text": "q0?"},
            ],
        }
    ]
    assert kwargs["tokenize"] and kwargs["return_dict"] and kwargs["add_generation_prompt"]
    assert kwargs["processor_kwargs"] == {
        "padding": True,
        "motion_fps": [30.0, 30.0],
        "up_axis": "z",
    }
    assert [len(c) for c, _ in processor.calls] == [2, 1]
    video = LlamoPredictor.messages(EvalItem("v", "q", video="v.mp4", motion="m.npy"))
    assert [b["type"] for b in video[0]["content"]] == ["video", "motion", "text"]


def test_cli_babel_qa(tmp_path, monkeypatch, capsys):
    from llamo.evaluation import harness

    monkeypatch.setattr(
        harness.LlamoPredictor,
        "from_pretrained",
        classmethod(lambda cls, *a, **k: FakePredictor(BABEL_ANSWERS)),
    )
    out = tmp_path / "run"
    rc = cli.main(
        [
            "--task",
            "babel_qa",
            "--data",
            str(BABEL_MINI),
            "--model",
            "ckpt",
            "--split",
            "test",
            "--output",
            str(out),
            "--batch-size",
            "2",
            "--limit",
            "4",
            "--no-progress",
            "--plot-item",
            "first",
        ]
    )
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["num_items"] == 4 and report["task"] == "babel_qa"
    assert (out / "key_frames_000001.png").is_file()
    assert '"accuracy"' in capsys.readouterr().out
    (tmp_path / "x.jsonl").write_text('{"id": 1, "question": "q", "answer": "a"}\n')
    assert (
        cli.main(
            [
                "--task",
                "open_qa",
                "--data",
                str(tmp_path / "x.jsonl"),
                "--model",
                "m",
                "--output",
                "o",
            ]
        )
        == 2
    )


def test_llamo_predictor_end_to_end_with_a_tiny_llamo(tmp_path):
    """The real processor chat template + a tiny random LLaMo: batched generate, decoding and key frames."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    from modeling_llamo import LlamoForConditionalGeneration
    from processing_llamo import LlamoMotionProcessor, LlamoProcessor

    from .conftest import tiny_config

    words = [
        "<pad>",
        "<unk>",
        "<|im_start|>",
        "<|im_end|>",
        "user",
        "assistant",
        "walk",
        "left",
        "hand",
    ]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
    )
    motion_processor = LlamoMotionProcessor(representation="joints22")
    processor = LlamoProcessor(feature_extractor=motion_processor, tokenizer=tokenizer, num_key_frames=4)
    vocab = len(processor.tokenizer)
    config = tiny_config(
        motion_feature_dim=motion_processor.feature_dim,
        motion_token_id=processor.motion_token_id,
        text_config={
            "model_type": "llama",
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 64,
            "vocab_size": vocab,
            "max_position_embeddings": 512,
            "pad_token_id": 0,
            "eos_token_id": 3,
            "bos_token_id": 2,
        },
    )
    torch.manual_seed(0)
    model = LlamoForConditionalGeneration(config).eval()
    predictor = LlamoPredictor(model, processor, max_new_tokens=3, batch_size=3, name="tiny-llamo")
    items = load_babel_qa(BABEL_MINI, split="test")
    report = run_evaluation(
        "babel_qa",
        items,
        predictor,
        tmp_path,
        batch_size=3,
        progress=False,
        plot_item="000003",
    )
    assert report["num_items"] == 6 and report["model"] == "tiny-llamo"
    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 6 and all(isinstance(p["prediction"], str) for p in predictions)
    selection = json.loads((tmp_path / "key_frames_000003.json").read_text())
    assert len(selection["key_frame_indices"]) == 4 and len(selection["frame_scores"]) >= 4
    assert (tmp_path / "key_frames_000003.png").is_file()
    # batched and one-by-one generation agree (left padding handled by the processor)
    assert predictor.predict(items[:3]) == [text for item in items[:3] for text in predictor.predict([item])]
