"""
The offline prompt bank: its contents, and deterministic, non-repeating picks.
"""

from __future__ import annotations

import collections
import datetime
import random
import uuid

import pytest

from broseph.providers.ai import (
    CATEGORIES,
    MAX_FOLLOW_UP_CHARS,
    MAX_PROMPT_CHARS,
    PromptDraft,
    normalize_prompt,
)
from broseph.providers.prompt_bank import BANK, OfflinePromptBank

START = datetime.date(2026, 1, 1)
GROUPS = [uuid.uuid5(uuid.NAMESPACE_URL, f"broseph-test-group-{n}") for n in range(6)]
WINDOW = 30


# --- contents ---------------------------------------------------------------------------------


def test_bank_has_at_least_120_prompts_and_10_per_category() -> None:
    counts = collections.Counter(prompt.category for prompt in BANK)

    assert len(BANK) >= 120
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= 10


def test_bank_prompts_are_short_and_unique() -> None:
    normalized = [normalize_prompt(prompt.text) for prompt in BANK]

    assert all(0 < len(prompt.text) <= MAX_PROMPT_CHARS for prompt in BANK)
    assert all(len(prompt.follow_up or "") <= MAX_FOLLOW_UP_CHARS for prompt in BANK)
    assert all(prompt.text == prompt.text.strip() for prompt in BANK)
    duplicates = [text for text, n in collections.Counter(normalized).items() if n > 1]
    assert duplicates == []


# --- determinism ------------------------------------------------------------------------------


def test_same_group_and_day_get_the_same_prompt() -> None:
    recent = [BANK[0].text, BANK[5].text]
    first = OfflinePromptBank().pick(group_id=GROUPS[0], local_date=START, recent_prompts=recent)

    for _ in range(3):
        # A fresh bank each time: nothing may depend on state kept between calls.
        again = OfflinePromptBank().pick(
            group_id=GROUPS[0], local_date=START, recent_prompts=list(recent)
        )
        assert again == first


def test_picks_leave_global_random_state_alone() -> None:
    state = random.getstate()

    OfflinePromptBank().pick(group_id=GROUPS[0], local_date=START, recent_prompts=[])

    assert random.getstate() == state


def test_groups_and_days_spread_over_the_bank() -> None:
    bank = OfflinePromptBank()
    by_group = {
        bank.pick(group_id=group, local_date=START, recent_prompts=[]).text for group in GROUPS
    }
    by_day = {
        bank.pick(
            group_id=GROUPS[0], local_date=START + datetime.timedelta(days=n), recent_prompts=[]
        ).text
        for n in range(30)
    }

    assert len(by_group) >= 4
    assert len(by_day) >= 20


# --- no repeats -------------------------------------------------------------------------------


def simulate_year(bank: OfflinePromptBank, group_id: uuid.UUID) -> list[PromptDraft]:
    """
    A daily job for 365 days, feeding back the last 30 picks (newest first) as recent prompts.
    """
    history: list[PromptDraft] = []
    for day in range(365):
        recent = [draft.text for draft in reversed(history[-WINDOW:])]
        history.append(
            bank.pick(
                group_id=group_id,
                local_date=START + datetime.timedelta(days=day),
                recent_prompts=recent,
            )
        )
    return history


@pytest.mark.parametrize("group_id", GROUPS)
def test_a_year_of_daily_prompts_never_repeats_within_30_days(group_id: uuid.UUID) -> None:
    history = simulate_year(OfflinePromptBank(), group_id)

    # Checked independently of the bank's own bookkeeping, on normalized texts.
    keys = [normalize_prompt(draft.text) for draft in history]
    repeats = [
        (day, keys[day])
        for day in range(len(keys))
        if keys[day] in keys[max(0, day - WINDOW) : day]
    ]
    assert repeats == []
    assert len(set(keys)) > 100
    assert {draft.category for draft in history} == set(CATEGORIES)
    # Variety rule: never the same category two days running while others are available.
    same_category_runs = [
        day for day in range(1, len(history)) if history[day].category == history[day - 1].category
    ]
    assert same_category_runs == []


def test_recent_prompts_match_regardless_of_case_and_punctuation() -> None:
    bank = OfflinePromptBank()
    first = bank.pick(group_id=GROUPS[1], local_date=START, recent_prompts=[])
    disguised = "  " + first.text.upper().replace("?", " !!") + " "

    second = bank.pick(group_id=GROUPS[1], local_date=START, recent_prompts=[disguised])

    assert normalize_prompt(second.text) != normalize_prompt(first.text)


def test_only_unused_prompt_is_picked_when_the_rest_are_recent() -> None:
    bank = OfflinePromptBank()
    spared = BANK[17]
    recent = [prompt.text for prompt in BANK if prompt is not spared]

    for day in range(10):
        picked = bank.pick(
            group_id=GROUPS[2],
            local_date=START + datetime.timedelta(days=day),
            recent_prompts=recent,
        )
        assert picked == spared


def test_least_recently_used_prompt_when_everything_is_recent() -> None:
    small = OfflinePromptBank(BANK[:3])
    recent = [BANK[1].text, BANK[0].text, BANK[2].text, BANK[1].text]

    picked = small.pick(group_id=GROUPS[3], local_date=START, recent_prompts=recent)

    assert picked == BANK[2]


def test_bank_rejects_duplicates_and_emptiness() -> None:
    twin = PromptDraft(text=BANK[0].text.upper() + "!", category=BANK[0].category)

    with pytest.raises(ValueError, match="duplicate"):
        OfflinePromptBank([BANK[0], twin])
    with pytest.raises(ValueError, match="empty"):
        OfflinePromptBank([])
