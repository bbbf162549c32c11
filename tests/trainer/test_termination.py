import json

from recipe_api.status import Evaluation
from recipe_api.trainer_config import TerminationSummary
from recipe_trainer.training.termination import MESSAGE_LIMIT_BYTES, write_failure, write_success


def _summary(**overrides) -> TerminationSummary:
    fields = {
        "step": 1200,
        "epoch": 3.0,
        "best_checkpoint": "/checkpoints/step-00001000",
        "last_checkpoint": "/checkpoints/step-00001200",
        "evaluation": Evaluation(
            validation_loss=1.25, perplexity=3.49, quality=0.71, best_checkpoint="/checkpoints/step-00001000"
        ),
    }
    return TerminationSummary(**(fields | overrides))


def test_success_summary_is_json_the_operator_reads_back_with_the_same_model(tmp_path):
    log = tmp_path / "termination-log"
    write_success(_summary(), log)
    data = json.loads(log.read_text())
    assert data["evaluation"] == {
        "validationLoss": 1.25,
        "perplexity": 3.49,
        "quality": 0.71,
        "bestCheckpoint": "/checkpoints/step-00001000",
    }
    assert TerminationSummary.model_validate(data) == _summary()


def test_a_diverged_run_still_writes_valid_json(tmp_path):
    log = tmp_path / "termination-log"
    write_success(_summary(evaluation=Evaluation(validation_loss=float("nan"), perplexity=float("inf"))), log)
    assert json.loads(log.read_text())["evaluation"]["perplexity"] is None


def test_overlong_paths_are_dropped_so_the_json_stays_whole_and_under_the_limit(tmp_path):
    log = tmp_path / "termination-log"
    long_path = "/checkpoints/" + "x" * 3000
    write_success(_summary(last_checkpoint=long_path, best_checkpoint=long_path), log)
    raw = log.read_bytes()
    assert len(raw) <= MESSAGE_LIMIT_BYTES
    data = json.loads(raw)
    assert data["step"] == 1200 and data["evaluation"]["validationLoss"] == 1.25
    assert data["lastCheckpoint"] is None


def test_failure_reason_is_one_line_naming_the_error(tmp_path):
    log = tmp_path / "termination-log"
    write_failure(RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB"), log)
    assert log.read_text() == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_huge_failure_reason_is_cut_to_the_kubernetes_limit(tmp_path):
    log = tmp_path / "termination-log"
    write_failure("é" * 5000, log)  # two bytes each: the cut must not split a character
    raw = log.read_bytes()
    assert len(raw) <= MESSAGE_LIMIT_BYTES
    assert raw.decode().endswith("...")


def test_unwritable_path_prints_the_message_instead_of_raising(tmp_path, capsys):
    """A directory where the file belongs: unwritable for root too (CI runs as root, so a
    permission-based lock would skip this test exactly where it must run)."""
    taken = tmp_path / "termination-log"
    taken.mkdir()
    write_failure("loss was NaN for 5 steps in a row", taken)
    assert "loss was NaN for 5 steps in a row" in capsys.readouterr().err


def test_missing_directory_prints_the_summary_instead_of_raising(tmp_path, capsys):
    write_success(_summary(), tmp_path / "no" / "such" / "dir" / "termination-log")
    assert '"step":1200' in capsys.readouterr().err
