import json
from types import SimpleNamespace

import torch

from mmtrack_kd.runtime.environment import write_env


def test_env_json_names_versions_and_plugins(tmp_path):
    plugin = SimpleNamespace(name="thermal", distribution="mmtrack-kd", version="1", registers=["modality thermal"],
                             error=None)
    write_env(tmp_path / "run", [plugin])
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["torch"] == torch.__version__
    assert env["plugins"] == [{"name": "thermal", "distribution": "mmtrack-kd", "version": "1",
                               "registers": ["modality thermal"], "error": None}]
