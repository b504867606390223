"""Reading a Dockerfile and its ``.dockerignore``, and the rules TruckLLM's image must keep.

Where ``docker build`` cannot run (no daemon on this machine) and as a second opinion beside
hadolint, these checks say what the image will be: stages, the user it runs as, its health
check and stop signal, how pip installs (only from the hashed locks or the repository's own
folders), that nothing secret is baked in, and that every file the build copies passes the
build context's ignore file.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

SECRET_NAME = re.compile(r"(TOKEN|KEY|PASSWORD|SECRET|CREDENTIAL)", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its stage (0-based), keyword (upper case) and arguments."""

    stage: int
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """The instructions, continuation lines joined and comment lines dropped."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, args.strip()))
    return instructions


def _flags(args: str) -> tuple[dict[str, str], list[str]]:
    """``--name=value`` flags before an instruction's arguments, and the rest as words."""
    words = shlex.split(args) if not args.startswith("[") else []
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return flags, words


def ignored(patterns: list[str], path: str) -> bool:
    """Whether ``path`` (relative to the build context) is left out by these ``.dockerignore`` lines."""
    result = False
    parts = path.strip("/").split("/")
    for raw in patterns:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = _glob_regex(pattern)
        # a pattern matches the path or any folder above it
        for depth in range(1, len(parts) + 1):
            if re.fullmatch(regex, "/".join(parts[:depth])):
                result = not negate
                break
    return result


def _glob_regex(pattern: str) -> str:
    """A ``.dockerignore`` glob as a regular expression (``**`` any folders, ``*`` within one)."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return out


def problems(text: str, ignore_lines: list[str]) -> list[str]:
    """Every rule of TruckLLM's image the Dockerfile breaks (empty: it keeps them all)."""
    found: list[str] = []
    instructions = parse(text)
    stages = max((i.stage for i in instructions), default=-1) + 1
    if stages < 2:
        found.append("not multi-stage: a builder stage and a runtime stage are expected")
    final = [i for i in instructions if i.stage == stages - 1]
    names = {
        words[-1]
        for i in instructions
        if i.keyword == "FROM"
        for words in [i.args.split()]
        if len(words) == 3 and words[1].upper() == "AS"
    }
    users = [i.args for i in final if i.keyword == "USER"]
    if not users:
        found.append("the runtime stage sets no USER: it would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        found.append(f"the runtime stage runs as root (USER {users[-1]})")
    checks = [i.args for i in final if i.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].upper() == "NONE":
        found.append("the runtime stage has no HEALTHCHECK")
    elif not re.search(r"/admin/v1/(health|ready)\b", checks[-1]):
        found.append("the HEALTHCHECK does not ask /admin/v1/health or /admin/v1/ready")
    if [i.args for i in final if i.keyword == "STOPSIGNAL"][-1:] != ["SIGTERM"]:
        found.append("the runtime stage's STOPSIGNAL is not SIGTERM (the gateway drains on SIGTERM)")
    for instruction in instructions:
        found.extend(_instruction_problems(instruction, stages, names, ignore_lines))
    return found


def _instruction_problems(i: Instruction, stages: int, names: set[str], ignore_lines: list[str]) -> list[str]:
    found: list[str] = []
    if i.keyword in ("ENV", "ARG"):
        for assignment in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", i.args):
            if SECRET_NAME.search(assignment):
                found.append(f"{i.keyword} {assignment}=...: a secret baked into the image")
    if i.keyword == "ADD" and re.search(r"https?://", i.args):
        found.append(f"ADD of a URL (nothing is fetched outside the locks): {i.args}")
    if i.keyword == "RUN":
        found.extend(_run_problems(i.args))
    if i.keyword == "COPY":
        flags, words = _flags(i.args)
        sources = words[:-1]
        if "from" in flags:
            if flags["from"] not in names:
                found.append(f"COPY --from={flags['from']}: not a stage of this Dockerfile")
        else:
            for source in sources:
                if re.search(r"(^|/)(\.env|.*\.pem|.*\.key|\.truckllm-admin-token)$", source):
                    found.append(f"COPY {source}: a secret file copied into the image")
                if ignored(ignore_lines, source):
                    found.append(f"COPY {source}: left out of the build context by the .dockerignore")
            if i.stage == stages - 1 and any(not s.startswith("deploy/docker/") for s in sources):
                found.append(f"the runtime stage copies from the source tree: COPY {i.args}")
    return found


def _run_problems(script: str) -> list[str]:
    found: list[str] = []
    if re.search(r"\b(curl|wget)\b", script):
        found.append(f"RUN downloads outside the locks: {script[:60]}")
    for command in re.split(r"&&|;|\|\|", script):
        if not re.search(r"\bpip3?\s+install\b|-m\s+pip\s+install\b", command):
            continue
        words = command.split()
        if "--no-deps" not in words:
            found.append(
                f"pip install without --no-deps (something outside the lock could come): {command.strip()}"
            )
        if "-r" in words:
            if "--require-hashes" not in words or "--only-binary" not in words:
                found.append(f"pip install -r without --require-hashes --only-binary: {command.strip()}")
        else:
            args = words[words.index("install") + 1 :]
            named = [w for w in args if not w.startswith("-") and w not in (":all:",)]
            if any(not (w.startswith(".") or w.startswith("plugins/") or w == '"$@"') for w in named):
                found.append(f"pip install of a package by name, not from a lock: {command.strip()}")
    return found
