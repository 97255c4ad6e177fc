"""A production-shaped stack (PostgreSQL + Redis + separate API and worker processes)
that fault tests can hurt: kill its worker, cut its database, flush its broker."""

from __future__ import annotations

import uuid

import pytest

from support import processes


class Stack:
    def __init__(self, env: dict[str, str], logs) -> None:
        self.env = env
        self.logs = logs
        self.api = None
        self.workers: list = []
        self.base = f"http://127.0.0.1:{env['INITLAB_PORT']}"

    def start_api(self) -> None:
        self.api = processes.start(["api", "--port", self.env["INITLAB_PORT"]], self.env, self.logs / "api.log")
        processes.wait_until_up(self.base)

    def start_worker(self) -> object:
        worker = processes.start(["worker"], self.env, self.logs / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def worker_log(self, tail: int | None = 3000) -> str:
        """The workers' logs, each cut to its last ``tail`` characters (None: whole)."""
        return "\n".join(path.read_text()[-tail if tail else 0:] for path in sorted(self.logs.glob("worker*.log")))

    def stop(self) -> None:
        for process in [self.api, *self.workers]:
            if process is not None:
                processes.stop(process)


@pytest.fixture
def make_stack(postgres_url, redis_url, data_dir, tmp_path):
    """Build a stack; keyword arguments override its INITLAB_* settings."""
    stacks: list[Stack] = []

    def build(**overrides: str) -> Stack:
        from sqlalchemy import create_engine, text

        env = {"INITLAB_DATABASE_URL": postgres_url, "INITLAB_BROKER_URL": redis_url,
               "INITLAB_QUEUE": f"initlab-fault-{uuid.uuid4().hex[:8]}", "INITLAB_DATA_DIR": str(data_dir),
               "INITLAB_STATE_DIR": str(tmp_path / "state"), "INITLAB_PORT": str(processes.free_port()),
               **overrides}
        processes.run_cli(["migrate"], {**env, "INITLAB_DATABASE_URL": postgres_url})
        engine = create_engine(postgres_url.replace("+psycopg", "+psycopg"))
        with engine.begin() as connection:  # each fault test starts from empty tables
            connection.execute(text("TRUNCATE studies, runs, epoch_metrics, layer_stats RESTART IDENTITY CASCADE"))
        engine.dispose()
        stack = Stack(env, tmp_path)
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.stop()
