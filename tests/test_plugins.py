"""Plugin discovery, registration, conflicts and failures."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd import hookimpl
from mmtrack_kd.cli import main
from mmtrack_kd.data import AdapterOptions, DatasetOptions, DatasetPlugin, ModalityAdapter
from mmtrack_kd.data.results_io import write_otb_result
from mmtrack_kd.errors import PluginError
from mmtrack_kd.evaluation import protocol_of
from mmtrack_kd.plugins import default_registry, load_registry

MYDATA = Path(__file__).resolve().parent / "fixtures" / "mmtrack-kd-mydata"

PLUGIN_SOURCE = '''
from mmtrack_kd import hookimpl
from mmtrack_kd.data import AdapterOptions, ModalityAdapter


class NearInfrared(ModalityAdapter):
    name = "{name}"
    description = "test sensor"

    class Options(AdapterOptions):
        gain: float = 1.0

    channels = 1
    mean = (0.5,)
    std = (0.25,)

    def read(self, sequence, index):
        raise NotImplementedError

    def render(self, frame):
        raise NotImplementedError


@hookimpl
def mmtrack_kd_register_modalities(register):
    register(NearInfrared)
'''


def make_adapter(adapter_name: str) -> type[ModalityAdapter]:
    class Adapter(ModalityAdapter):
        name = adapter_name
        channels = 3
        mean = (0.0, 0.0, 0.0)
        std = (1.0, 1.0, 1.0)

        class Options(AdapterOptions):
            gain: float = 1.0

        def read(self, sequence, index):
            raise NotImplementedError

        def render(self, frame):
            raise NotImplementedError

    return Adapter


def make_dataset(dataset_name: str, protocol_name: str = "otb",
                 options: type = DatasetOptions) -> type[DatasetPlugin]:
    class Dataset(DatasetPlugin):
        name = dataset_name
        Options = options
        modalities = ("rgb", "thermal")
        splits = ("test",)
        protocol = protocol_name

        def list_sequences(self):
            return []

        def load_sequence(self, name):
            raise KeyError(name)

    return Dataset


def hook_plugin(hook: str, *classes: type) -> types.SimpleNamespace:
    """A plugin object whose hook ``hook`` registers ``classes``."""

    def register_all(register):
        for cls in classes:
            register(cls)

    return types.SimpleNamespace(**{hook: hookimpl(register_all)})


def dataset_plugin(*datasets: type) -> types.SimpleNamespace:
    return hook_plugin("mmtrack_kd_register_datasets", *datasets)


def modality_plugin(*adapters: type) -> types.SimpleNamespace:
    return hook_plugin("mmtrack_kd_register_modalities", *adapters)


def test_entry_point_discovery_names_distribution_and_version(make_distribution):
    make_distribution(
        "mmtrack-kd-nir", "1.2.3", {"nir": "nir_plugin"}, {"nir_plugin": PLUGIN_SOURCE.format(name="nir")}
    )
    registry = load_registry(only=["nir"])
    assert "nir" in registry.modalities
    info = registry.owner("modality", "nir")
    assert (info.name, info.distribution, info.version) == ("nir", "mmtrack-kd-nir", "1.2.3")
    assert info.registers == ["modality nir"]
    assert info.hooks == ["mmtrack_kd_register_modalities"]


def test_plugin_that_fails_to_import_is_reported_and_the_rest_load(make_distribution, caplog):
    make_distribution(
        "broken-plugin",
        "0.1",
        {"broken": "broken_plugin", "good": "good_plugin"},
        {
            "broken_plugin": "raise RuntimeError('sensor driver missing')\n",
            "good_plugin": PLUGIN_SOURCE.format(name="good"),
        },
    )
    registry = load_registry(only=["broken", "good"])
    assert "good" in registry.modalities
    [failure] = registry.failures
    assert failure.distribution == "broken-plugin"
    assert "RuntimeError: sensor driver missing" in failure.error
    assert "broken-plugin" in caplog.text and "sensor driver missing" in caplog.text


def test_plugin_whose_hook_raises_is_reported_and_withdrawn(make_distribution, caplog):
    failing = PLUGIN_SOURCE.format(name="half") + (
        "\n\n@hookimpl\ndef mmtrack_kd_register_datasets(register):\n"
        "    raise OSError('calibration file missing')\n"
    )
    make_distribution(
        "half-plugin",
        "0.2",
        {"half": "half_plugin", "good": "good_plugin"},
        {"half_plugin": failing, "good_plugin": PLUGIN_SOURCE.format(name="good")},
    )
    registry = load_registry(only=["half", "good"])
    assert "good" in registry.modalities
    # what the plugin registered before its other hook failed is withdrawn, not half-loaded
    assert "half" not in registry.modalities
    [failure] = registry.failures
    assert failure.distribution == "half-plugin" and failure.registers == []
    assert "mmtrack_kd_register_datasets failed: OSError: calibration file missing" in failure.error
    assert "half-plugin" in caplog.text


def test_environment_variable_restricts_loaded_plugins(make_distribution, monkeypatch):
    make_distribution(
        "two-plugins",
        "1.0",
        {"first": "first_plugin", "second": "second_plugin"},
        {
            "first_plugin": PLUGIN_SOURCE.format(name="first"),
            "second_plugin": PLUGIN_SOURCE.format(name="second"),
        },
    )
    monkeypatch.setenv("MMTRACK_KD_PLUGINS", "second")
    registry = load_registry()
    # the rgb adapter and the built-in protocols come along: every run reads its RGB stream
    # through the one and scores with the others
    assert sorted(info.name for info in registry.plugins) == ["protocols", "rgb", "second"]
    assert sorted(registry.modalities) == ["rgb", "second"]
    monkeypatch.setenv("MMTRACK_KD_PLUGINS", "")
    assert load_registry().plugins == []


def test_duplicate_names_are_an_error_naming_both_plugins(make_distribution):
    make_distribution(
        "pkg-a", "1.0", {"a": "plugin_a"}, {"plugin_a": PLUGIN_SOURCE.format(name="nir")}
    )
    make_distribution(
        "pkg-b", "2.0", {"b": "plugin_b"}, {"plugin_b": PLUGIN_SOURCE.format(name="nir")}
    )
    with pytest.raises(PluginError) as error:
        load_registry(only=["a", "b"])
    message = str(error.value)
    assert "'nir' is registered twice" in message
    assert "pkg-a 1.0" in message and "pkg-b 2.0" in message


def test_misspelt_hook_is_reported_with_a_suggestion(caplog):
    @hookimpl
    def mmtrack_kd_register_modality(register):  # missing the final "s"
        raise AssertionError("must never be called")

    typo = types.SimpleNamespace(mmtrack_kd_register_modality=mmtrack_kd_register_modality)
    good = modality_plugin(make_adapter("thermal"))
    registry = load_registry(only=[], extra_plugins=[("typo", typo), ("good", good)])
    assert list(registry.modalities) == ["thermal"]
    [failure] = registry.failures
    assert failure.name == "typo"
    assert "mmtrack_kd_register_modality" in failure.error
    assert "did you mean 'mmtrack_kd_register_modalities'" in failure.error


def test_registering_something_that_is_not_an_adapter_withdraws_that_plugin_only():
    good = modality_plugin(make_adapter("thermal"))
    registry = load_registry(only=[], extra_plugins=[("bad", modality_plugin(dict)), ("good", good)])
    assert list(registry.modalities) == ["thermal"]
    [failure] = registry.failures
    assert failure.name == "bad" and not failure.registers
    assert "not a subclass of mmtrack_kd.data.modality.ModalityAdapter" in failure.error
    with pytest.raises(PluginError, match="failed to load: bad"):
        registry.modality("dict")


def test_unknown_name_lists_what_is_installed_and_suggests():
    registry = load_registry(only=[], extra_plugins=[("p", modality_plugin(make_adapter("thermal")))])
    with pytest.raises(PluginError, match=r"unknown modality 'thermel' \(did you mean 'thermal'\?\); installed: thermal"):
        registry.modality("thermel")


def test_dataset_registration_checks_options_base():
    # AdapterOptions is not a DatasetOptions: no root or split
    plugin = dataset_plugin(make_dataset("bad", options=AdapterOptions))
    registry = load_registry(only=[], extra_plugins=[("bad", plugin)])
    assert "bad" not in registry.datasets
    [failure] = registry.failures
    assert "Options must subclass mmtrack_kd.data.dataset.DatasetOptions" in failure.error


def test_the_readme_narrowing_example_loads_what_an_rgbt_run_needs(monkeypatch):
    """README: ``MMTRACK_KD_PLUGINS=thermal,lasher`` (once: unknown modality 'rgb')."""
    monkeypatch.setenv("MMTRACK_KD_PLUGINS", "thermal,lasher")
    registry = load_registry()
    assert sorted(registry.modalities) == ["rgb", "thermal"]
    assert list(registry.datasets) == ["lasher"]


def test_official_dataset_spellings_find_the_plugin():
    registry = load_registry()
    for spelling in ("LasHeR", "DepthTrack", "VisEvent", "RGBT234", "GTOT"):
        assert registry.dataset(spelling).name == spelling.lower()
    with pytest.raises(PluginError, match="unknown dataset 'LasHer2'"):
        registry.dataset("LasHer2")


# --------------------------------------------------------------------------- protocol plugins


@pytest.fixture
def mydata_installed(make_distribution, monkeypatch):
    """The dataset guide's package (a dataset and the protocol it is scored with), discovered
    through its entry point; only it and what every run loads."""
    make_distribution("mmtrack-kd-mydata", "0.2.0", {"mydata": "mmtrack_kd_mydata"}, {})
    monkeypatch.syspath_prepend(str(MYDATA))
    monkeypatch.setenv("MMTRACK_KD_PLUGINS", "mydata")
    monkeypatch.setenv("COLUMNS", "200")  # rich's table must not wrap the names we look for
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()
    for name in [name for name in sys.modules if name.startswith("mmtrack_kd_mydata")]:
        del sys.modules[name]


def write_mydata_annotations(root: Path, frames: int = 6) -> np.ndarray:
    """Two test sequences in the ``mydata`` layout (empty frame files: scoring reads none);
    the target is out of view in frames 2 and 3 of each."""
    root.mkdir()
    (root / "splits.csv").write_text("sequence,split\nwalk,test\nrun,test\n")
    boxes = np.array([[10.0 + 4 * i, 12.0, 20.0, 16.0] for i in range(frames)])
    for name in ("walk", "run"):
        (root / name / "frames").mkdir(parents=True)
        for i in range(frames):
            (root / name / "frames" / f"{i:06d}_rgb.jpg").touch()
        rows = [f"{i},{x:g},{y:g},{w:g},{h:g},{0 if i in (2, 3) else 1}"
                for i, (x, y, w, h) in enumerate(boxes)]
        (root / name / "track.csv").write_text("frame,x,y,w,h,visible\n" + "\n".join(rows) + "\n")
    return boxes


def test_a_third_party_protocol_scores_its_dataset(mydata_installed, tmp_path, capsys):
    """A result folder on the guide's dataset is scored with the protocol its package brings:
    the frames without the target count for nothing (the OTB protocol would count misses)."""
    boxes = write_mydata_annotations(tmp_path / "mydata")
    results = tmp_path / "tracker"
    for name in ("walk", "run"):
        tracked = boxes.copy()
        tracked[2:4] = [300.0, 300.0, 5.0, 5.0]  # far off while the target is out of view
        write_otb_result(results / f"{name}.txt", tracked)
    registry = default_registry()
    assert registry.owner("protocol", "mydata-visible").distribution == "mmtrack-kd-mydata"
    status = main(["evaluate", "--results", str(results), "--dataset", "mydata", "--root",
                   str(tmp_path / "mydata"), "--split", "test", "--out", str(tmp_path / "eval")])
    assert status == 0, capsys.readouterr()
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    scored = report["datasets"]["mydata"]["tracker"]
    assert scored["protocol"] == "mydata-visible"
    # every visible frame is exact: precision 1; success 20 of the 21 overlap thresholds (> 1 fails)
    assert scored["scores"] == pytest.approx({"PR": 1.0, "SR": 20 / 21})
    assert "mydata (mydata-visible protocol" in capsys.readouterr().out


def test_plugins_lists_a_third_party_protocol(mydata_installed, capsys):
    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out
    assert "protocol mydata-visible" in listing and "dataset mydata" in listing
    assert "protocol lasher" in listing  # the built-in ones, through their own entry point


def test_a_dataset_naming_an_unknown_protocol_is_refused_naming_its_plugin(tmp_path):
    Unscored = make_dataset("unscored", "lashr")
    registry = load_registry(only=["protocols"], extra_plugins=[("mine", dataset_plugin(Unscored))])
    dataset = Unscored(Unscored.Options(root=tmp_path, split="test"))
    with pytest.raises(PluginError, match=r"dataset unscored \(plugin mine .*\) is scored with "
                       r"protocol 'lashr', which no loaded plugin registers: unknown protocol "
                       r"'lashr' \(did you mean 'lasher'\?\); installed: depthtrack, gtot, lasher"):
        protocol_of(dataset, registry)


def test_registering_something_that_is_not_a_protocol_withdraws_that_plugin():
    plugin = hook_plugin("mmtrack_kd_register_protocols", dict)
    registry = load_registry(only=["protocols"], extra_plugins=[("bad", plugin)])
    [failure] = registry.failures
    assert "not a subclass of mmtrack_kd.evaluation.protocols.base.Protocol" in failure.error
    assert "lasher" in registry.protocols and "dict" not in registry.protocols


# --------------------------------------------------------------------------- commands


def command_plugin(name: object, add_arguments: object = None, run: object = None) -> types.SimpleNamespace:
    @hookimpl
    def mmtrack_kd_register_commands(register):
        register(name, add_arguments or (lambda parser: None), run or (lambda args: 0), help="a command")

    return types.SimpleNamespace(mmtrack_kd_register_commands=mmtrack_kd_register_commands)


def test_a_registered_command_is_filed_with_its_plugin():
    registry = load_registry(only=[], extra_plugins=[("greet", command_plugin("hello"))])
    command = registry.commands["hello"]
    assert (command.name, command.help) == ("hello", "a command")
    info = registry.owner("command", "hello")
    assert info.registers == ["command hello"] and info.hooks == ["mmtrack_kd_register_commands"]


@pytest.mark.parametrize(("name", "add_arguments", "message"), [
    ("Hello World", None, "registered the command name 'Hello World'"),
    ("hello", "not callable", "command 'hello' has no callable `add_arguments`"),
])
def test_a_malformed_command_withdraws_that_plugin_only(name, add_arguments, message):
    registry = load_registry(only=[], extra_plugins=[("bad", command_plugin(name, add_arguments)),
                                                     ("good", command_plugin("fine"))])
    assert list(registry.commands) == ["fine"]
    [failure] = registry.failures
    assert failure.name == "bad" and message in failure.error


def test_two_plugins_with_one_command_name_are_an_error_naming_both():
    with pytest.raises(PluginError, match="command 'hello' is registered twice: by plugin (one|two) .* and by plugin (one|two)"):
        load_registry(only=[], extra_plugins=[("one", command_plugin("hello")), ("two", command_plugin("hello"))])
