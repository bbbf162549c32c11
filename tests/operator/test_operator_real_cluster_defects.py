"""The operator against kmock for the defects a real cluster showed (issue 10): objects the job
does not own, pods the API refuses, status writes of a steady job, and leader election. What
only RBAC, admission or a controller decides is covered again in tests/e2e."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from kmock_cluster import Cluster, wait_for
from kopf.testing import KopfRunner
from recipe_api.launch import free_port
from recipe_operator import handlers, leader, loops, runtime
from recipe_operator.kube import Kube
from test_operator_behaviour import ARGS, NS, phase_is, rtj, start_pods, status


@pytest.fixture()
def operator(cluster):
    with KopfRunner(ARGS, timeout=30) as runner:
        yield cluster
    assert runner.exit_code == 0, runner.output[-2000:]


def test_a_same_named_job_it_does_not_own_is_left_alone_and_the_job_fails_naming_it(operator: Cluster):
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "taken", "namespace": NS, "labels": {"app": "someone-else"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }
    operator.create(foreign)
    operator.create(rtj("taken"))
    st = wait_for(phase_is(operator, "taken", "Failed"), what="Failed")
    assert st["failure"]["reason"] == "ConflictingObject"
    assert "Job ml/taken" in st["failure"]["message"] and "without an owner" in st["failure"]["message"]
    job = operator.get("Job", NS, "taken")
    assert job is not None and not job["metadata"].get("deletionTimestamp")
    assert job["metadata"]["labels"] == {"app": "someone-else"}


def test_a_same_named_service_it_does_not_own_fails_the_launch_instead_of_being_adopted(operator: Cluster):
    operator.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "clash", "namespace": NS},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    operator.create(rtj("clash"))
    st = wait_for(phase_is(operator, "clash", "Failed"), what="Failed")
    assert st["failure"]["reason"] == "ConflictingObject" and "Service ml/clash" in st["failure"]["message"]
    assert operator.get("Job", NS, "clash") is None
    assert not operator.get("Service", NS, "clash")["metadata"].get("ownerReferences")


def test_pods_refused_for_a_missing_priority_class_fail_the_job_with_the_api_message(operator: Cluster):
    operator.create(rtj("urgent", resources={"nodes": 1, "priorityClassName": "urgent"}))
    wait_for(lambda: operator.get("Job", NS, "urgent"), what="the Job")
    operator.patch("Job", NS, "urgent", {"metadata": {"uid": "job-uid-1"}})  # kmock assigns none
    message = 'Error creating: pods "urgent-0-x" is forbidden: no PriorityClass with name urgent was found'
    operator.create(  # what the Job controller posts when the Priority admission plugin refuses a pod
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "urgent.1", "namespace": NS},
            "involvedObject": {"kind": "Job", "name": "urgent", "namespace": NS, "uid": "job-uid-1"},
            "reason": "FailedCreate",
            "type": "Warning",
            "message": message,
            "lastTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    operator.patch("Job", NS, "urgent", {"metadata": {"annotations": {"touch": "1"}}})  # a watch event
    st = wait_for(phase_is(operator, "urgent", "Failed"), what="Failed")
    assert st["failure"]["reason"] == "PriorityClassNotFound" and message in st["failure"]["message"]


def test_a_steady_running_job_writes_no_status(cluster: Cluster, monkeypatch):
    writes: list[dict] = []
    original = Kube.patch_status

    async def counting(self, namespace, name, patch):
        writes.append(patch)
        await original(self, namespace, name, patch)

    monkeypatch.setattr(Kube, "patch_status", counting)
    monkeypatch.setattr(runtime, "RECONCILE_INTERVAL_SECONDS", 0.2)  # many periodic resyncs
    reconciled: list[str] = []  # the positive signal: reconciles of the job, by events and resyncs
    for module in (handlers, loops):

        async def counted(operator, namespace, name, _original=module.reconcile):
            await _original(operator, namespace, name)
            reconciled.append(name)

        monkeypatch.setattr(module, "reconcile", counted)
    with KopfRunner(ARGS, timeout=30) as runner:
        # rank 0's /metrics on a port nothing here serves: a trainer of another run on this machine
        # (at the default port, on any loopback address) would otherwise feed this job progress
        cluster.create(rtj("steady", metrics={"port": free_port()}))
        pods = start_pods(cluster, "steady", attempt=1)
        wait_for(phase_is(cluster, "steady", "Running"), what="Running")
        # the Running transition's follow-ups
        settled = reconciled.count("steady")
        wait_for(lambda: reconciled.count("steady") > settled + 2, what="reconciles after Running")
        before = len(writes)
        for i in range(5):  # pod and Job events as a kubelet's heartbeats would cause
            cluster.patch("Pod", NS, pods[0], {"metadata": {"annotations": {"beat": str(i)}}})
            cluster.patch("Job", NS, "steady", {"metadata": {"annotations": {"beat": str(i)}}})
        seen = reconciled.count("steady")
        wait_for(lambda: reconciled.count("steady") >= seen + 12, what="a dozen reconciles after the beats")
        assert writes[before:] == [], writes[before:]
        assert status(cluster, "steady")["phase"] == "Running"
    assert runner.exit_code == 0


WALL = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("holder", "renew_time_offset", "unchanged_for", "step"),
    [
        (None, None, 0, "acquire"),  # no Lease yet
        ("me", -1, 0, "renew"),
        ("other", -5, 5, "standby"),  # a live holder
        ("other", -16, 15, "acquire"),  # its record has not changed for the lease duration
        ("", -1, 0, "acquire"),  # released on a clean shutdown
        # The clocks disagree; only this replica's own observation counts:
        ("other", -3600, 0, "standby"),  # renewTime an hour "old" (our clock is ahead): just seen, so alive
        ("other", -3600, 14, "standby"),
        ("other", +3600, 15, "acquire"),  # renewTime in "the future" (its clock is ahead) yet silent 15 s
    ],
)
def test_lease_steps_depend_on_the_records_change_seen_on_the_local_clock(
    holder, renew_time_offset, unchanged_for, step
):
    spec = None
    if holder is not None:
        renew = (WALL + timedelta(seconds=renew_time_offset)).strftime(leader.MICRO)
        spec = {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew}
    first_seen = 1000.0  # monotonic seconds
    seen = leader.sight(None, spec, first_seen)
    assert leader.lease_step(spec, "me", seen, first_seen + unchanged_for) == step


def test_a_sighting_restarts_whenever_the_record_changes():
    spec = {"holderIdentity": "other", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z"}
    seen = leader.sight(None, spec, 100.0)
    assert leader.sight(seen, dict(spec), 110.0) is seen  # unchanged: still since 100
    renewed = leader.sight(seen, {**spec, "renewTime": "2026-01-01T00:00:02.000000Z"}, 110.0)
    assert renewed.since == 110.0
    assert leader.lease_step(spec, "me", renewed, 120.0) == "standby"  # 10 s since the renewal


def test_every_election_call_times_out_well_inside_the_lease():
    assert leader.API_TIMEOUT_SECONDS + leader.RENEW_SECONDS < leader.LEASE_SECONDS / 2


def test_one_of_two_electors_leads_and_the_other_takes_over_when_it_releases(cluster: Cluster):
    async def scenario() -> list[str]:
        kube = Kube.from_environment()
        log: list[str] = []

        def elector(me: str) -> leader.Elector:
            async def start() -> None:
                log.append(f"{me} leads")

            async def stop() -> None:
                log.append(f"{me} stops")

            return leader.Elector(kube, NS, "recipe-operator", start, stop, me=me)

        a, b = elector("a"), elector("b")
        assert await a.try_once() is True
        assert await b.try_once() is False
        await a.release()
        assert await b.try_once() is True and await a.try_once() is False
        kube.close()
        return log

    asyncio.run(scenario())
    lease = cluster._call("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/recipe-operator")
    assert lease["spec"]["holderIdentity"] == "b"


def test_pod_and_job_watches_filter_on_the_server_and_time_out_on_the_client():
    """kopf's `labels=` on a handler filters after every pod of the cluster has been streamed; the
    selector in settings.watching goes into the watch request itself (`labelSelector=`)."""
    import kopf

    settings = kopf.OperatorSettings()
    handlers.configure_watching(settings)
    pods = kopf.Resource("", "v1", "pods", kind="Pod", namespaced=True)
    jobs = kopf.Resource("batch", "v1", "jobs", kind="Job", namespaced=True)
    rtjs = kopf.Resource("training.chefgenius.io", "v1alpha1", "recipetrainingjobs", kind="RecipeTrainingJob")
    selectors = settings.watching.label_selectors
    assert (
        selectors.collect(pods)
        == selectors.collect(jobs)
        == ["app.kubernetes.io/managed-by=recipe-training-operator"]
    )
    assert selectors.collect(rtjs) == []
    events = kopf.Resource("", "v1", "events", kind="Event", namespaced=True)
    assert settings.watching.field_selectors.collect(events) == [
        "involvedObject.kind=Job,reason=FailedCreate"
    ]
    assert settings.watching.server_timeout < settings.watching.client_timeout


def test_a_standby_replica_does_nothing_until_it_holds_the_lease(cluster: Cluster, monkeypatch):
    """Defect 2: a replica that is not the leader writes nothing (no status, no children, no
    loops); when the leader's Lease is released it takes over and resyncs every job."""
    monkeypatch.setenv("RECIPE_OPERATOR_LEADER_ELECTION_LEASE", "recipe-operator")
    monkeypatch.setenv("RECIPE_OPERATOR_LEADER_ELECTION_NAMESPACE", NS)
    path = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"

    def held_by(holder: str) -> dict:
        now = datetime.now(UTC).strftime(leader.MICRO)
        return {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": now, "acquireTime": now}

    cluster._call(
        "POST",
        path,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "recipe-operator", "namespace": NS},
            "spec": held_by("other-replica"),
        },
    )
    cluster.create(rtj("waiting"))
    with KopfRunner(ARGS, timeout=30) as runner:
        for _ in range(4):  # the other replica keeps renewing
            time.sleep(1)
            cluster._call(
                "PATCH",
                f"{path}/recipe-operator",
                {"spec": held_by("other-replica")},
                "application/merge-patch+json",
            )
        assert status(cluster, "waiting") == {} and cluster.get("Job", NS, "waiting") is None
        cluster._call(
            "PATCH",
            f"{path}/recipe-operator",
            {"spec": {"holderIdentity": ""}},
            "application/merge-patch+json",
        )
        wait_for(lambda: cluster.get("Job", NS, "waiting"), what="the Job, once this replica leads")
        lease = cluster._call("GET", f"{path}/recipe-operator")
        assert lease["spec"]["holderIdentity"] not in ("", "other-replica")
    assert runner.exit_code == 0
    released = cluster._call("GET", f"{path}/recipe-operator")["spec"]
    assert released["holderIdentity"] == ""  # handed over at shutdown
