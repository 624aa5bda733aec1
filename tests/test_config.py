import pytest

from facekit.config import get_settings
from facekit.errors import ConfigError

# The spec's defaults, except the unknown-face method and minimum group size, which the LFW benchmark chose
# (spec: hdbscan, 3; see bench/RESULTS.md).
SPEC_DEFAULTS = {
    "model_checkpoint": "",
    "training_enabled": False,
    "triplet_margin": 0.2,
    "training_epochs": 20,
    "batch_size": 32,
    "learning_rate": 0.0001,
    "person_match_threshold": 0.7,
    "unknown_clustering_method": "chinese_whispers",
    "unknown_min_cluster_size": 2,
    "unknown_eps": 0.5,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for key in list(os.environ):
        if key.startswith(("FACE_", "FACEKIT_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_spec_defaults():
    s = get_settings()
    for key, value in SPEC_DEFAULTS.items():
        assert getattr(s, key) == value, key


def test_env_names(monkeypatch, tmp_path):
    monkeypatch.setenv("FACE_PERSON_MATCH_THRESHOLD", "0.8")
    monkeypatch.setenv("FACE_UNKNOWN_CLUSTERING_METHOD", "dbscan")
    monkeypatch.setenv("FACE_TRAINING_EPOCHS", "5")
    monkeypatch.setenv("FACEKIT_STORE", str(tmp_path / "s"))
    monkeypatch.setenv("FACEKIT_QDRANT_URL", "http://localhost:6333")
    monkeypatch.setenv("FACEKIT_QDRANT_API_KEY", "secret")
    s = get_settings()
    assert (s.person_match_threshold, s.unknown_clustering_method, s.training_epochs) == (0.8, "dbscan", 5)
    assert s.store == tmp_path / "s" and s.qdrant_url == "http://localhost:6333"
    assert s.qdrant_api_key.get_secret_value() == "secret" and "secret" not in repr(s)


def test_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("FACE_UNKNOWN_MIN_CLUSTER_SIZE=7\n")
    assert get_settings().unknown_min_cluster_size == 7


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("FACE_PERSON_MATCH_THRESHOLD", "1.7", "less than or equal to 1"),
        ("FACE_UNKNOWN_CLUSTERING_METHOD", "kmeans", "'hdbscan', 'dbscan' or 'agglomerative'"),
        ("FACE_MODEL_NAME", "vgg", "'buffalo_l', 'mobilefacenet', 'dlib'"),
        ("FACE_BATCH_SIZE", "one", "valid integer"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        get_settings()
    msg = str(err.value)
    assert name in msg and repr(value) in msg and expected in msg
