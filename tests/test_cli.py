"""The CLI contract (`--json` prints one JSON object) on real photos and an embedded store."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from facekit.cli import app
from facekit.dual import PLACEMENTS
from facekit.metrics import assignment_scores, clustering_scores
from facekit.store import open_store
from facekit.store import schema as S

from .conftest import PEOPLE, make_bad_inputs

runner = CliRunner()


def cli(*args: str, ok: bool = True) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert (result.exit_code == 0) == ok, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, lfw):
    store = str(tmp_path_factory.mktemp("cli") / "store")
    folders = [str(lfw / name) for name in PEOPLE]
    out = cli("index", *folders, "--store", store, "--model", "dlib")
    return store, folders, out


def test_index_contract_and_idempotence(indexed):
    store, folders, out = indexed
    assert set(out) >= {"images", "faces_added", "faces_total", "skipped", "seconds"}
    assert out["faces_added"] == out["faces_total"] > out["images"] * 0.9
    again = cli("index", *folders, "--store", store, "--model", "dlib")
    assert again["faces_added"] == 0 and again["faces_total"] == out["faces_total"]


def test_stats_search_persons(indexed, lfw):
    store, _, out = indexed
    stats = cli("stats", "--store", store)
    assert stats["faces"] == out["faces_total"] and stats["model"] == "dlib_resnet_v1"
    assert set(stats) >= {"faces", "images", "people", "clusters", "labeled_faces", "model"}
    res = cli("search", str(lfw / "Art_Howe" / "Art_Howe_0001.jpg"), "--top-k", "3", "--store", store)
    assert [h["image_path"].split("/")[-2] for h in res["faces"][0]["hits"]] == ["Art_Howe"] * 3
    created = cli("persons", "create", "Zed", "--store", store)
    cli("persons", "rename", "Zed", "Zoe", "--store", store)
    listed = cli("persons", "list", "--store", store)["persons"]
    assert {"person_id": created["person_id"], "name": "Zoe", "faces": 0} in listed
    assert cli("persons", "delete", "Zoe", "--store", store)["faces_unlabeled"] == 0


def test_label_from_folders_and_evaluate(indexed):
    store, _, _ = indexed
    labeled = cli("label-from-folders", "--min-photos", "3", "--per-person", "2", "--store", store)
    assert labeled["people"] >= 3 and labeled["faces_labeled"] == 2 * labeled["people"]
    ev = cli("evaluate", "--store", store)
    assert set(ev["clustering"]) == {
        "pairwise_p",
        "pairwise_r",
        "pairwise_f",
        "bcubed_p",
        "bcubed_r",
        "bcubed_f",
        "nmi",
        "ari",
    }
    assert {"precision", "recall", "false_accept"} <= set(ev["assignment"])


def test_import_and_evaluate_match_hand_computed(tmp_path):
    """Faces in folders a, a, a, b, b, c; labels and clusters set by hand; evaluate = metrics by hand."""
    store = str(tmp_path / "store")
    paths = [f"/data/{p}/{i}.jpg" for i, p in enumerate("aaabbc")]
    emb = np.eye(6, 4, dtype=np.float32) + 0.1
    np.savez(tmp_path / "e.npz", embeddings=emb, paths=np.array(paths), model_id="toy")
    assert cli("import-embeddings", str(tmp_path / "e.npz"), "--store", store) == {
        "faces_added": 6,
        "faces_total": 6,
        "model": "toy",
        "seconds": pytest.approx(0, abs=60),
    }
    with open_store(store) as fs:
        ids = {r.image_path: r.face_id for r in fs.get_by_filter()}
        a = fs.create_person("Person A")
        fs.label_faces([ids[paths[0]]], a.person_id)  # by hand
        fs.update_payload(
            {
                ids[paths[1]]: {S.PERSON_ID: a.person_id, S.ASSIGNMENT_SOURCE: S.SOURCE_AUTO},  # right
                ids[paths[3]]: {S.PERSON_ID: a.person_id, S.ASSIGNMENT_SOURCE: S.SOURCE_AUTO},  # wrong: b
                ids[paths[4]]: {S.CLUSTER_ID: "unknown_cluster_1"},
                ids[paths[5]]: {S.CLUSTER_ID: "unknown_cluster_1"},
                ids[paths[2]]: {S.CLUSTER_ID: "unknown_noise_1"},
            }
        )
    ev = cli("evaluate", "--store", store)
    # Predicted groups: {0,1,3} person A, {4,5} cluster 1, {2} noise alone.
    want = clustering_scores(list("aaabbc"), ["A", "A", None, "A", "C1", "C1"])
    assert ev["clustering"] == pytest.approx(want)
    # Scored faces: 1..5. Assigned: 1 (right), 3 (wrong) → precision 0.5. Known people: {a} → faces 1, 2:
    # recall 1/2. Unknown faces 3, 4, 5 (b, b, c): 3 assigned → false accept 1/3.
    want_a = assignment_scores(list("aabbc"), ["a", None, "a", None, None], [True, True, False, False, False])
    assert (want_a["precision"], want_a["recall"], want_a["false_accept"]) == (0.5, 0.5, pytest.approx(1 / 3))
    assert ev["assignment"] == pytest.approx(want_a)


def test_bad_inputs_folder_exits_cleanly(tmp_path, photos):
    expected = make_bad_inputs(tmp_path / "bad", photos[0])
    out = cli("index", str(tmp_path / "bad"), "--store", str(tmp_path / "s"), "--model", "dlib")
    assert sorted(s["path"].split("/")[-1] for s in out["skipped"]) == sorted(expected)
    assert all(s["reason"] for s in out["skipped"]) and out["faces_added"] == 0


def test_errors_are_clear_json(tmp_path):
    out = cli("stats", "--store", str(tmp_path / "missing"), ok=False)
    assert f"no store at {tmp_path / 'missing'}" in out["error"] and not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    out = cli("stats", "--store", str(tmp_path / "empty"), ok=False)
    assert "no faces yet" in out["error"]
    (tmp_path / "bad.npz").write_bytes(b"nope")
    out = cli("import-embeddings", str(tmp_path / "bad.npz"), "--store", str(tmp_path / "s2"), ok=False)
    assert "cannot read embeddings file" in out["error"]
    np.savez(tmp_path / "zeros.npz", embeddings=np.r_[np.ones((1, 8)), np.zeros((1, 8))], paths=["a.jpg", "b.jpg"])
    out = cli("import-embeddings", str(tmp_path / "zeros.npz"), "--store", str(tmp_path / "s3"), ok=False)
    assert "1 embedding row(s) are all zeros (e.g. row 1, b.jpg)" in out["error"]


def test_cluster_dual_and_edits_from_the_cli(indexed):
    store, _, _ = indexed
    cli("label-from-folders", "--store", store, "--min-photos", "4", "--per-person", "2")
    out = cli("cluster-dual", "--store", store, "--unknown-min-size", "2", "--unknown-method", "chinese_whispers")
    assert set(out) >= {"assigned_to_people", "unknown_clusters", "noise", "total_processed", "seconds"}
    assert out["total_processed"] == cli("stats", "--store", store)["faces"]
    assert out["unknown_threshold_source"]["method"] in {"kNN similarity mixture", "model prior"}
    last = cli("evaluate", "--store", store)["last_pass"]  # evaluate says what the pass chose, and why
    assert last["unknown_threshold"] == out["unknown_threshold"] and last["unknown_threshold_source"]["reason"]
    measured = last["measured_link_precision"]  # and, with folder truth, what that threshold's links are worth
    assert measured["threshold"] == out["unknown_threshold"] and measured["faces"] > 0 and measured["pairs"] >= 0
    old_name = cli("cluster", "--store", store)  # the old command name still works
    assert old_name["faces_written"] == 0
    fixed = cli("cluster-dual", "--store", store, "--person-threshold", "0.99", "--max-faces", "5")
    assert fixed["total_processed"] == 5 and fixed["person_calibration"]["source"] == "fixed"
    cli("cluster-dual", "--store", store, "--person-threshold", "0.999")  # nobody assigned: the people form groups
    clusters = cli("clusters", "--store", store)["clusters"]
    assert len(clusters) >= 2, clusters
    a, b = list(clusters)[:2]
    assert cli("merge", a, b, "--store", store) == {"cluster_id": a}
    faces = cli("clusters", a, "--store", store)["faces"]
    split = cli("split", a, "--group", faces[0]["face_id"], "--store", store)["clusters"]
    assert len(split) == 2
    named = cli("name-cluster", split[1], "Newcomer", "--store", store)
    assert named["faces"] == 1
    moved = cli("reassign-face", faces[0]["face_id"], "--cluster", a, "--store", store)
    assert moved["cluster_id"] == a
    for _ in range(4):
        assert cli("undo", "--store", store)["undone"] is not None
    err = cli("cluster-dual", "--store", store, "--unknown-method", "kmeans", ok=False)
    assert "kmeans" in err["error"] and "chinese_whispers" in err["error"]
    err = cli("merge", "unknown_cluster_999", "unknown_cluster_998", "--store", store, ok=False)
    assert "no faces in cluster" in err["error"]


def test_index_with_cluster_says_where_new_faces_went_and_at_what_threshold(indexed, lfw):
    store, _, _ = indexed
    cli("cluster-dual", "--store", store)
    result = runner.invoke(app, ["index", str(lfw / "Aaron_Peirsol"), "--store", store, "--model", "dlib", "--cluster"])
    assert result.exit_code == 0, result.output
    placed = next(line for line in result.stdout.splitlines() if line.startswith("placed: "))
    counts = dict(part.rsplit(" ", 1) for part in placed.removeprefix("placed: ").split(", "))
    assert counts["new faces"] == "4" and sum(int(counts[name.replace("_", " ")]) for name in PLACEMENTS) == 4, placed
    assert "link threshold 0." in result.stdout and "the last pass's" in result.stdout, result.stdout
    again = cli("index", str(lfw / "Aaron_Peirsol"), "--store", store, "--model", "dlib", "--cluster")
    assert again["faces_added"] == 0 and sum(again["clustering"][name] for name in PLACEMENTS) == 0


def test_usage_and_unexpected_errors_honour_json(tmp_path):
    """The installed `facekit` command (its `main`): usage errors exit 2 with JSON, never a rich box only."""
    import subprocess
    import sys

    def run(*args: str) -> tuple[int, dict]:
        done = subprocess.run(
            [sys.executable, "-c", "from facekit.cli import main; main()", *args], capture_output=True, text=True
        )
        (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        return done.returncode, json.loads(line)

    code, out = run("index", str(tmp_path), "--workers", "0", "--json")
    assert code == 2 and out["type"] == "UsageError" and "--workers" in out["error"]
    code, out = run("stats", "--no-such-option", "--json")
    assert code == 2 and "No such option" in out["error"]
    code, out = run("stats", "--store", str(tmp_path / "missing"), "--json")
    assert code == 1 and out["type"] == "StoreError"
