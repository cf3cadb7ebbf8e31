"""The committed contract artifacts are exactly what the pinned solc-js produces from the sources."""

from __future__ import annotations

import json
import shutil

import pytest

EXPECTED = {"EnterpriseRegistry", "AnchorRegistry"}


def test_artifacts_match_sources(compiler) -> None:
    if shutil.which("node") is None:
        pytest.skip("`node` is not installed: cannot recompile the contracts with solc-js")
    artifacts = compiler.compile_all()
    assert EXPECTED <= set(artifacts)
    problems = compiler.diff_artifacts(artifacts)
    assert not problems, (
        "contracts/build is out of date, run `traceledger contracts compile`:\n" + "\n".join(problems)
    )
    for name, artifact in artifacts.items():
        assert artifact["compiler"]["evmVersion"] == "shanghai", name


def test_committed_artifacts_target_shanghai(compiler) -> None:
    pinned = compiler.pinned_solc_version()
    for name in EXPECTED:
        artifact = compiler.load_artifact(name)
        assert artifact["contractName"] == name
        assert artifact["compiler"]["evmVersion"] == "shanghai"
        assert artifact["compiler"]["optimizer"] == {"enabled": True, "runs": 200}
        assert artifact["compiler"]["version"].startswith(pinned + "+")
        assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2
        assert artifact["deployedBytecode"].startswith("0x") and len(artifact["deployedBytecode"]) > 2
        path = compiler.BUILD_DIR / f"{name}.json"
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_load_artifact_rejects_bad_names(compiler) -> None:
    with pytest.raises(ValueError):
        compiler.load_artifact("../package")
    with pytest.raises(FileNotFoundError):
        compiler.load_artifact("NoSuchContract")


def test_compiler_pinned_exactly(compiler) -> None:
    package = json.loads((compiler.ROOT / "package.json").read_text(encoding="utf-8"))
    assert package["dependencies"]["solc"][0].isdigit()
    lock = json.loads((compiler.ROOT / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/solc"]["version"] == package["dependencies"]["solc"]
