"""
The AI port: the types job code speaks and the `PromptGenerator` protocol, with no SDK behind them.

Job code sees only `PromptContext`, `PromptDraft` and the `AIError` family. The writers live apart:
`ai_openai` (the `openai` SDK, built only by the composition root, `broseph.services`) and the
offline bank (`prompt_bank`) — so importing this module (and the job types, and
`broseph.enqueue`) never loads `openai`.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from typing import Final, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CATEGORIES",
    "MAX_COMPLETION_TOKENS",
    "MAX_FOLLOW_UP_CHARS",
    "MAX_PROMPT_CHARS",
    "MAX_SAMPLE_CHARS",
    "MAX_SAMPLE_MESSAGES",
    "AIError",
    "AIOutputError",
    "AIPermanentError",
    "AIRateLimitedError",
    "AITransientError",
    "Category",
    "PromptContext",
    "PromptDraft",
    "PromptGenerator",
    "estimate_tokens",
    "normalize_prompt",
]

# The offline bank (`prompt_bank.py`) files its prompts under the same categories; add a category
# there when you add one here.
Category = Literal[
    "icebreaker",
    "memories",
    "would_you_rather",
    "hot_take",
    "gratitude",
    "plans",
    "creative",
    "deep",
]
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)

MAX_PROMPT_CHARS: Final = 280
MAX_FOLLOW_UP_CHARS: Final = 200
# The cap on a reply's tokens a writer asks for: OpenAI counts it against the tokens-per-minute
# limit up front, so the shared OPENAI_TPM budget does too.
MAX_COMPLETION_TOKENS: Final = 1024
# Bounds on message samples (only present when settings allow sending message text) keep the
# request small whatever the caller passes.
MAX_SAMPLE_MESSAGES: Final = 20
MAX_SAMPLE_CHARS: Final = 280


class PromptContext(BaseModel):
    """
    What the model may know about a group when it writes the prompt for one local day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_name: str
    member_count: int
    local_date: datetime.date
    # The group's last 30 prompt texts, newest first.
    recent_prompts: list[str]
    # A signal such as "42 messages from 5 of 6 members in the last 7 days"; never message bodies.
    activity: str
    # Only filled when a setting allows sending message text to the AI provider.
    sample_messages: list[str] = Field(default_factory=list)


class PromptDraft(BaseModel):
    """
    One conversation prompt, from the AI or the offline bank, ready to be stored for a group.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    category: Category
    follow_up: str | None = Field(default=None, max_length=MAX_FOLLOW_UP_CHARS)

    @field_validator("follow_up")
    @classmethod
    def _blank_follow_up_is_none(cls, value: str | None) -> str | None:
        # Models asked for "a follow-up or null" sometimes answer "" instead of null.
        return value or None


class AIError(Exception):
    """
    Base of every error the AI adapter raises.

    `reason` is short and safe to log: it never holds keys, prompts or message bodies.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AITransientError(AIError):
    """
    Rate limit, server error, timeout or connection failure: retry the job later with backoff.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        # Seconds the server asked us to wait, when it said so.
        self.retry_after = retry_after


class AIRateLimitedError(AITransientError):
    """
    A 429 rate limit (not billing): `retry_after` is the server's wait when it said one
    (Retry-After, else the reset of the used-up limit), `exhausted` the limits it named as used up
    ("requests", "tokens"). Not retried inside the adapter: the caller tightens its shared budget
    and puts the job back (broseph/budgets.py).
    """

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        exhausted: frozenset[str] = frozenset({"requests", "tokens"}),
    ) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.exhausted = exhausted


class AIPermanentError(AIError):
    """
    The request cannot succeed as configured (bad key, no quota, bad request): stop using AI here.
    """


class AIOutputError(AIError):
    """
    The model answered, but with no usable prompt (invalid, refused, truncated, too long, repeat).
    """


class PromptGenerator(Protocol):
    """
    Anything that writes a prompt for a group; tests and development substitute their own.
    """

    async def generate(self, ctx: PromptContext) -> PromptDraft:
        """
        Write one prompt for the group described by `ctx`, or raise an `AIError`.
        """
        ...


_APOSTROPHES: Final = re.compile(r"['‘’ʼ`´]")


def normalize_prompt(text: str) -> str:
    """
    Fold a prompt to the form used for repeat detection: case, punctuation and spacing ignored.
    """
    folded = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).casefold())
    # Punctuation and symbols (emoji included) become spaces so "take:pizza" matches "take: pizza".
    spaced = "".join(" " if unicodedata.category(char)[0] in "PSZC" else char for char in folded)
    return " ".join(spaced.split())


# Characters per token, roughly, for English text and JSON; the instructions and the JSON
# wrapping around the group's data add about this many characters to every request.
_CHARS_PER_TOKEN: Final = 4
_FIXED_REQUEST_CHARS: Final = 1600


def estimate_tokens(ctx: PromptContext) -> int:
    """
    What one request for `ctx` counts against a tokens-per-minute limit, by OpenAI's rule: the
    prompt's tokens (estimated from its characters) plus the completion cap.
    """
    chars = _FIXED_REQUEST_CHARS + len(ctx.group_name) + len(ctx.activity)
    chars += sum(map(len, ctx.recent_prompts)) + sum(map(len, ctx.sample_messages))
    return chars // _CHARS_PER_TOKEN + MAX_COMPLETION_TOKENS
