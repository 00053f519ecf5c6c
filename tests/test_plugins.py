"""Plugin discovery, registration, conflicts and failures."""

from __future__ import annotations

import types

import pytest

from mmtrack_kd import hookimpl
from mmtrack_kd.data import AdapterOptions, DatasetPlugin, ModalityAdapter
from mmtrack_kd.errors import PluginError
from mmtrack_kd.plugins import load_registry

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


def modality_plugin(*adapters: type) -> types.SimpleNamespace:
    @hookimpl
    def mmtrack_kd_register_modalities(register):
        for adapter in adapters:
            register(adapter)

    return types.SimpleNamespace(mmtrack_kd_register_modalities=mmtrack_kd_register_modalities)


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
    # the rgb adapter comes along: every run reads its RGB stream through it
    assert sorted(info.name for info in registry.plugins) == ["rgb", "second"]
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
    class BadOptions(DatasetPlugin):
        name = "bad"
        Options = AdapterOptions  # not a DatasetOptions: no root or split
        modalities = ("rgb", "thermal")
        splits = ("test",)
        protocol = "otb"

        def list_sequences(self):
            return []

        def load_sequence(self, name):
            raise KeyError(name)

    @hookimpl
    def mmtrack_kd_register_datasets(register):
        register(BadOptions)

    plugin = types.SimpleNamespace(mmtrack_kd_register_datasets=mmtrack_kd_register_datasets)
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
