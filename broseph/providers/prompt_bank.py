"""
The offline prompt generator: a bank of our own prompts, picked deterministically per group and day.

It is the default when no OpenAI key is configured and the fallback when the AI gives up. The same
group on the same local day always gets the same prompt (a re-run of the daily job is a no-op), and
no prompt in the group's recent history is picked again.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Final

from broseph.providers.ai import Category, PromptDraft, normalize_prompt

__all__ = ["BANK", "OfflinePromptBank"]

# (text, follow-up or None) per category. Written for friend groups of any background: no
# assumptions about money, family, partners, drinking or bodies, and nothing painful to answer.
# Categories must match `ai.Category`; tests require at least 10 prompts in each.
_ENTRIES: Final[Mapping[Category, tuple[tuple[str, str | None], ...]]] = {
    "icebreaker": (
        (
            "If you could instantly get really good at one skill, which would you pick?",
            "What's the first thing you'd do with it?",
        ),
        (
            "What's a small, oddly specific thing that always improves your day?",
            "When did it last happen?",
        ),
        (
            "Which fictional world would you most like to spend a weekend in?",
            "Who from this chat would you bring along?",
        ),
        (
            "What's a song you never skip, whatever mood you're in?",
            "Drop a link so we can judge fairly.",
        ),
        ("If your week were a movie, what would the title be?", "Comedy, drama or documentary?"),
        (
            "What's the most useful thing you've learned from a video in the last year?",
            "Did it actually work?",
        ),
        ("Which everyday object would you redesign if you could?", "What's your fix?"),
        (
            "What's a food you loved as a kid and would still happily eat today?",
            "Any upgrades you'd make now?",
        ),
        ("Describe your ideal lazy afternoon in exactly five words.", None),
        ("What's the last thing that made you laugh out loud?", "Can you share it with us?"),
        (
            "If a theme tune played every time you walked into a room, what would it be?",
            "Who here needs one too?",
        ),
        (
            "What's a hobby you've always been curious about but never tried?",
            "What's held you back so far?",
        ),
        ("If you could keep only three apps on your phone, which would stay?", None),
        ("What's your go-to comfort snack or drink?", "Sweet or savoury person, overall?"),
        (
            "What's a word or phrase you use way too much?",
            "Has anyone here caught you saying it?",
        ),
        (
            "If you could have dinner with any fictional character, who would it be?",
            "What would you ask them first?",
        ),
        ("What's the best thing you've ever found for free, online or out in the world?", None),
        ("Which season matches your personality best?", "What gives it away?"),
    ),
    "memories": (
        (
            "What's a small moment from this group that still makes you smile?",
            "Does anyone remember it differently?",
        ),
        ("What's the best meal you can remember?", "What made it so good?"),
        (
            "What's a game you loved playing when you were younger?",
            "Would you still be good at it?",
        ),
        (
            "What was the first song, album or artist you were properly obsessed with?",
            "Does it hold up?",
        ),
        (
            "Share a photo from your camera roll taken around this time last year.",
            "What was going on that day?",
        ),
        ("What's a day out that didn't go to plan but turned out great anyway?", None),
        ("What's a show you'd happily rewatch from the very start?", "Which episode hooked you?"),
        ("What's a trend you were fully into at some point?", "Is there photographic evidence?"),
        ("What's the best advice you've been given that actually stuck?", "Who said it?"),
        ("What's a smell that instantly takes you back somewhere?", "Where does it take you?"),
        ("What's the funniest misunderstanding you've ever been part of?", None),
        (
            "How did you first meet someone in this chat?",
            "Do they remember it the same way?",
        ),
        ("What's a teacher, coach or mentor you still think about?", "What did they get right?"),
        ("What's the most memorable live event you've seen, in person or on a screen?", None),
        ("What was your favourite way to spend a rainy day when you were little?", None),
        ("What's a random skill you picked up years ago that still comes in handy?", None),
        (
            "What's a book or story that stayed with you long after you finished it?",
            "What made it stick?",
        ),
        ("What's a moment from this year you'd happily live again?", None),
    ),
    "would_you_rather": (
        (
            "Would you rather be able to talk to animals or speak every human language?",
            "Which animal would you chat with first?",
        ),
        ("Would you rather have a rewind button or a pause button for your life?", None),
        (
            "Would you rather always know the perfect thing to say or the perfect song to play?",
            None,
        ),
        ("Would you rather explore the deep ocean or outer space?", "What would you hope to find?"),
        (
            "Would you rather live in a treehouse or on a houseboat for a year?",
            "How would you decorate it?",
        ),
        ("Would you rather have unlimited snacks or unlimited naps?", None),
        ("Would you rather only be able to whisper or only be able to shout?", None),
        (
            "Would you rather visit the past or the future for a single day?",
            "Which year would you pick?",
        ),
        (
            "Would you rather be a famous chef or a famous musician?",
            "What's your signature dish or song?",
        ),
        ("Would you rather have a robot assistant or a personal stylist?", None),
        (
            "Would you rather always be ten minutes early or twenty minutes late?",
            "Which one are you now, honestly?",
        ),
        ("Would you rather every meal be breakfast or every meal be dessert?", None),
        (
            "Would you rather fly at walking pace or teleport, but only to places you've been?",
            None,
        ),
        (
            "Would you rather read minds for a day or be invisible for a day?",
            "What's the first thing you'd do?",
        ),
        ("Would you rather give up music or give up films and shows for a year?", None),
        (
            "Would you rather have a map of hidden places or a key that opens any door once?",
            None,
        ),
        (
            "Would you rather swap lives for a day with someone in this chat or with a celebrity?",
            "Who, and why?",
        ),
        ("Would you rather know how every story ends or be surprised every time?", None),
    ),
    "hot_take": (
        ("Hot take time: which popular food is overrated?", "Defend yourself."),
        ("What's your unpopular opinion about a movie or show everyone loves?", None),
        ("Is a hot dog a sandwich? Make your case in one sentence.", None),
        (
            "What's the best snack for watching a film, and why is your answer obviously right?",
            None,
        ),
        ("Cereal first or milk first, and how strongly do you feel about it?", None),
        ("What's a so-called life hack that actually makes things worse?", None),
        ("Name a cover song that's better than the original.", "Who did the cover?"),
        ("Which season is the most overrated?", "Which one deserves more love?"),
        ("Is it acceptable to answer a voice note with a text?", "Where's the line?"),
        ("Which board game or card game causes the most arguments?", None),
        ("What's a small bit of etiquette you think everyone should follow?", None),
        ("Sunrise or sunset: which one is actually better?", None),
        ("What's a trend you hope never comes back?", None),
        ("Is a sequel ever better than the original? Give us your best example.", None),
        ("What's the correct way to eat a pizza crust?", None),
        ("Group chats: reply to everything or just react with an emoji?", "Which one are you?"),
        ("What's an everyday habit you think is secretly genius?", None),
        ("Which day of the week is the best, and why isn't it Friday?", None),
    ),
    "gratitude": (
        ("What's one small thing from this week you're grateful for?", None),
        (
            "Who made your week a little easier, even in a tiny way?",
            "Have you told them?",
        ),
        ("What's something about your daily routine you'd genuinely miss?", None),
        ("Give a shout-out to someone in this group for something they did recently.", None),
        ("What's a simple pleasure you never get tired of?", None),
        ("What's a place that always makes you feel at ease?", "What makes it work for you?"),
        ("What's a piece of technology you're quietly thankful exists?", None),
        ("What's something you're better at now than a year ago?", "What helped most?"),
        ("Which song, show or book kept you good company lately?", None),
        ("What's a kind thing a stranger did that you still remember?", None),
        ("What's one thing about today, however small, that went right?", None),
        ("What's a compliment you received that you still think about?", None),
        ("What's a skill someone taught you that you use all the time?", "Who taught you?"),
        ("What's a meal, drink or treat that felt especially good recently?", None),
        ("What's something about where you are right now that you appreciate?", None),
        ("What's a habit that's been good to you lately?", None),
        ("Name something this group does that you really value.", None),
        (
            "What's a moment from the past month you'd like to say thanks for?",
            "Who or what was behind it?",
        ),
    ),
    "plans": (
        (
            "If we all had a free Saturday together, what should we do?",
            "Cheap, cheerful and doable, please.",
        ),
        ("What's one thing you're looking forward to this month?", None),
        (
            "Let's all watch the same movie or show this week. Nominations?",
            "Vote with reactions.",
        ),
        ("What's a free or low-cost thing nearby you've been meaning to try?", None),
        ("What's something you'd like to learn this year?", "Can anyone here help?"),
        ("Suggest one small daily thing we could all try this week as a group challenge.", None),
        ("Describe the perfect group day out in one sentence.", None),
        ("If we planned an online hangout, what game or activity should we do?", None),
        ("What's a recipe you'd like us to cook together some day?", None),
        ("Which book, podcast or album should the group try together next?", None),
        (
            "What's one thing you want to get done this week?",
            "Want someone here to check in on you about it?",
        ),
        (
            "If we could take a group trip anywhere with zero logistics, where would we go?",
            "Who's in charge of snacks?",
        ),
        ("What's a tradition this group should start?", None),
        ("What's something you've been putting off that we could cheer you on for?", None),
        ("Any plans for the weekend, even if the plan is doing absolutely nothing?", None),
        ("What's a new place, like a cafe, park or shop, you'd like to check out soon?", None),
        ("Pitch a theme for a group playlist this week.", "First song goes in now."),
        ("What's a goal for the next three months you'd be happy to share?", None),
    ),
    "creative": (
        ("Describe your week using only emojis.", "Everyone else guesses what happened."),
        ("Invent a new holiday. What's it called and how do we celebrate?", None),
        ("If this group were a band, what would we be called?", "Who plays what?"),
        ("Write a six-word story about your day.", None),
        ("Design your dream sandwich. Every ingredient counts.", None),
        ("If you opened a tiny shop, what would it sell and what would it be called?", None),
        ("Give this group chat a new name for the week.", "Best one wins."),
        ("Invent a sport that would be hilarious to watch.", "What are the rules?"),
        (
            "Pitch a movie starring everyone in this chat, in one sentence.",
            "Who plays the villain?",
        ),
        ("Make up a new word and tell us what it means.", "Use it in a sentence."),
        ("If your favourite object could talk, what would it say about you?", None),
        ("Invent a signature drink for this group. What's in it and what's it called?", None),
        ("What would your superhero name and completely useless power be?", None),
        ("Write the opening line of a novel about your life.", None),
        ("If you ran a theme park, what's the first ride you'd build?", None),
        ("Describe your perfect day as a recipe, with ingredients and method.", None),
        ("Give a one-line review of your week, with a star rating.", None),
        ("Combine two of your favourite foods into one dish. Would it work?", None),
    ),
    "deep": (
        (
            "What's something you've changed your mind about in the last few years?",
            "What changed it?",
        ),
        ("What does a really good day look like for you these days?", None),
        ("What's a quality you admire in someone in this group?", None),
        ("What's one piece of advice you'd give your younger self?", None),
        ("What always makes you feel like yourself again?", None),
        ("What's a question you wish people asked you more often?", "Go on, answer it."),
        ("What's something you're proud of that not many people know about?", None),
        ("How has what you want from friendship changed over the years?", None),
        ("What's a small risk you're glad you took?", None),
        ("What's one thing you'd like to make more room for in your life?", None),
        ("What's a value that guides a lot of your choices?", None),
        ("What's something you find beautiful that others might overlook?", None),
        ("When do you feel most creative?", None),
        ("What's a lesson you learned the fun way rather than the hard way?", None),
        ("What's one thing you hope never changes about this group?", None),
        ("What's something you've been curious about lately?", "Where did that come from?"),
        ("What would you do with an extra hour every day?", None),
        ("What's a small act of kindness you think about more than you expected to?", None),
    ),
}

BANK: Final[tuple[PromptDraft, ...]] = tuple(
    PromptDraft(text=text, category=category, follow_up=follow_up)
    for category, entries in _ENTRIES.items()
    for text, follow_up in entries
)


class OfflinePromptBank:
    """
    Picks a prompt from the bank for a group's local day, never one of its recent prompts.
    """

    def __init__(self, prompts: Sequence[PromptDraft] = BANK) -> None:
        if not prompts:
            raise ValueError("the prompt bank is empty")
        normalized = [normalize_prompt(prompt.text) for prompt in prompts]
        if len(set(normalized)) != len(normalized):
            raise ValueError("the prompt bank holds duplicate prompts")
        self._prompts = tuple(prompts)
        self._normalized = tuple(normalized)
        self._category_of: dict[str, Category] = {
            key: prompt.category for key, prompt in zip(normalized, prompts, strict=True)
        }

    def __len__(self) -> int:
        return len(self._prompts)

    def pick(
        self, *, group_id: uuid.UUID, local_date: datetime.date, recent_prompts: Sequence[str]
    ) -> PromptDraft:
        """
        The prompt for `group_id` on `local_date`, given the group's recent prompts (newest first).

        The same arguments always give the same prompt. A prompt whose normalized text is among
        `recent_prompts` is only returned when every prompt in the bank is.
        """
        recent = [normalize_prompt(text) for text in recent_prompts]
        recent_set = set(recent)
        candidates = [i for i, key in enumerate(self._normalized) if key not in recent_set]
        if not candidates:
            return self._least_recently_used(recent)
        # Variety: avoid the category of the group's latest prompt while anything else is left.
        latest_category = self._category_of.get(recent[0]) if recent else None
        pool = [i for i in candidates if self._prompts[i].category != latest_category]
        pool = pool or candidates
        return self._prompts[pool[_day_seed(group_id, local_date) % len(pool)]]

    def _least_recently_used(self, recent: list[str]) -> PromptDraft:
        # Only reached when the bank is smaller than the history; the oldest is the kindest repeat.
        newest_use = {key: index for index, key in reversed(list(enumerate(recent)))}
        oldest = max(range(len(self._prompts)), key=lambda i: newest_use[self._normalized[i]])
        return self._prompts[oldest]


def _day_seed(group_id: uuid.UUID, local_date: datetime.date) -> int:
    # A hash, not `random`: stable across processes and Python versions, and no global state.
    digest = hashlib.sha256(f"{group_id}:{local_date.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
