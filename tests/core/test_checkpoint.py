"""Checkpoint files: round trip, atomic writes, refusal of pickled objects."""

from __future__ import annotations

import os
import zipfile

import pytest
import torch

from napari_unet.core import checkpoint as checkpoint_module
from napari_unet.core.checkpoint import (
    FORMAT_VERSION,
    default_model_path,
    load_model,
    save_model,
)
from napari_unet.core.errors import InputError, UnsafeCheckpointError
from napari_unet.core.model import NormConfig, UNetConfig, build_model


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(depth=2, base_width=4)
    with torch.no_grad():
        model(torch.randn(2, 1, 8, 8) * 2 + 1)  # give batch norm running statistics
    return model


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key].cpu(), sb[key].cpu()), key


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = _tiny()
    model.norm = NormConfig(p_low=2.0, p_high=99.0)
    model.threshold = 0.37
    model.history = [{"epoch": 1, "train_loss": 0.5, "val_dice": float("nan")}]
    model.extra = {"val_split": ["a.tif", "b.tif"], "note": "x", "nested": {"k": [1, 2]}}
    path = save_model(model, tmp_path / "sub" / "m.pt")
    assert path == tmp_path / "sub" / "m.pt" and path.is_file()

    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == UNetConfig(depth=2, base_width=4)
    assert loaded.norm == NormConfig(p_low=2.0, p_high=99.0)
    assert loaded.threshold == pytest.approx(0.37)
    assert loaded.history[0]["epoch"] == 1 and loaded.history[0]["train_loss"] == 0.5
    assert loaded.extra == model.extra
    _assert_same_weights(model, loaded)
    x = torch.randn(1, 1, 12, 8)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x))


def test_checkpoint_file_holds_format_version_and_plain_data(tmp_path):
    path = save_model(_tiny(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    assert data["format_version"] == FORMAT_VERSION
    assert set(data) >= {"config", "norm", "threshold", "history", "extra", "state_dict"}
    assert data["config"] == {"in_channels": 1, "out_channels": 1, "depth": 2, "base_width": 4}


def test_save_leaves_no_temporary_files(tmp_path):
    save_model(_tiny(), tmp_path / "m.pt")
    save_model(_tiny(1), tmp_path / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    old = _tiny(0)
    save_model(old, path)
    before = path.read_bytes()

    real_save = torch.save

    def failing_save(obj, handle, *args, **kwargs):
        # Write part of a checkpoint, then fail, as a full disk or a crash would.
        real_save(obj, handle, *args, **kwargs)
        handle.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(_tiny(1), path)
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    _assert_same_weights(old, load_model(path))


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_model(_tiny(0), path)
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(_tiny(1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


class _Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    checkpoint = {
        "format": "napari-unet",
        "format_version": 1,
        "config": {"in_channels": 1, "out_channels": 1, "depth": 2, "base_width": 4},
        "payload": _Payload(marker),
    }
    torch.save(checkpoint, evil)
    # Sanity: an unsafe load of this file really would run the payload.
    assert not marker.exists()

    with pytest.raises(UnsafeCheckpointError) as info:
        load_model(evil)
    assert not marker.exists()
    assert "\n" not in str(info.value)

    torch.load(evil, weights_only=False)
    assert marker.exists()  # the payload was real


def test_legacy_pickle_with_an_object_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil_legacy.pt"
    torch.save({"payload": _Payload(marker)}, evil, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError):
        load_model(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a model at all" * 10,
        b"PK\x03\x04 broken zip",
        b"a quick note\n",  # torch's unpickler raises IndexError on it
        b"cells,area\n1,2\n",  # reads as a pickled global: still no model, not unsafe
    ],
    ids=["empty", "text", "broken-zip", "index-error", "csv"],
)
def test_corrupt_file_is_an_input_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_model(path)
    assert type(info.value) is InputError
    assert "\n" not in str(info.value)
    assert "choose a .pt saved by napari-unet" in str(info.value)


def test_truncated_checkpoint_is_an_input_error(tmp_path):
    path = save_model(_tiny(), tmp_path / "m.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        load_model(path)


def test_other_torch_files_are_not_models(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_tiny().state_dict(), path)  # a bare state_dict, no format marker
    with pytest.raises(InputError, match="not a napari-unet model"):
        load_model(path)


def test_newer_format_version_is_refused(tmp_path):
    path = save_model(_tiny(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    data["format_version"] = FORMAT_VERSION + 1
    torch.save(data, path)
    with pytest.raises(InputError, match="upgrade"):
        load_model(path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    path = save_model(_tiny(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    data["config"]["base_width"] = 8
    torch.save(data, path)
    with pytest.raises(InputError, match="do not fit"):
        load_model(path)


def test_missing_file_and_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(InputError):
        load_model(tmp_path)
    with pytest.raises(InputError):
        save_model(_tiny(), tmp_path)


def test_checkpoint_is_a_zip_archive(tmp_path):
    # torch's zip format: readable by the weights-only loader, inspectable with zipfile.
    path = save_model(_tiny(), tmp_path / "m.pt")
    assert zipfile.is_zipfile(path)


def test_default_model_path_is_inside_the_package():
    path = default_model_path()
    assert path.name == "default.pt"
    assert path.parent.name == "models"
    assert (
        path.parent.parent
        == checkpoint_module.Path(checkpoint_module.__file__).resolve().parents[1]
    )


def test_load_default(monkeypatch, tmp_path):
    if default_model_path().is_file():
        model = load_model("default")
        assert not model.training
        assert 0.0 <= model.threshold <= 1.0
    # Without the shipped file the error says what to do, in one line.
    monkeypatch.setattr(checkpoint_module, "default_model_path", lambda: tmp_path / "default.pt")
    with pytest.raises(InputError, match="default model is missing") as info:
        load_model("default")
    assert "\n" not in str(info.value)
    save_model(_tiny(), tmp_path / "default.pt")
    assert load_model("default").config.depth == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_loading_onto_an_absent_device_is_a_device_error(tmp_path):
    from napari_unet.core.errors import DeviceError

    path = save_model(_tiny(), tmp_path / "m.pt")
    with pytest.raises(DeviceError):
        load_model(path, device="cuda")


def test_saved_file_is_readable_only_as_weights(tmp_path):
    # The whole file loads with weights_only=True: no object needs unpickling.
    path = save_model(_tiny(), tmp_path / "m.pt")
    torch.load(path, weights_only=True)
    assert os.path.getsize(path) > 0


def test_saved_file_gets_the_usual_permissions(tmp_path):
    # A temporary file from mkstemp would be private (0600); a shipped or shared
    # model must be readable like any other file the user saves.
    umask = os.umask(0o022)
    try:
        path = save_model(_tiny(), tmp_path / "m.pt")
    finally:
        os.umask(umask)
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o644
