"""Models from the package index and GGUF imports, on tiny GGUF files written here (no network).

The GGUF files are written the way llama.cpp's converter writes them (q/k rows permuted), so
an import that forgot to undo the permutation, or mapped a tensor to the wrong place, shows as
a logits mismatch against the model the file was written from.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
import torch

from selfrl.cli import main
from selfrl.model_store import (
    SOURCE_FILE,
    GGUFError,
    PackagedModel,
    cached_model,
    fetch_model,
    import_gguf,
    sha256_file,
)
from selfrl.models import ModelError, resolve_model_path
from selfrl.testing import tiny_gguf


@pytest.fixture(scope="module")
def gguf_pair(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_gguf(tmp_path_factory.mktemp("gguf"))


def _logits(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids).logits


def _wheel(tmp_path: Path, gguf: Path, member: str = "pkg/model.gguf") -> Path:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(gguf, member)
        z.writestr("pkg/__init__.py", "")
    return wheel


def _source(gguf: Path, member: str = "pkg/model.gguf", sha: str | None = None) -> PackagedModel:
    return PackagedModel(package="selfrl-test-no-such-package", version="1.0", member=member,
                         sha256=sha or sha256_file(gguf), description="a test model", license="MIT")


def test_import_gguf_reproduces_the_model_it_was_written_from(gguf_pair, tmp_path):
    gguf, reference = gguf_pair
    out = import_gguf(gguf, tmp_path / "model")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])  # (1, T)
    assert torch.allclose(_logits(out, ids), _logits(reference, ids), atol=1e-5)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    text = "Mia has 12 apples. How many apples does Mia have now?"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    config = (out / "config.json").read_text()
    assert "quantization_config" not in config  # else every later load is flagged as quantized
    from selfrl.models import load_causal_lm

    model = load_causal_lm(str(out))
    model.save_pretrained(tmp_path / "saved-again")  # a GGUF-loaded model would refuse this
    assert (out / SOURCE_FILE).is_file()


def test_import_refuses_an_unsupported_architecture(tmp_path):
    gguf, _ = tiny_gguf(tmp_path / "src", architecture="mamba")
    with pytest.raises(GGUFError, match=r"architecture 'mamba' is not supported \(supported: llama"):
        import_gguf(gguf, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("cut", [100, 0.6])
def test_import_refuses_a_truncated_file_and_leaves_nothing(gguf_pair, tmp_path, cut):
    gguf, _ = gguf_pair
    data = gguf.read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:cut if isinstance(cut, int) else int(len(data) * cut)])
    rc = main(["models", "import-gguf", str(bad), "--output", str(tmp_path / "out")])
    assert rc == 2
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cut.gguf"]


def test_import_error_names_the_file_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    assert main(["models", "import-gguf", str(bad), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "not a readable GGUF" in err
    assert main(["models", "import-gguf", str(tmp_path / "missing.gguf"), "--output",
                 str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_import_does_not_overwrite_without_force(gguf_pair, tmp_path):
    gguf, _ = gguf_pair
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(GGUFError, match="already exists"):
        import_gguf(gguf, out)
    assert (out / "keep.txt").read_text() == "mine"


def test_fetch_from_a_local_wheel_then_the_name_resolves(gguf_pair, tmp_path):
    gguf, reference = gguf_pair
    home = tmp_path / "home"
    wheel = _wheel(tmp_path, gguf)
    folder = fetch_model("tiny", wheel=wheel, home=home, source=_source(gguf))
    assert folder == home / "tiny" and cached_model("tiny", home) == folder
    ids = torch.tensor([[3, 4, 5]])
    assert torch.allclose(_logits(folder, ids), _logits(reference, ids), atol=1e-5)
    assert [p.name for p in home.iterdir() if not p.name.endswith(".lock")] == ["tiny"]
    # A second fetch is a cache hit: nothing is downloaded (the wheel is gone).
    wheel.unlink()
    assert fetch_model("tiny", wheel=wheel, home=home, source=_source(gguf)) == folder


def test_fetch_checks_the_sha256(gguf_pair, tmp_path):
    gguf, _ = gguf_pair
    home = tmp_path / "home"
    with pytest.raises(ModelError, match="sha256 .* expected 0000000000000000"):
        fetch_model("tiny", wheel=_wheel(tmp_path, gguf), home=home, source=_source(gguf, sha="0" * 64))
    assert cached_model("tiny", home) is None
    assert [p.name for p in home.iterdir() if not p.name.endswith(".lock")] == []


def test_fetch_a_wheel_without_the_gguf(gguf_pair, tmp_path):
    gguf, _ = gguf_pair
    wheel = _wheel(tmp_path, gguf, member="pkg/other.gguf")
    with pytest.raises(ModelError, match=r"has no pkg/model.gguf \(expected selfrl-test-no-such-package"):
        fetch_model("tiny", wheel=wheel, home=tmp_path / "home", source=_source(gguf))


def test_fetch_a_corrupted_wheel(gguf_pair, tmp_path):
    gguf, _ = gguf_pair
    wheel = tmp_path / "broken.whl"
    wheel.write_bytes(_wheel(tmp_path, gguf).read_bytes()[:5000])
    with pytest.raises(ModelError, match="not a readable wheel"):
        fetch_model("tiny", wheel=wheel, home=tmp_path / "home", source=_source(gguf))


def test_fetch_when_pip_cannot_reach_an_index(gguf_pair, tmp_path):
    gguf, _ = gguf_pair
    source = _source(gguf)
    with pytest.raises(ModelError, match="pip could not fetch selfrl-test-no-such-package==1.0"):
        fetch_model("tiny", home=tmp_path / "home", source=source, pip=_no_index_pip())
    with pytest.raises(ModelError, match="could not run pip"):
        fetch_model("tiny", home=tmp_path / "home", source=source, pip=[str(tmp_path / "no-such-pip")])
    assert cached_model("tiny", tmp_path / "home") is None


def _no_index_pip() -> list[str]:
    """pip that cannot reach any index (``download`` options come after the subcommand)."""
    return [sys.executable, "-c",
            "import sys; from pip._internal.cli.main import main; "
            "sys.exit(main(sys.argv[1:2] + ['--no-index', '--find-links', '/nonexistent'] + sys.argv[2:]))"]


def test_unknown_name_suggests_the_known_ones(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFRL_HOME", str(tmp_path))
    assert main(["models", "fetch", "smollm-135m"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'smollm-135m'; did you mean 'smollm2-135m'" in err
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "models") in out and "smollm2-135m" in out and "not fetched" in out


def test_a_cached_known_model_resolves_without_fetching(gguf_pair, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFRL_HOME", str(tmp_path))
    folder = tmp_path / "models" / "smollm2-135m"
    import_gguf(gguf_pair[0], folder)
    assert resolve_model_path("smollm2-135m") == str(folder)
