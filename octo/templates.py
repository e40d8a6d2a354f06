"""The prompt-template registry: prompt text plus stop strings, one entry per name, shared by RL and evaluation.

RL (``rl.templates``), RL validation and evaluation (``eval.tasks``) all render prompts here, so a name means
one prompt everywhere: an RL checkpoint evaluated with its run's template sees exactly the text it was trained
on and stops at the same strings.

| name       | prompt                                                           | stop strings           |
| ---------- | ---------------------------------------------------------------- | ---------------------- |
| `qa`       | ``Question: {question}\\nAnswer:`` (the OctoThinker RL default)   | ``RL_STOP_STRINGS``    |
| `qa_boxed` | the same text as `qa` (evaluation: exemplars answer in a box)     | ``RL_STOP_STRINGS``    |
| `orz`      | Open-Reasoner-Zero User/Assistant turn asking for ``\\boxed{}``   | ``RL_STOP_STRINGS``    |
| `chat`     | the tokenizer's chat template (optional system prompt)           | ``RL_STOP_STRINGS``    |
| `minerva`  | ``Problem:\\n{question}\\n\\nSolution:`` (few-shot evaluation)     | ``Problem:``           |
| `mc`       | question, lettered choices, ``Answer:`` (multiple choice)         | ``Question:``          |
| `custom`   | a config-given text with a ``{question}`` field                   | none                   |

The question is stripped of surrounding whitespace before it is put in the template.
"""

from __future__ import annotations

from dataclasses import dataclass

from octo.errors import ConfigError

RL_STOP_STRINGS = ("Question:", "User:", "Assistant:", "Answer:")  # a new turn or item starting: stop there
QA_TEXT = "Question: {question}\nAnswer:"
ORZ_TEXT = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process step by step and then gives the User the final "
    "answer, written inside \\boxed{{}}.\n"
    "User: {question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.\n"
    "Assistant:"
)


@dataclass(frozen=True)
class Template:
    name: str
    text: (
        str | None
    )  # with a {question} field; None: the tokenizer's chat template (chat) or the config's (custom)
    stop: tuple[str, ...]
    description: str


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("qa", QA_TEXT, RL_STOP_STRINGS, "OctoThinker's RL template"),
        Template("qa_boxed", QA_TEXT, RL_STOP_STRINGS, "qa, with exemplars that answer in \\boxed{}"),
        Template("orz", ORZ_TEXT, RL_STOP_STRINGS, "Open-Reasoner-Zero User/Assistant with \\boxed{}"),
        Template("chat", None, RL_STOP_STRINGS, "the tokenizer's chat template"),
        Template("minerva", "Problem:\n{question}\n\nSolution:", ("Problem:",), "Minerva-Math few-shot"),
        Template("mc", "Question: {question}\n{choices}\nAnswer:", ("Question:",), "multiple choice"),
        Template("custom", None, (), "a config-given text with a {question} field"),
    )
}
RL_TEMPLATES = ("qa", "orz", "chat")  # what an RL run may train with (rl.config.TemplateConfig.name)
# what an evaluation task may name (eval.config prompt); "chat" goes through lighteval's chat-template path instead
EVAL_TEMPLATES = tuple(name for name in TEMPLATES if name != "chat")


def get(name: str) -> Template:
    if name not in TEMPLATES:
        raise ConfigError(f"unknown template '{name}' (known: {', '.join(TEMPLATES)})")
    return TEMPLATES[name]


def stop_strings(name: str) -> list[str]:
    """The template's own stop strings (a config may replace them; the run's manifest records what it used)."""
    return list(get(name).stop)


def _chat(question: str, tokenizer, system_prompt: str | None) -> str:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "template chat needs a tokenizer with a chat template (this model's tokenizer has none; "
            "use the qa or orz template)"
        )
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": question})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # the prompt is tokenized with the tokenizer's special tokens: do not add BOS twice
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return text


def render(
    name: str,
    question: str,
    *,
    tokenizer=None,
    system_prompt: str | None = None,
    text: str | None = None,
    choices: str = "",
) -> str:
    """The prompt for one question under template ``name`` (``text`` for custom, ``choices`` for mc)."""
    template = get(name)
    question = question.strip()
    if name == "chat":
        return _chat(question, tokenizer, system_prompt)
    if name == "custom":
        if not text or "{question}" not in text:
            raise ConfigError("template custom needs a text with a {question} field")
        return text.format(question=question)
    if name == "mc":
        return template.text.format(question=question, choices=choices)
    return template.text.format(question=question)
