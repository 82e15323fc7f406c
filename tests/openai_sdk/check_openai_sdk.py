#!/usr/bin/env python3
"""Drive `jing serve` with the official `openai` Python SDK, as users' code does.

Usage: check_openai_sdk.py PATH/TO/jing [--model DIR]

Starts the server on a free port with an API key, waits for /health, then checks: the model
list; a non-streaming chat; the same chat streamed (role first, one finish_reason, the usage
chunk, the same text as the non-streaming answer at temperature 0); a forced tool call; JSON
output under a schema; and the errors the SDK maps to exceptions (404, 400, 401). Prints
'N passed, N failed' and exits non-zero on any failure.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import openai
from openai import OpenAI

KEY = "sk-jing-ci"
NAME = "jing-demo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port, proc, log, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jing serve exited with {proc.returncode}:\n{read(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"jing serve was not healthy within {timeout}s:\n{read(log)}")


def read(path):
    with open(path, errors="replace") as f:
        return f.read()[-4000:]


def chat_text(message):
    """The reasoning and the answer of a message (reasoning_content is DeepSeek's field)."""
    extra = getattr(message, "model_extra", None) or {}
    return (extra.get("reasoning_content") or "", message.content or "")


def check_models(client):
    ids = [m.id for m in client.models.list()]
    assert NAME in ids, ids


def check_chat_and_stream(client):
    msgs = [{"role": "user", "content": "What is 12 + 30?"}]
    r = client.chat.completions.create(
        model=NAME, messages=msgs, max_tokens=48, temperature=0
    )
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length"), choice.finish_reason
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens >= 1, r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    reasoning, content = chat_text(choice.message)

    stream = client.chat.completions.create(
        model=NAME,
        messages=msgs,
        max_tokens=48,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [choice.finish_reason], finishes
    assert chunks[-1].choices == [] and chunks[-1].usage is not None, chunks[-1]
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    s_reasoning, s_content = "", ""
    for c in chunks:
        if c.choices:
            d = c.choices[0].delta
            s_content += d.content or ""
            s_reasoning += (getattr(d, "model_extra", None) or {}).get("reasoning_content") or ""
    assert (s_reasoning, s_content) == (reasoning, content), ((s_reasoning, s_content), (reasoning, content))


def check_tool_call(client):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "maxLength": 12}},
                    "required": ["city"],
                    "additionalProperties": False,
                },
            },
        }
    ]
    r = client.chat.completions.create(
        model=NAME,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=400,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", (choice.finish_reason, choice.message)
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather", call
    args = json.loads(call.function.arguments)
    assert isinstance(args.get("city"), str), args


def check_json_schema(client):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer", "minimum": 0, "maximum": 999}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    r = client.chat.completions.create(
        model=NAME,
        messages=[{"role": "user", "content": "What is 2 + 3? Answer in JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
        max_tokens=400,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "stop", (choice.finish_reason, choice.message)
    value = json.loads(choice.message.content)
    assert set(value) == {"answer"} and isinstance(value["answer"], int), value


def check_errors(client, port):
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and set(e.body) >= {"message", "type", "param", "code"}, e.body
    try:
        client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=10**9
        )
        raise AssertionError("max_tokens past the context was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
    wrong = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-wrong", max_retries=0)
    try:
        wrong.models.list()
        raise AssertionError("a wrong API key was accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e


def main():
    jing = sys.argv[1]
    extra = sys.argv[2:]
    port = free_port()
    log = tempfile.mktemp(prefix="jing-serve-", suffix=".log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [jing, "serve", "--port", str(port), "--api-key", KEY, "--served-model-name", NAME,
             "--threads", "2", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    passed = failed = 0
    try:
        wait_healthy(port, proc, log)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=300)
        checks = [
            ("models", lambda: check_models(client)),
            ("chat and stream", lambda: check_chat_and_stream(client)),
            ("forced tool call", lambda: check_tool_call(client)),
            ("json schema", lambda: check_json_schema(client)),
            ("errors", lambda: check_errors(client, port)),
        ]
        for name, check in checks:
            try:
                check()
                passed += 1
                print(f"ok      {name}")
            except Exception:
                failed += 1
                print(f"FAILED  {name}")
                traceback.print_exc()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if failed:
            print("server log (tail):\n" + read(log))
        os.unlink(log)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
