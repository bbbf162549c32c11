"""The run log as its readers rely on it: what rank 0 writes reads back in order, a line torn by a
crash is skipped, a resumed run's repeated step counts once (the later loss), and the local
progress bar's follower sees only this run's events and only complete lines."""

from __future__ import annotations

from recipe_trainer.run_log import RunLogFollower, RunLogWriter, read_run_log, run_log_path, step_losses


def test_events_read_back_in_order_and_a_torn_line_is_skipped(tmp_path):
    assert read_run_log(tmp_path) == []  # no log yet: no events, no error
    writer = RunLogWriter(tmp_path)
    writer.write("start", total_steps=3, resumed_from_step=None)
    writer.write("step", step=1, loss=2.5)
    with run_log_path(tmp_path).open("a") as handle:
        handle.write('{"event": "step", "step": 2, "lo')  # the crash came mid-write
    events = read_run_log(tmp_path)
    assert [(e["event"], e.get("step")) for e in events] == [("start", None), ("step", 1)]
    assert all(isinstance(e["time"], float) for e in events)


def test_a_step_run_again_after_a_resume_counts_with_its_later_loss(tmp_path):
    writer = RunLogWriter(tmp_path)
    for step, loss in [(1, 3.0), (2, 2.0), (2, 1.5), (3, None)]:  # step 2 again after a resume
        writer.write("step", step=step, loss=loss)
    writer.write("validation", step=3, validation_loss=1.0)
    assert step_losses(read_run_log(tmp_path)) == {1: 3.0, 2: 1.5, 3: None}


def test_the_follower_sees_only_new_complete_lines(tmp_path):
    writer = RunLogWriter(tmp_path)
    writer.write("end", step=4)  # a previous run's event
    follower = RunLogFollower(tmp_path)
    assert follower.new_events() == []
    writer.write("start", total_steps=8, resumed_from_step=4)
    with run_log_path(tmp_path).open("a") as handle:
        handle.write('{"event": "step", "step": 5,')  # still being written
    assert [e["event"] for e in follower.new_events()] == ["start"]
    with run_log_path(tmp_path).open("a") as handle:
        handle.write(' "loss": 1.0}\n')
    assert [(e["event"], e["step"]) for e in follower.new_events()] == [("step", 5)]
    assert follower.new_events() == []


def test_a_follower_started_before_the_log_exists_reads_it_from_the_start(tmp_path):
    follower = RunLogFollower(tmp_path)
    RunLogWriter(tmp_path).write("start", total_steps=2, resumed_from_step=None)
    assert [e["event"] for e in follower.new_events()] == ["start"]
