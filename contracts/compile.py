"""Compile the Solidity contracts in ``contracts/`` with the solc-js pinned in ``package.json``.

The compiler is the npm package ``solc`` (solc-js), driven through ``node`` with a standard
JSON input on stdin. Settings are fixed for reproducibility and for the chain we run on:

* ``evmVersion`` is set explicitly to ``shanghai`` -- the validators run py-evm's Shanghai VM,
  while recent solc-js releases default to a newer EVM whose opcodes py-evm cannot execute;
* optimizer enabled with 200 runs;
* ``metadata.bytecodeHash = "none"`` so the bytecode carries no metadata hash.

Artifacts go to ``contracts/build/<ContractName>.json`` (sorted keys, indent 2, trailing
newline). Usage::

    traceledger contracts compile          # (re)write the artifacts
    traceledger contracts compile --check  # exit 1 if committed artifacts are stale
    python -m contracts.compile [--check]  # the same without the CLI
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts import load_artifact  # noqa: F401 - re-exported: the one artifact loader

CONTRACTS_DIR = Path(__file__).resolve().parent
ROOT = CONTRACTS_DIR.parent
BUILD_DIR = CONTRACTS_DIR / "build"
PACKAGE_JSON = ROOT / "package.json"

EVM_VERSION = "shanghai"
OPTIMIZER = {"enabled": True, "runs": 200}

# Reads a standard-JSON input on stdin, writes {"version", "output"} on stdout.
_NODE_DRIVER = r"""
const solc = require('solc');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({ version: solc.version(), output }));
});
"""

class CompileError(RuntimeError):
    """The toolchain is missing or solc reported errors."""


# ---------------------------------------------------------------------------- toolchain


def pinned_solc_version() -> str:
    """The exact solc version pinned in package.json (``dependencies.solc``)."""
    try:
        package = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CompileError(f"{PACKAGE_JSON} not found: it pins the solc-js compiler") from exc
    version = package.get("dependencies", {}).get("solc")
    if not version or not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise CompileError(f'package.json must pin solc exactly (e.g. "solc": "0.8.37"), got {version!r}')
    return version


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CompileError(
            f"`{name}` was not found on PATH. Install Node.js (>= 18, with npm) to compile the "
            "contracts; the compiler is solc-js pinned in package.json."
        )
    return path


def ensure_solc() -> None:
    """Make sure node is available and node_modules/solc is installed (``npm ci`` if missing)."""
    _require_tool("node")
    if (ROOT / "node_modules" / "solc" / "package.json").is_file():
        return
    npm = _require_tool("npm")
    print("node_modules/solc missing: running `npm ci` ...", file=sys.stderr)
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"`npm ci` failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    if not (ROOT / "node_modules" / "solc" / "package.json").is_file():
        raise CompileError("`npm ci` succeeded but node_modules/solc is still missing")


# ---------------------------------------------------------------------------- compilation


def source_files() -> list[Path]:
    return sorted(CONTRACTS_DIR.glob("*.sol"))


def _source_key(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def standard_json_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {key: {"content": text} for key, text in sorted(sources.items())},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": dict(OPTIMIZER),
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }


def _run_solc(std_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ensure_solc()
    node = _require_tool("node")
    proc = subprocess.run(
        [node, "-e", _NODE_DRIVER],
        cwd=ROOT,
        input=json.dumps(std_input).encode("utf-8"),
        capture_output=True,
    )
    if proc.returncode != 0:
        raise CompileError(
            f"solc-js failed (exit {proc.returncode}):\n{proc.stderr.decode('utf-8', 'replace')}"
        )
    result = json.loads(proc.stdout)
    return result["version"], result["output"]


def _short_version(full: str) -> str:
    # "0.8.37+commit.f401782d.Emscripten.clang" -> "0.8.37"
    return full.split("+", 1)[0]


def compile_all() -> dict[str, dict]:
    """Compile every ``contracts/*.sol``; return ``{ContractName: artifact}`` without writing.

    Interfaces and abstract contracts (no bytecode) produce no artifact.
    """
    files = source_files()
    if not files:
        raise CompileError(f"no .sol files in {CONTRACTS_DIR}")
    raw = {_source_key(p): p.read_bytes() for p in files}
    sources = {key: data.decode("utf-8") for key, data in raw.items()}

    full_version, output = _run_solc(standard_json_input(sources))
    pinned = pinned_solc_version()
    if _short_version(full_version) != pinned:
        raise CompileError(
            f"installed solc-js is {full_version} but package.json pins {pinned}: run `npm ci`"
        )

    problems = output.get("errors", [])
    errors = [e for e in problems if e.get("severity") == "error"]
    for warning in (e for e in problems if e.get("severity") != "error"):
        print(warning.get("formattedMessage", warning.get("message")), file=sys.stderr)
    if errors:
        raise CompileError(
            "solc reported errors:\n" + "\n".join(e.get("formattedMessage", e.get("message")) for e in errors)
        )

    artifacts: dict[str, dict] = {}
    for key in sorted(output.get("contracts", {})):
        for name, contract in sorted(output["contracts"][key].items()):
            bytecode = contract["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interface or abstract contract
            if name in artifacts:
                raise CompileError(f"contract name {name!r} is defined in more than one source file")
            artifacts[name] = {
                "contractName": name,
                "abi": contract["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
                "compiler": {
                    "version": full_version,
                    "evmVersion": EVM_VERSION,
                    "optimizer": dict(OPTIMIZER),
                },
                "sourceSha256": hashlib.sha256(raw[key]).hexdigest(),
            }
    return artifacts


def render(artifact: dict) -> str:
    """Deterministic text of an artifact file."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------- artifacts


def diff_artifacts(artifacts: dict[str, dict]) -> list[str]:
    """Differences between the artifacts on disk and ``artifacts`` (empty list = up to date)."""
    problems: list[str] = []
    for name, artifact in sorted(artifacts.items()):
        path = BUILD_DIR / f"{name}.json"
        if not path.is_file():
            problems.append(f"missing: {path.relative_to(ROOT)}")
        elif path.read_text(encoding="utf-8") != render(artifact):
            problems.append(f"out of date: {path.relative_to(ROOT)}")
    if BUILD_DIR.is_dir():
        for path in sorted(BUILD_DIR.glob("*.json")):
            if path.stem not in artifacts:
                problems.append(f"stale (no such contract): {path.relative_to(ROOT)}")
    return problems


def write_artifacts(artifacts: dict[str, dict]) -> list[Path]:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in sorted(artifacts.items()):
        path = BUILD_DIR / f"{name}.json"
        text = render(artifact)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    for path in sorted(BUILD_DIR.glob("*.json")):
        if path.stem not in artifacts:
            path.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if contracts/build differs from a fresh compile",
    )
    args = parser.parse_args(argv)
    try:
        artifacts = compile_all()
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        problems = diff_artifacts(artifacts)
        if problems:
            print("contract artifacts differ from a fresh compile:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            print("run `traceledger contracts compile` and commit contracts/build/", file=sys.stderr)
            return 1
        print(f"contract artifacts up to date ({', '.join(sorted(artifacts))})")
        return 0

    for path in write_artifacts(artifacts):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
