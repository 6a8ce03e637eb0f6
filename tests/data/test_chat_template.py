"""Chat templates rendered with jinja2 alone give the text transformers' apply_chat_template gives."""

from __future__ import annotations

import pytest

from theseus.data.chat_template import ChatTemplate

SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": None, "pad_token": "<pad>"}

# our own templates, each using the constructs real chat templates rely on
HEADERS = """{{ bos_token }}
{%- set ns = namespace(system=false) %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}{% set ns.system = true %}{% endif %}
    {%- if loop.first and not ns.system %}<|header|>system<|end_header|>

You are terse.<|eot|>
    {%- endif %}
<|header|>{{ message['role'] }}<|end_header|>

{{ message['content'] | trim }}<|eot|>
{%- endfor %}
{%- if add_generation_prompt %}<|header|>assistant<|end_header|>

{% endif %}"""

STRICT = """{% for message in messages %}
  {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
    {{ raise_exception('roles must alternate user/assistant') }}
  {% endif %}
  {% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]{% else %}{% generation %}{{ message['content'] }}{% endgeneration %}{{ eos_token }}{% endif %}
  {% if loop.index >= 3 %}{% break %}{% endif %}
{% endfor %}"""

JSON_META = """{% for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}{% if message.role == 'user' %} {{ {'len': message.content | length, 'text': message.content} | tojson }}{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

CHATS = [
    [{"role": "user", "content": "  Héllo, wörld  "}, {"role": "assistant", "content": "Hi — there."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"}],
]


def reference(template: str, chat: list[dict], add_generation_prompt: bool) -> str:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
        chat_template=template, **{k: v for k, v in SPECIALS.items() if v is not None},
    )
    return str(tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=add_generation_prompt))


@pytest.mark.parametrize("template", [HEADERS, STRICT, JSON_META], ids=["headers", "strict", "json"])
@pytest.mark.parametrize("chat", CHATS, ids=["two-turns", "with-system"])
@pytest.mark.parametrize("prompt", [False, True], ids=["closed", "generation-prompt"])
def test_rendering_equals_transformers(template, chat, prompt):
    if template is STRICT and chat[0]["role"] == "system":
        with pytest.raises(Exception, match="roles must alternate"):
            ChatTemplate(template, "test", SPECIALS).render(chat, prompt)
        return
    assert ChatTemplate(template, "test", SPECIALS).render(chat, prompt) == reference(template, chat, prompt)
