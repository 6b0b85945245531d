"""What the deployment tests read: the compose file with Compose's variable interpolation, docker/.env.example,
the Dockerfile, the build context that .dockerignore lets through, and a secret scanner.

Nothing here needs a Docker engine: the rules are Compose's and Docker's documented ones, implemented for what
these files use (interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error},
${VAR:+alt}, $VAR and $$; .dockerignore: Go filepath.Match patterns plus `**`, `!` exceptions, last match wins,
a pattern matching a folder matching everything inside it)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SETUP_SH = ROOT / "scripts" / "setup.sh"
REQUIREMENTS = ROOT / "requirements.txt"

# ---- Compose interpolation ----------------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable (${VAR:?message} or ${VAR?message}) is missing: what compose refuses to run with."""


@dataclass(frozen=True)
class Reference:
    name: str
    op: str | None  # None, ":-", "-", ":?", "?", ":+", "+"
    arg: str | None


def references(text: str) -> Iterator[Reference]:
    for m in _INTERPOLATION.finditer(text):
        if m.group("escaped"):
            continue
        yield Reference(m.group("braced") or m.group("named"), m.group("op"), m.group("arg"))


def interpolate_str(text: str, env: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        is_set, non_empty = value is not None, bool(value)
        if op in (":-", "-"):
            return value if (non_empty if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            if not (non_empty if op == ":?" else is_set):
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (non_empty if op == ":+" else is_set) else ""
        return value or ""

    return _INTERPOLATION.sub(repl, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Compose interpolates values, not keys."""
    if isinstance(node, str):
        return interpolate_str(node, env)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    return node


def string_values(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from string_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from string_values(value)


def load_compose_raw() -> dict[str, Any]:
    """The compose file as YAML (anchors and `<<` merges resolved), before interpolation."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_references() -> list[Reference]:
    # The raw text, so that a ${VAR} inside an x- extension that no service uses is seen as well.
    text = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    return list(references(text))


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file (comments and blank lines skipped; these files use no quoting)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a KEY=VALUE line: {line!r}"
        values[key.strip()] = value.strip()
    return values


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file interpolated with `env` (default: the values of docker/.env.example)."""
    return interpolate(load_compose_raw(), read_env_file() if env is None else env)


def published_ports(service: dict[str, Any]) -> Iterator[tuple[str | None, str, str]]:
    """(host ip, published port, target) of every `ports` entry of an interpolated service, either syntax."""
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            yield entry.get("host_ip"), str(entry.get("published", "")), str(entry.get("target"))
            continue
        spec = str(entry).split("/", 1)[0]
        if spec.startswith("["):  # [::1]:8080:80
            host, _, rest = spec[1:].partition("]:")
            published, _, target = rest.partition(":")
            yield host, published, target
            continue
        parts = spec.split(":")
        if len(parts) == 3:
            yield parts[0], parts[1], parts[2]
        elif len(parts) == 2:
            yield None, parts[0], parts[1]
        else:
            yield None, "", parts[0]


def service_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


# ---- Dockerfile --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    return instructions


def airflow_pin() -> str:
    match = re.search(r"^apache-airflow==([^\s;]+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, "requirements.txt pins no apache-airflow version"
    return match.group(1)


def setup_spark_jars() -> tuple[list[str], list[str]]:
    """SPARK_JARS and SPARK_PROVIDED of scripts/setup.sh: the jars `make setup` fetches."""
    text = SETUP_SH.read_text()

    def array(name: str) -> list[str]:
        match = re.search(rf"^{name}=\((.*?)^\)", text, re.MULTILINE | re.DOTALL)
        assert match, f"{SETUP_SH} has no {name}=( ... ) array"
        body = "\n".join(line.split("#", 1)[0] for line in match.group(1).splitlines())
        return re.findall(r'"([^"]+)"', body)

    return array("SPARK_JARS"), array("SPARK_PROVIDED")


# ---- .dockerignore and the build context -------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # **/ : zero or more folders
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    exception: bool
    regex: re.Pattern[str]


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[IgnoreRule]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if exception else line).lstrip("/")
        rules.append(IgnoreRule(pattern, exception, _pattern_regex(pattern)))
    return rules


def is_ignored(rel_path: str, rules: list[IgnoreRule]) -> bool:
    """Docker's rule: the last matching line wins; a line matching a parent folder matches the path too."""
    parts = rel_path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for rule in rules:
        if any(rule.regex.fullmatch(candidate) for candidate in candidates):
            ignored = not rule.exception
    return ignored


def build_context_files(root: Path = ROOT) -> list[str]:
    """Files (relative paths) that `docker build` from the repository root would send to the builder."""
    rules = dockerignore_rules()
    exception_prefixes = [rule.pattern for rule in rules if rule.exception]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for d in dirnames:
            rel = f"{rel_dir}/{d}" if rel_dir else d
            # A folder left out whole (nothing inside it let back in) is not walked: .git, .venv, .local.
            if is_ignored(rel, rules) and not any(p == rel or p.startswith(rel + "/") or "*" in p
                                                  for p in exception_prefixes):
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = f"{rel_dir}/{f}" if rel_dir else f
            if not is_ignored(rel, rules):
                found.append(rel)
    return sorted(found)


def git_files(root: Path = ROOT) -> list[str]:
    """Files git tracks plus the untracked ones it does not ignore (what the next commit could add)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    return sorted({p for p in out.decode().split("\0") if p and (root / p).is_file()})


# ---- Secret scan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:  # never the value itself
        return f"{self.path}:{self.line}: {self.rule}"


_TOKEN_RULES = [
    ("AWS access key id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("Databricks token", re.compile(r"(?<![A-Za-z0-9])dapi[0-9a-f]{32}(?:-\d+)?(?![A-Za-z0-9])")),
    ("GitHub token", re.compile(r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36,}")),
    ("Slack token", re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("credentials in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:(?P<value>[^\s@/'\"]+)@[^\s/'\"]+")),
]
_SECRET_KEY = r"[A-Za-z0-9_.-]*(?:password|passwd|secret|token|fernet_key|api_key|access_key)[A-Za-z0-9_.-]*"
# key: value (YAML, JSON) and KEY=value (.env, shell, ini, Dockerfile ENV/ARG); a quoted literal anywhere.
_ASSIGNMENT = re.compile(
    rf"""(?ix)(?:^|[\s{{,(])["']?(?P<key>{_SECRET_KEY})["']?(?:\s*=|:(?!:))\s*(?P<value>"[^"]*"|'[^']*'|[^\s,#}}]+)"""
)
# Keys that name where a secret is, not the secret: a file, a path, a command, an environment variable.
_REFERENCE_KEY = re.compile(r"(?i)(?:_file|_path|_dir|_cmd|_command|_env|_var|_name)$")
_REFERENCE = re.compile(r"\$\{[^}]*\}")
_CONFIG_SUFFIXES = {".yaml", ".yml", ".env", ".example", ".cfg", ".ini", ".toml", ".json", ".properties", ".conf",
                    ".sh", ".txt", ""}

# What a value may be without being a secret: a reference to one, an empty or masked value, or an obvious
# placeholder. Anything else assigned to a password/secret/token key is reported.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me", "replace-with", "placeholder", "example", "dummy",
                       "your-", "<", "***", "xxxx", "redacted", "not-a-secret", "mlops-test-")


def is_placeholder(value: str) -> bool:
    v = value.strip().strip("\"'").strip()
    if not v or v.lower() in {"none", "null", "~", "true", "false", "''", '""'}:
        return True
    if v.startswith(("$", "{{", "%(")) or "${" in v:  # ${VAR}, $$VAR, templates: a reference, not a value
        return True
    return any(marker in v.lower() for marker in PLACEHOLDER_MARKERS)


def _is_literal(value: str, suffix: str) -> bool:
    """Whether an assigned value is a literal (not code: `conn.password`, `os.environ[...]`, a call)."""
    if value[:1] in "\"'":
        return True
    if suffix not in _CONFIG_SUFFIXES:
        return False  # in code, only quoted literals count
    return not re.search(r"[()\[\]]", value)


def scan_text(path: str, text: str) -> list[Finding]:
    """Token shapes everywhere; literal values of password/secret/token keys everywhere except in the Python
    test code, whose dummy credentials only ever meet local fakes (moto, mocks)."""
    findings = []
    suffix = Path(path).suffix.lower() if not Path(path).name.startswith(".env") else ".env"
    check_assignments = not (path.startswith("tests/") and suffix == ".py")
    for number, line in enumerate(text.splitlines(), 1):
        for rule, regex in _TOKEN_RULES:
            for m in regex.finditer(_REFERENCE.sub("${}", line) if rule == "credentials in a URL" else line):
                value = m.groupdict().get("value")
                if value is not None and is_placeholder(value):
                    continue
                findings.append(Finding(path, number, rule))
        if not check_assignments:
            continue
        # ${VAR:?message} is a reference: its inside is neither a key nor a value.
        for m in _ASSIGNMENT.finditer(_REFERENCE.sub("${}", line)):
            key, value = m.group("key"), m.group("value")
            if _REFERENCE_KEY.search(key) or not _is_literal(value, suffix) or is_placeholder(value):
                continue
            findings.append(Finding(path, number, f"literal value for {key}"))
    return findings


def scan_files(paths: list[str], root: Path = ROOT) -> list[Finding]:
    findings = []
    for rel in paths:
        data = (root / rel).read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        findings.extend(scan_text(rel, data.decode("utf-8", errors="replace")))
    return findings
