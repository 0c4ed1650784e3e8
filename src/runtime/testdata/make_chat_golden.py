#!/usr/bin/env python3
"""Regenerates chat_golden.json: real chat templates (../shared/testdata/chat-templates) rendered
with jinja2 the way Hugging Face transformers renders them, for chat_template_test.cc to compare
with dizuo's built-in templates. Needs jinja2 (scripts/install-deps.sh installs it); the test itself
reads only the JSON.

Usage: python3 src/runtime/testdata/make_chat_golden.py   (from the repository root)
"""
import json
import pathlib

import jinja2
import jinja2.sandbox

ROOT = pathlib.Path(__file__).resolve().parents[3]
TEMPLATES = ROOT.parent / "shared" / "testdata" / "chat-templates"
OUT = pathlib.Path(__file__).with_name("chat_golden.json")

CONVERSATIONS = {
    "single": [{"role": "user", "content": "Hello!"}],
    "system": [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke.\nA short one."},
    ],
    "no_system_multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
    ],
}

# (template file, the built-in template dizuo must recognize, BOS text, EOS text, conversations).
# Left out, with the reason: Gemma 2 rejects system messages; Qwen 3 adds <think> blocks to a final
# assistant turn; Phi-3 appends EOS when there is no generation prompt. Templates whose system
# prompt describes tools (Hermes *-tool_use) are not plain chat templates.
CASES = [
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3.1", "<|begin_of_text|>", "<|eot_id|>", None),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3.1", "<|begin_of_text|>", "<|eot_id|>", None),
    ("meta-llama-Llama-3.3-70B-Instruct.jinja", "llama3.1", "<|begin_of_text|>", "<|eot_id|>", None),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2.5", "", "<|im_end|>", None),
    ("Qwen-Qwen3-0.6B.jinja", "chatml", "", "<|im_end|>",
     ["single", "system", "multi_turn", "no_system_multi_turn"]),
    ("google-gemma-2-2b-it.jinja", "gemma", "<bos>", "<eos>",
     ["single", "no_system_multi_turn", "ends_with_assistant"]),
    ("microsoft-Phi-3.5-mini-instruct.jinja", "phi3", "<s>", "<|endoftext|>",
     ["single", "system", "multi_turn", "no_system_multi_turn"]),
]


def render(source, messages, bos, eos, add_generation_prompt):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, indent=indent)
    return env.from_string(source).render(
        messages=messages, bos_token=bos, eos_token=eos,
        add_generation_prompt=add_generation_prompt)


def main():
    cases = []
    for file, name, bos, eos, names in CASES:
        source = (TEMPLATES / file).read_text()
        for conv in names or CONVERSATIONS:
            messages = CONVERSATIONS[conv]
            generation = messages[-1]["role"] != "assistant"
            text = render(source, messages, bos, eos, generation)
            # dizuo leaves the conversation's first BOS to the tokenizer (Encode with add_special).
            if bos and text.startswith(bos):
                text = text[len(bos):]
            cases.append({"template": file, "recognized_as": name, "conversation": conv,
                          "messages": messages, "add_generation_prompt": generation,
                          "expected": text})
    OUT.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
