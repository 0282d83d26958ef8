"""`poolpilot call` in a terminal (a pseudo-terminal here): one clean question, and a progress line that updates."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
PROD = "af315b8e6aaa41799bd9a31f2de15abcin07"
SWITCHABLE = "5881e1ca66af4aefbc64dc2874e55b3fpo01"


def _in_terminal(tmp_path: Path, args: list[str], answer: bytes) -> str:
    """Run the CLI with stdin, stdout and stderr on a pty; type `answer` at the first [y/N]; return all output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    env.update(
        XDG_STATE_HOME=str(tmp_path / "state"), POOLPILOT_AUDIT_LOG=str(tmp_path / "audit.jsonl"), PYTHONPATH=str(ROOT)
    )
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "poolpilot.server", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(secondary)
    out, answered = b"", False
    deadline = time.monotonic() + 60
    try:
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, out.decode(errors="replace")
            ready, _, _ = select.select([primary], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if not answered and b"[y/N]" in out:
                os.write(primary, answer)
                answered = True
        assert proc.wait(timeout=10) == 0, out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(primary)
    return out.decode(errors="replace")


def _result(output: str) -> dict[str, object]:
    start = output.index("{\r\n")
    return dict(json.loads(output[start : output.rindex("}") + 1].replace("\r\n", "\n")))


def test_terminal_confirmation_is_one_clean_question(tmp_path: Path) -> None:
    out = _in_terminal(
        tmp_path, ["call", "digitalocean_delete_pool", f"cluster_id={PG_SMALL}", "pool_name=web"], b"y\n"
    )
    question = out[: out.index("[y/N]")]
    assert 'delete pool: pool "web"' in question and 'removes mode "transaction", size 10' in question
    assert "None" not in question and "(state " not in question and "Proceed" not in question
    assert out.count("[y/N]") == 1 and question.count("?") == 1
    result = _result(out)
    assert result["outcome"] == "executed" and result["confirmed_by"] == "elicitation"


def test_terminal_progress_is_one_updating_line(tmp_path: Path) -> None:
    args = ["call", "--sandbox-job-seconds", "0.5", "taurusdb_set_proxy_pool_type"]
    args += [f"instance_id={PROD}", f"proxy_id={SWITCHABLE}", "pool_type=SESSION"]
    out = _in_terminal(tmp_path, args, b"y\n")
    after_answer = out[out.index("[y/N]") :]
    updates = after_answer.split("\r\x1b[K")[1:]
    assert len(updates) >= 2 and "accepted" in updates[0] and updates[-1].startswith("100%")
    assert "progress: " not in out
    assert _result(out)["wait_outcome"] == "finished"
