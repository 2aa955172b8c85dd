"""Repository-wide checks: ruff (STYLE.md) and the boundary between ns3l/ and the stacks."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_check_passes():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_unchanged():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ns3l_imports_neither_stack():
    stacks = {"realistic_ssl", "mixmatch", "fixmatch"}
    for path in (ROOT / "ns3l").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & stacks, path


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    return names


# Which of our packages each may import: ns3l under every stack, the MixMatch stack under
# FixMatch (libml's lineage: its ResNet, data, evaluation), and no edge back.
LAYERS = {
    "ns3l": {"ns3l"},
    "realistic_ssl": {"ns3l", "realistic_ssl"},
    "mixmatch": {"ns3l", "mixmatch"},
    "fixmatch": {"ns3l", "mixmatch", "fixmatch"},
}


def test_the_packages_layer_without_cycles():
    ours = set(LAYERS) | {"scripts", "bench", "examples"}
    seen = {package: set() for package in LAYERS}
    for package, allowed in LAYERS.items():
        for path in (ROOT / package).rglob("*.py"):
            tops = {name.split(".")[0] for name in imported_modules(path)} & ours
            assert tops <= allowed, (path, tops - allowed)
            seen[package] |= tops - {package}
    assert seen["fixmatch"] == {"ns3l", "mixmatch"}  # it reuses the MixMatch stack's pieces


def test_public_modules_need_only_keras_and_numpy():
    """The top level of `ns3l` is what the loss-only install (Keras, numpy) must be able to
    import: no TensorFlow, TFDS or absl, and of `ns3l.training` only the stdlib-only console
    filter that our commands turn on in ns3l/__init__.py."""
    allowed_third_party = {"keras", "numpy"}
    for path in sorted((ROOT / "ns3l").glob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top == "ns3l":
                assert not name.startswith("ns3l.training") or name == "ns3l.training", (
                    path,
                    name,
                )
            else:
                assert top in sys.stdlib_module_names | allowed_third_party, (path, name)


def test_console_filter_needs_only_the_stdlib():
    """`import ns3l` from our commands loads ns3l/training/console.py before TensorFlow."""
    for name in imported_modules(ROOT / "ns3l" / "training" / "console.py"):
        assert name.split(".")[0] in sys.stdlib_module_names, name
