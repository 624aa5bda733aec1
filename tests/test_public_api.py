"""Keep the public API list honest: every name in __all__ exists, is sorted, and nothing heavy loads."""

import subprocess
import sys

import facekit


def test_all_is_sorted_and_importable():
    assert list(facekit.__all__) == sorted(facekit.__all__)
    for name in facekit.__all__:
        assert hasattr(facekit, name), name


def test_public_objects_have_docstrings():
    missing = [n for n in facekit.__all__ if n != "__version__" and not (getattr(facekit, n).__doc__ or "").strip()]
    assert not missing


def test_import_has_no_heavy_side_effects():
    code = "import sys, facekit; print(sorted(m for m in ('dlib', 'torch', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
