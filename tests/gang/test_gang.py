"""The gang really trains: the operator's own Indexed Job, run by a stand-in kubelet, two "nodes"
of DeepSpeed `--no_ssh` training on CPU with gloo (kubelet_harness.py says what is and is not real).

The operator's side is the real code throughout: `decide()` says which attempt to create, the
builders make its ConfigMap and Job, `PodView`/`JobView` read the pods back, `decide()` turns the
termination message into `status.evaluation` or a gang restart, and rank 0's /metrics is fetched
and parsed by `scrape`/`progress` as the operator's timer does.

Runs (each a few tens of seconds on 2 cores): a reference 2-node run; a 2-node run whose node 1 is
SIGKILLed and that the operator's next attempt finishes; one whose pod 1 is preempted (SIGTERM to
its PID 1, the pod supervisor) and that resumes from the stop checkpoint; a 2-node checkpoint
resumed on 1 node, and that run's checkpoint resumed on 2 nodes. Timings: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from recipe_api import parse_job
from recipe_api.contract import EXIT_CODE_PEER_LOST, POD_SUPERVISOR_MODULE, checkpoint_step_dir
from recipe_api.launch import free_port
from recipe_api.status import RecipeTrainingJobStatus
from recipe_api.trainer_config import CHECKPOINT_MOUNT_PATH
from recipe_operator.builders import build_config_map, build_job, checkpoint_claim_name
from recipe_operator.builders.configmap import RUN_DIR_NAME
from recipe_operator.failures import JobView, PodView
from recipe_operator.phases import CreateJob, Observed, decide
from recipe_operator.progress import build_last_checkpoint, build_progress, read_samples
from recipe_operator.scrape import fetch_metrics
from recipe_trainer import checkpoint_layout, run_layout
from recipe_trainer.run_log import read_run_log, step_losses

from .kubelet_harness import Gang, image_env, needs_namespaces

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    needs_namespaces(),
]

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart-cpu.yaml"
SAMPLE = ROOT / "examples" / "data" / "recipenlg_sample_999.csv"
STEPS = 6
COLLECTIVE_TIMEOUT = 60  # spec.runPolicy.collectiveTimeoutSeconds of these runs
RUN_TIMEOUT = 600  # a whole run; a hang shows up as a TimeoutError with the pods' logs
UID = "0f1e2d3c-gang-harness"
DATASET_CLAIM = "recipes"


def gang_manifest(nodes: int, metrics_port: int) -> dict:
    """The quickstart (scratch T5) as a cluster job: the sample on a dataset volume, 6 steps of a
    global batch of 16 (2 nodes x 8, or 1 node x 2 x 8: the same steps either way), a checkpoint
    every step, all kept."""
    manifest = yaml.safe_load(QUICKSTART.read_text())
    manifest["metadata"] = {"name": "gang", "namespace": "default"}
    spec = manifest["spec"]
    spec["dataset"].update(
        path=f"/data/{SAMPLE.name}", volume={"claimName": DATASET_CLAIM, "mountPath": "/data"}
    )
    spec["training"].update(maxSteps=STEPS, globalBatchSize=16)
    spec["validation"].update(samples=1, maxBatches=2)
    spec["checkpoint"].update(everySteps=1, keepLast=STEPS)
    spec["resources"].update(nodes=nodes)
    spec["metrics"] = {"port": metrics_port}
    spec["runPolicy"] = {"backoffLimit": 3, "collectiveTimeoutSeconds": COLLECTIVE_TIMEOUT}
    return manifest


@dataclass
class Run:
    """One attempt run by the harness, and what the operator saw of it."""

    gang: Gang
    exit_codes: list[int]
    scrapes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Cluster:
    """The operator's state machine and builders around the harness, for one RecipeTrainingJob."""

    def __init__(self, root: Path, manifest: dict, checkpoints: Path | None = None):
        self.root, self.manifest = root, manifest
        root.mkdir(parents=True, exist_ok=True)
        self.job = parse_job(manifest)
        self.status = RecipeTrainingJobStatus()
        self.checkpoints = checkpoints or root / "checkpoint-pvc"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.dataset = root / "dataset-pvc"
        self.dataset.mkdir(exist_ok=True)
        shutil.copy(SAMPLE, self.dataset / SAMPLE.name)
        # DeepSpeed's JIT-built ops for the pods (the image pre-builds them): a cache of their own,
        # since builds from another environment make ninja rebuild the shared one.
        self.extensions = ROOT / ".cache" / "torch_extensions" / "gang-pods"
        self.runs: list[Run] = []

    def decide(self, gang: Gang | None = None):
        observed = Observed(
            job=self.job,
            status=self.status,
            now=datetime.now(UTC),
            child=JobView.from_dict(gang.job_dict()) if gang else None,
            pods=tuple(PodView.from_dict(p) for p in gang.pod_dicts()) if gang else (),
        )
        decision = decide(observed)
        self.status = decision.status
        return decision

    def next_gang(self) -> Gang:
        """The Job of the attempt `decide()` asks to create, ready for the harness."""
        (create,) = [a for a in self.decide().actions if isinstance(a, CreateJob)]
        work = self.root / f"attempt-{create.attempt}"
        home = work / "home"
        home.mkdir(parents=True)
        return Gang(
            job=build_job(self.job, UID, create.attempt, default_image="chef-genius/trainer:dev"),
            config_map=build_config_map(self.job, UID),
            claims={checkpoint_claim_name(self.job): self.checkpoints, DATASET_CLAIM: self.dataset},
            work=work,
            base_env=image_env(self.extensions, home),
        )

    def run(self, gang: Gang, until_checkpoint: int | None = None) -> Run:
        """Start the gang and scrape rank 0's /metrics as the operator does until every pod has
        ended; with `until_checkpoint`, return as soon as that checkpoint is complete instead."""
        started = time.monotonic()
        run = Run(gang, [])
        gang.start()
        deadline = started + RUN_TIMEOUT
        while any(p.exit_code is None for p in gang.pods):
            if until_checkpoint and (self.checkpoints / checkpoint_step_dir(until_checkpoint)).is_dir():
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"gang still running after {RUN_TIMEOUT}s\n{gang.logs()}")
            rank0 = PodView.from_dict(gang.pod_dicts()[0])
            if rank0.running:
                scrape = asyncio.run(fetch_metrics(rank0.pod_ip, self.job.spec.metrics.port, timeout=1.0))
                if scrape.text:
                    run.scrapes.append(scrape.text)
            time.sleep(0.3)
        run.exit_codes = gang.wait(0)
        run.seconds = time.monotonic() - started
        self.runs.append(run)
        return run

    def train_log(self) -> list[dict]:
        return read_run_log(self.checkpoints / RUN_DIR_NAME)


def copy_checkpoint(source: Path, step: int, target: Path) -> Path:
    """A checkpoint volume holding only `step` (plus the scratch base model and the token cache),
    as if training had stopped there."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        if Path(directory) == source:
            return {n for n in names if n.startswith("step-") and n != checkpoint_step_dir(step)} | {
                checkpoint_layout.BEST_FILE
            }
        if Path(directory) == source / RUN_DIR_NAME:
            return {run_layout.RUN_LOG_FILE, run_layout.SAMPLES_FILE}
        return set()

    shutil.copytree(source, target, ignore=ignore)
    return target


# ---------------------------------------------------------------- the reference run


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-node run: attempt 1 of a fresh job, to the end."""
    cluster = Cluster(tmp_path_factory.mktemp("reference"), gang_manifest(2, free_port()))
    gang = cluster.next_gang()
    try:
        run = cluster.run(gang)
        decision = cluster.decide(gang)
    finally:
        gang.close()
    assert run.exit_codes == [0, 0], gang.logs()
    print(f"\n2-node reference run: {run.seconds:.1f}s")
    return cluster, run, decision


def test_two_node_gang_trains_to_the_end(reference):
    cluster, run, decision = reference
    events = cluster.train_log()
    (start,) = [e for e in events if e["event"] == "start"]
    assert (start["world_size"], start["total_steps"]) == (2, STEPS)
    assert sorted(step_losses(events)) == list(range(1, STEPS + 1))
    assert all(math.isfinite(loss) for loss in step_losses(events).values())
    assert decision.status.phase == "Succeeded"
    # The Job names the pod supervisor itself: the image's ENTRYPOINT was not needed (IMAGE_ENTRYPOINT).
    (container,) = run.gang.job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", POD_SUPERVISOR_MODULE]


def test_one_checkpoint_per_step_and_each_file_written_by_one_rank(reference):
    """Each step's checkpoint is on the shared volume once: one DeepSpeed optimizer shard and one
    RNG/data state per rank, and the model, tokenizer and trainer state from rank 0 only."""
    cluster, _, _ = reference
    steps = sorted(p.name for p in cluster.checkpoints.glob("step-*"))
    assert steps == [checkpoint_step_dir(s) for s in range(1, STEPS + 1)]
    assert not list(cluster.checkpoints.glob(".tmp-*"))
    for name in steps:
        deepspeed = cluster.checkpoints / name / checkpoint_layout.DEEPSPEED_DIR
        files = sorted(str(p.relative_to(deepspeed)) for p in deepspeed.rglob("*") if p.is_file())
        per_rank = [f for f in files if f.startswith("rank-")]
        shards = [f for f in files if "optim_states" in f]
        model_states = [f for f in files if "model_states" in f]
        assert per_rank == ["rank-00000.pt", "rank-00001.pt"], files
        assert len(shards) == 2 and {s.split("zero_pp_rank_")[1][0] for s in shards} == {"0", "1"}, files
        assert len(model_states) == 1, files
        for rank0_only in (
            checkpoint_layout.MODEL_DIR, checkpoint_layout.TOKENIZER_DIR, checkpoint_layout.STATE_FILE,
            checkpoint_layout.CONFIG_FILE,
        ):  # fmt: skip
            assert (cluster.checkpoints / name / rank0_only).exists()


def test_rank0_metrics_parse_into_the_operators_progress(reference):
    cluster, run, _ = reference
    assert run.scrapes, "rank 0's /metrics never answered while the gang ran"
    samples = read_samples(run.scrapes[-1])
    progress = build_progress(samples)
    losses = step_losses(cluster.train_log())
    assert progress["totalSteps"] == STEPS
    assert 1 <= progress["step"] <= STEPS
    assert progress["loss"] == pytest.approx(losses[progress["step"]], rel=1e-5)
    last = build_last_checkpoint(samples, None, CHECKPOINT_MOUNT_PATH)
    assert last["path"] == f"{CHECKPOINT_MOUNT_PATH}/{checkpoint_step_dir(last['step'])}"
    assert (cluster.checkpoints / checkpoint_step_dir(last["step"])).is_dir()


def test_termination_summary_parses_into_status_evaluation(reference):
    cluster, _, decision = reference
    validations = [e["validation_loss"] for e in cluster.train_log() if e["event"] == "validation"]
    evaluation = decision.status.evaluation
    assert evaluation.validation_loss == pytest.approx(min(validations))
    assert evaluation.perplexity == pytest.approx(math.exp(min(validations)), rel=1e-6)
    assert evaluation.best_checkpoint and evaluation.best_checkpoint.startswith(
        f"{CHECKPOINT_MOUNT_PATH}/step-"
    )
    assert decision.status.last_checkpoint.step == STEPS
    assert decision.status.last_checkpoint.path == f"{CHECKPOINT_MOUNT_PATH}/{checkpoint_step_dir(STEPS)}"


# ---------------------------------------------------------------- a node lost, and the gang restarted


def test_node_lost_fails_fast_and_the_next_attempt_resumes_exactly(reference, tmp_path):
    reference_losses = step_losses(reference[0].train_log())
    cluster = Cluster(tmp_path, gang_manifest(2, free_port()))
    first = cluster.next_gang()
    try:
        cluster.run(first, until_checkpoint=3)
        first.kill_pod(1)
        killed = time.monotonic()
        codes = first.wait(COLLECTIVE_TIMEOUT + 60)  # no hang in a collective
        print(f"\nnode 0 exited {time.monotonic() - killed:.1f}s after node 1 was killed")
        decision = cluster.decide(first)
    finally:
        first.close()
    assert codes == [EXIT_CODE_PEER_LOST, 128 + 9], first.logs()
    assert first.pods[0].termination_message().startswith("PeerLost: another rank of the gang vanished")
    assert decision.status.phase == "Restarting" and decision.status.attempt == 2, decision.status
    resume_from = max(int(p.name.removeprefix("step-")) for p in cluster.checkpoints.glob("step-*"))

    second = cluster.next_gang()
    assert second.job["metadata"]["labels"]["training.chefgenius.io/attempt"] == "2"
    try:
        run = cluster.run(second)
        decision = cluster.decide(second)
    finally:
        second.close()
    assert run.exit_codes == [0, 0], second.logs()
    assert decision.status.phase == "Succeeded"
    events = cluster.train_log()
    assert [e["resumed_from_step"] for e in events if e["event"] == "start"] == [None, resume_from]
    losses = step_losses(events)
    assert sorted(losses) == sorted(reference_losses)
    for step, loss in reference_losses.items():
        assert abs(losses[step] - loss) <= 1e-6, (step, losses[step], loss)


def test_a_hung_node_ends_the_gang_after_the_collective_timeout(tmp_path):
    """SIGSTOP leaves node 1's connections open, as a hung or silent node does: node 0 waits in its
    collective for runPolicy.collectiveTimeoutSeconds, not for ever, then leaves with PeerLost."""
    cluster = Cluster(tmp_path, gang_manifest(2, free_port()))
    gang = cluster.next_gang()
    try:
        cluster.run(gang, until_checkpoint=1)
        gang.stop_pod(1)
        stopped = time.monotonic()
        code = None
        deadline = stopped + COLLECTIVE_TIMEOUT + 120
        while (code := gang.pods[0].exit_code) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        waited = time.monotonic() - stopped
        print(f"\nnode 0 exited {waited:.1f}s after node 1 hung")
        message = gang.pods[0].termination_message()
    finally:
        gang.close()
    assert code == EXIT_CODE_PEER_LOST, gang.logs()
    assert message.startswith("PeerLost:"), message
    # Whichever bound fires first ends the wait: gloo's own timeout, or our collective watchdog
    # (timeout + its 30 s grace) when the hung step is one gloo's timeout does not cover.
    by_gloo = f"Timed out waiting {COLLECTIVE_TIMEOUT * 1000}ms" in message
    by_watchdog = "still waiting for another rank after" in message
    assert by_gloo or by_watchdog, message
    assert waited >= COLLECTIVE_TIMEOUT / 2, waited  # not a crash of its own: it waited for the peer


# ---------------------------------------------------------------- a pod preempted


def test_a_preempted_pod_makes_the_gang_checkpoint_and_the_next_attempt_resumes_there(reference, tmp_path):
    """The kubelet's SIGTERM to PID 1 of pod 1 only (the scheduler may preempt one pod of a gang):
    its supervisor tells its rank, all ranks agree to stop at the end of that step, write a
    checkpoint of it (no periodic one is due) and exit 143; the operator restarts the gang, and
    attempt 2 resumes from exactly that step and trains as the uninterrupted run did (docs/gang.md
    promises exact resume after preemption)."""
    reference_losses = step_losses(reference[0].train_log())
    manifest = gang_manifest(2, free_port())
    manifest["spec"]["checkpoint"]["everySteps"] = 1000
    cluster = Cluster(tmp_path, manifest)
    first = cluster.next_gang()
    try:
        first.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        while not step_losses(cluster.train_log()) and first.pods[0].exit_code is None:
            assert time.monotonic() < deadline, first.logs()
            time.sleep(0.2)
        first.terminate_pod(1)
        codes = first.wait(RUN_TIMEOUT)
        decision = cluster.decide(first)
    finally:
        first.close()
    assert codes == [143, 143], first.logs()
    reached = max(step_losses(cluster.train_log()))
    print(f"\npod 1 got SIGTERM after step 1; the gang stopped at step {reached}, exit codes {codes}")
    assert reached < STEPS
    assert sorted(p.name for p in cluster.checkpoints.glob("step-*")) == [checkpoint_step_dir(reached)]
    message = first.pods[0].termination_message()  # rank 0 speaks for the gang
    assert message.startswith(f"Interrupted: stopped by SIGTERM at step {reached}"), message
    assert (decision.status.phase, decision.status.attempt) == ("Restarting", 2), decision.status
    assert decision.status.failure.reason == "Signaled" and decision.status.failure.exit_code == 143

    second = cluster.next_gang()
    try:
        run = cluster.run(second)
    finally:
        second.close()
    assert run.exit_codes == [0, 0], second.logs()
    events = cluster.train_log()
    assert [e["resumed_from_step"] for e in events if e["event"] == "start"] == [None, reached]
    losses = step_losses(events)
    assert sorted(losses) == sorted(reference_losses) == list(range(1, STEPS + 1))
    for step, loss in reference_losses.items():
        assert abs(losses[step] - loss) <= 1e-6, (step, losses[step], loss)


# ---------------------------------------------------------------- another node count


def _steps(events: list[dict]) -> dict[int, dict]:
    return {e["step"]: e for e in events if e["event"] == "step"}


def _resume_on(nodes: int, checkpoints: Path, root: Path) -> list[dict]:
    cluster = Cluster(root, gang_manifest(nodes, free_port()), checkpoints=checkpoints)
    gang = cluster.next_gang()
    try:
        run = cluster.run(gang)
    finally:
        gang.close()
    assert run.exit_codes == [0] * nodes, gang.logs()
    print(f"\n{nodes}-node resumed run: {run.seconds:.1f}s")
    return cluster.train_log()


def test_two_node_checkpoint_resumes_on_one_node_and_back(reference, tmp_path):
    """What is promised on another node count (docs/gang.md): the same recipes in the same steps
    (equal token counts per step) and the same losses up to float summation order; RNG streams
    (dropout) restart from the seed, which this dropout-free model does not show."""
    reference_cluster = reference[0]
    expected = _steps(reference_cluster.train_log())

    one_node = _resume_on(
        1, copy_checkpoint(reference_cluster.checkpoints, 2, tmp_path / "pvc-1"), tmp_path / "one"
    )
    (start,) = [e for e in one_node if e["event"] == "start"]
    assert (start["world_size"], start["resumed_from_step"]) == (1, 2)
    two_node = _resume_on(2, copy_checkpoint(tmp_path / "pvc-1", 4, tmp_path / "pvc-2"), tmp_path / "two")
    (start,) = [e for e in two_node if e["event"] == "start"]
    assert (start["world_size"], start["resumed_from_step"]) == (2, 4)

    for events, steps in ((one_node, range(3, STEPS + 1)), (two_node, range(5, STEPS + 1))):
        got = _steps(events)
        assert sorted(got) == list(steps)
        for step in steps:
            assert got[step]["tokens"] == expected[step]["tokens"], step
            assert got[step]["loss"] == pytest.approx(expected[step]["loss"], rel=1e-5), step
