"""`samplecnn catalogue` on a real two-node Ray cluster on this machine (one CPU per node).

Both nodes are real raylets (``ray.cluster_utils.Cluster``) on 127.0.0.1, and the job is the
CLI a cluster user runs: ``samplecnn catalogue --address HEAD:PORT`` in its own process. Each
actor reserves half a CPU (``--actor-cpus 0.5``): two actors take 1 of the 2 CPUs, which leaves
a CPU for Ray Data's tasks (ray-project/ray#44687), and Ray Data spreads actors over the nodes
(its default SPREAD strategy). The actors' node ids come from Ray's runtime context inside each
actor (``catalogue.json`` -> ``last_run.actors_seen``), checked against the cluster's nodes.

Loopback only: ``ray.init(address="127.0.0.1:PORT")`` rewrites a loopback address to the
machine's interface address (by design, ray-project/ray#26293), where these nodes do not listen;
the job's process runs with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, Ray's switch for
single-machine Ray, under which Ray keeps 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'samplecnn[ray]')")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install 'samplecnn[ray]')")
cluster_utils = pytest.importorskip("ray.cluster_utils", reason="this Ray has no ray.cluster_utils")

from samplecnn.runtime.catalogue_store import JOB_FILE  # noqa: E402
from samplecnn.runtime.tagger import Tagger  # noqa: E402

MAX_SEGMENTS = 2
TOLERANCE = 1e-6
COPIES = 3  # the 4 real clips x 3 names = 12 songs, one per actor call: work for both actors


@pytest.fixture(scope="module")
def two_nodes(request):
    """A head and a worker node, one CPU each, both on 127.0.0.1; shut down by a finaliser."""
    saved = os.environ.get("RAY_AUTH_MODE")
    loopback = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = cluster_utils.Cluster()

    def shut_down() -> None:
        cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)  # starting Ray turns token auth on for this process
        else:
            os.environ["RAY_AUTH_MODE"] = saved

    request.addfinalizer(shut_down)
    cluster.add_node(**loopback, include_dashboard=False)
    cluster.add_node(**loopback)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def songs(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("songs")
    for i in range(COPIES):
        for clip in sorted(data_dir.glob("*.ogg")):
            shutil.copy(clip, root / f"{i}_{clip.name}")
    return root


def test_two_node_job_runs_actors_on_both_nodes_and_matches_tagger(two_nodes, songs, tmp_path):
    out = tmp_path / "out"
    args = [str(songs), "--out", str(out), "--address", two_nodes.address, "--actors", "2", "--actor-cpus", "0.5",
            "--max-segments", str(MAX_SEGMENTS), "--songs-per-batch", "1", "--embeddings", "--no-progress"]  # fmt: skip
    # Ray Data hands batches to whichever actor is up: it waits for both here (its own setting,
    # read from the environment), so a slow-starting actor cannot miss every batch on a busy machine.
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S="300")
    done = subprocess.run([sys.executable, "-m", "samplecnn.cli", "catalogue", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "pool: 2 actor(s) x 1 thread(s), 0.5 Ray CPU(s) reserved each, on 2 CPUs (1 left for reading and writing)" in done.stderr

    # where the actors ran: node ids reported by Ray inside each actor, against the cluster's nodes
    last = json.loads((out / JOB_FILE).read_text())["last_run"]
    cluster_nodes = {two_nodes.head_node.node_id} | {n.node_id for n in two_nodes.worker_nodes}
    assert len(cluster_nodes) == 2
    seen = last["actors_seen"]
    assert {a["node_id"] for a in seen} == cluster_nodes, seen  # an actor on each node...
    assert all(a["songs"] > 0 for a in seen), seen  # ... each of which tagged songs
    assert sum(a["songs"] for a in seen) == 4 * COPIES
    assert len({(a["node_id"], a["pid"]) for a in seen}) == len(seen) == 2
    assert (last["actors"], last["actor_cpus"], last["cluster_cpus"], last["completed"]) == (2, 0.5, 2.0, True)
    assert "2 actor(s) on 2 node(s)" in done.stderr

    # the same rows as the one-machine runtime
    assert not list((out / "errors").glob("*.parquet"))
    rows = {r["path"]: r for r in pq.read_table(out / "songs").to_pylist()}
    paths = sorted(str(p) for p in songs.glob("*.ogg"))
    assert sorted(rows) == paths
    with Tagger(max_segments=MAX_SEGMENTS) as tagger:
        expected = list(tagger.tag(paths, embeddings=True))
    for want in expected:
        row = rows[want.path]
        assert row["duration"] == pytest.approx(want.duration, abs=TOLERANCE)
        assert {k.split(":", 1)[1]: v for k, v in row.items() if k.startswith("n_segments:")} == want.n_segments
        flat = {f"{head}:{label}": s for head, scores in want.scores.items() for label, s in scores.items()}
        assert {k for k in row if ":" in k and not k.startswith("n_segments:")} == flat.keys()
        np.testing.assert_allclose([row[k] for k in flat], list(flat.values()), rtol=0, atol=TOLERANCE, err_msg=want.path)
        for head, pairs in want.top.items():
            assert row[f"top_{head}"] == ";".join(label for label, _ in pairs)
        np.testing.assert_allclose(row["embedding"], want.embedding, rtol=0, atol=TOLERANCE, err_msg=want.path)
