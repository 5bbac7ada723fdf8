"""KeywordProcessingService: consent keywords (STOP, START, HELP...) in several languages.

A message is a keyword message when, in this order of tiers:

1. ``provider``: the provider recognised it (Twilio's ``OptOutType``); the
   provider has then acted and answered, so no reply of ours is due;
2. ``exact``: the trimmed body is a keyword, ignoring case (Twilio's own rule);
3. ``normalized``: it is one after case folding, accent stripping and
   dropping punctuation, symbols and extra whitespace ("Stop.", "Arrêt",
   "opt-out");
4. ``filler``: a keyword with only filler words around it ("stop texting me",
   "unsubscribe please", "STOP ALL");
5. ``phrase``: the body contains a revocation phrase ("remove me from your
   list"). The FCC rule of April 2025 accepts revocation by any reasonable
   means, which single words alone do not cover.

A keyword inside an ordinary sentence ("can you stop by at 5?") matches no
tier: nothing here is substring matching on single words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

__all__ = [
    "DEFAULT_KEYWORD_LANGUAGES",
    "KeywordAction",
    "KeywordConfig",
    "KeywordLanguage",
    "KeywordMatch",
    "KeywordOutcome",
    "KeywordProcessingService",
    "KeywordTier",
    "normalize_text",
]

KeywordAction = Literal["opt_out", "opt_in", "help"]
KeywordTier = Literal["provider", "exact", "normalized", "filler", "phrase"]

_PROVIDER_ACTIONS: dict[str, KeywordAction] = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}
_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")
_NOT_WORD = re.compile(r"[\W_]+")
# Keywords are at most this many words ("darse de baja"); longer prefixes need not be tried.
_MAX_KEYWORD_WORDS = 3


def normalize_text(text: str) -> tuple[str, ...]:
    """The words of ``text``: case-folded, accents and apostrophes dropped, split on everything else."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    # ASCII text has no combining marks to drop (most messages).
    bare = folded if folded.isascii() else "".join(ch for ch in folded if not unicodedata.combining(ch))
    return tuple(_NOT_WORD.sub(" ", _APOSTROPHES.sub("", bare)).split())


@attrs.frozen(kw_only=True)
class KeywordLanguage:
    """One language's keywords, filler words, revocation phrases and replies."""

    opt_out: tuple[str, ...] = ()
    opt_in: tuple[str, ...] = ()
    #: Opt in only a sender who is opted out (YES); from anyone else it is an ordinary reply.
    opt_in_if_opted_out: tuple[str, ...] = ()
    help: tuple[str, ...] = ()
    #: Words that may surround a keyword without making it a sentence.
    fillers: tuple[str, ...] = ()
    #: Phrases that revoke consent wherever they appear in a message.
    phrases: tuple[str, ...] = ()
    opt_out_reply: str = ""
    opt_in_reply: str = ""
    help_reply: str = ""


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_EN = KeywordLanguage(
    opt_out=("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"),
    opt_in=("START", "UNSTOP"),
    opt_in_if_opted_out=("YES",),
    help=("HELP", "INFO"),
    fillers=_words(
        "please pls plz now all me it thanks thank you thx ty ok okay texting text texts messaging message "
        "messages sending contacting calling this number immediately asap right away the"
    ),
    phrases=(
        "remove me from your list",
        "remove me from this list",
        "remove me from the list",
        "take me off your list",
        "take me off this list",
        "take me off the list",
        "don't text me",
        "do not text me",
        "don't message me",
        "do not message me",
        "don't contact me",
        "do not contact me",
        "no more texts",
        "no more messages",
        "leave me alone",
    ),
    opt_out_reply=(
        "You have successfully been unsubscribed. You will not receive any more messages from this number. "
        "Reply START to resubscribe."
    ),
    opt_in_reply=(
        "You have successfully been re-subscribed to messages from this number. Reply HELP for help. "
        "Reply STOP to unsubscribe. Msg&Data Rates May Apply."
    ),
    help_reply="Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
)
_FR = KeywordLanguage(
    opt_out=("ARRET", "ARRETER", "DESABONNER", "DESINSCRIRE", "DESABONNEMENT"),
    opt_in=("COMMENCER", "DEMARRER"),
    opt_in_if_opted_out=("OUI",),
    help=("AIDE",),
    fillers=_words("svp stp sil vous plait merci moi tout tous maintenant les sms"),
    phrases=("désabonnez-moi", "retirez-moi de votre liste", "ne m'envoyez plus", "ne plus recevoir"),
    opt_out_reply=(
        "Vous êtes désabonné(e) et ne recevrez plus de messages de ce numéro. "
        "Répondez COMMENCER pour vous réabonner."
    ),
    opt_in_reply=(
        "Vous êtes réabonné(e) aux messages de ce numéro. Répondez AIDE pour de l'aide, ARRET pour vous "
        "désabonner. Des frais de messagerie peuvent s'appliquer."
    ),
    help_reply="Répondez ARRET pour vous désabonner. Des frais de messagerie peuvent s'appliquer.",
)
_ES = KeywordLanguage(
    opt_out=("PARAR", "ALTO", "BAJA", "CANCELAR", "DETENER", "DARSE DE BAJA"),
    opt_in=("COMENZAR", "INICIAR"),
    opt_in_if_opted_out=("SI",),
    help=("AYUDA",),
    fillers=_words("por favor porfa gracias ya todo todos ahora me mensajes"),
    phrases=("no me envíen más mensajes", "no me manden más mensajes", "no me escriban más", "darme de baja"),
    opt_out_reply=(
        "Se ha dado de baja y no recibirá más mensajes de este número. Responda COMENZAR para volver a "
        "suscribirse."
    ),
    opt_in_reply=(
        "Se ha suscrito de nuevo a los mensajes de este número. Responda AYUDA para obtener ayuda, PARAR "
        "para darse de baja. Pueden aplicarse tarifas de mensajes y datos."
    ),
    help_reply="Responda PARAR para darse de baja. Pueden aplicarse tarifas de mensajes y datos.",
)

#: The built-in languages: Twilio's default English keywords, French and Spanish.
DEFAULT_KEYWORD_LANGUAGES: Mapping[str, KeywordLanguage] = {"en": _EN, "fr": _FR, "es": _ES}


@attrs.frozen(kw_only=True)
class KeywordConfig:
    """Keyword configuration of a channel (the ``keywords`` key of its config).

    With ``include_defaults`` (the default) the languages given here add to the
    built-in ones: their words join the built-in lists and their non-empty
    replies replace the built-in replies.
    """

    languages: dict[str, KeywordLanguage] = attrs.field(factory=dict)
    include_defaults: bool = True
    #: Language of replies when nothing tells which (a provider-detected keyword).
    default_language: str = "en"

    def effective_languages(self) -> dict[str, KeywordLanguage]:
        if not self.include_defaults:
            return dict(self.languages)
        merged = dict(DEFAULT_KEYWORD_LANGUAGES)
        for code, extra in self.languages.items():
            base = merged.get(code)
            merged[code] = extra if base is None else _merge(base, extra)
        return merged


def _merge(base: KeywordLanguage, extra: KeywordLanguage) -> KeywordLanguage:
    changes: dict[str, Any] = {}
    for field in attrs.fields(KeywordLanguage):
        mine, theirs = getattr(base, field.name), getattr(extra, field.name)
        if isinstance(mine, tuple):
            changes[field.name] = mine + tuple(w for w in theirs if w not in mine)
        else:
            changes[field.name] = theirs or mine
    return attrs.evolve(base, **changes)


@attrs.frozen
class KeywordMatch:
    """Which keyword a message is, found by which tier, in which language."""

    action: KeywordAction
    #: The keyword or phrase matched, normalised (``stop``, ``remove me from your list``).
    keyword: str
    tier: KeywordTier
    language: str
    #: YES-like: an opt-in only for a sender who is opted out.
    conditional: bool = False
    #: The provider recognised the keyword itself, acted on it and answered.
    provider_handled: bool = False


@attrs.frozen
class KeywordOutcome:
    """What to do about a keyword message: the consent to record and the reply to send."""

    match: KeywordMatch
    #: ``opted_out``, ``opted_in``, or None for no consent change (HELP).
    consent_status: str | None
    #: The one confirmation to send, or None.
    reply: str | None


@attrs.frozen
class _Entry:
    action: KeywordAction
    language: str
    conditional: bool


class KeywordProcessingService:
    """Recognises consent keywords and decides consent changes and replies; no I/O."""

    def __init__(self, config: KeywordConfig | None = None) -> None:
        self.config = config or KeywordConfig()
        self.languages = self.config.effective_languages()
        codes = sorted(self.languages, key=lambda c: c != self.config.default_language)
        self._exact: dict[str, _Entry] = {}
        self._words: dict[str, _Entry] = {}
        self._phrases: list[tuple[tuple[str, ...], str]] = []
        self._fillers: set[str] = set()
        # Earlier wins: the default language first, and within a language an
        # opt-out before anything else, so a word listed twice errs on the side
        # of honouring a revocation.
        for code in codes:
            lang = self.languages[code]
            groups: list[tuple[Sequence[str], KeywordAction, bool]] = [
                (lang.opt_out, "opt_out", False),
                (lang.help, "help", False),
                (lang.opt_in, "opt_in", False),
                (lang.opt_in_if_opted_out, "opt_in", True),
            ]
            for words, action, conditional in groups:
                for word in words:
                    entry = _Entry(action, code, conditional)
                    self._exact.setdefault(word.strip().casefold(), entry)
                    tokens = normalize_text(word)
                    if tokens:
                        self._words.setdefault(" ".join(tokens), entry)
                        self._words.setdefault("".join(tokens), entry)
            self._fillers.update(t for f in lang.fillers for t in normalize_text(f))
            self._phrases.extend((normalize_text(p), code) for p in lang.phrases if normalize_text(p))
        self._phrase_sizes = sorted({len(phrase) for phrase, _ in self._phrases})

    def match(self, text: str, *, provider_opt_out_type: str | None = None) -> KeywordMatch | None:
        """The keyword ``text`` is, by the module's tiers, regardless of consent; None for a message."""
        found = self._match_body(text or "")
        provider = _PROVIDER_ACTIONS.get((provider_opt_out_type or "").strip().upper())
        if provider is not None:
            language = found.language if found is not None else self.config.default_language
            keyword = found.keyword if found is not None else provider.replace("_", " ")
            return KeywordMatch(provider, keyword, "provider", language, provider_handled=True)
        return found

    def _match_body(self, text: str) -> KeywordMatch | None:
        entry = self._exact.get(text.strip().casefold())
        if entry is not None:
            return self._found(entry, " ".join(normalize_text(text)), "exact")
        tokens = normalize_text(text)
        if not tokens:
            return None
        for key in (" ".join(tokens), "".join(tokens)):
            if (entry := self._words.get(key)) is not None:
                return self._found(entry, key, "normalized")
        if (found := self._with_fillers(tokens)) is not None:
            return found
        if self._phrases:
            # Every run of words as long as some phrase, then the phrases in order.
            runs = {tokens[i : i + n] for n in self._phrase_sizes for i in range(len(tokens) - n + 1)}
            for phrase, code in self._phrases:
                if phrase in runs:
                    return KeywordMatch("opt_out", " ".join(phrase), "phrase", code)
        return None

    def _with_fillers(self, tokens: tuple[str, ...]) -> KeywordMatch | None:
        start = 0
        while start < len(tokens) and tokens[start] in self._fillers:
            start += 1
        for size in range(min(_MAX_KEYWORD_WORDS, len(tokens) - start), 0, -1):
            key = " ".join(tokens[start : start + size])
            entry = self._words.get(key) or self._words.get(key.replace(" ", ""))
            if entry is None:
                continue
            rest = tokens[start + size :]
            # Another keyword of the same action counts as filler ("stop stop", "stop unsubscribe").
            if all(t in self._fillers or self._same(t, entry) for t in rest):
                return self._found(entry, key, "filler")
            return None
        return None

    def _same(self, token: str, entry: _Entry) -> bool:
        other = self._words.get(token)
        return other is not None and other.action == entry.action

    @staticmethod
    def _found(entry: _Entry, keyword: str, tier: KeywordTier) -> KeywordMatch:
        return KeywordMatch(entry.action, keyword, tier, entry.language, entry.conditional)

    def evaluate(
        self,
        text: str,
        *,
        opted_out: bool,
        provider_opt_out_type: str | None = None,
        help_overrides: Sequence[Mapping[str, str] | str | None] = (),
    ) -> KeywordOutcome | None:
        """The consent change and reply for a message, or None when it is no keyword message.

        ``opted_out`` is the sender's current state for this scope: YES opts
        in only an opted-out sender, and an opted-out sender's repeated STOP
        gets no second confirmation. ``help_overrides`` are help texts by
        precedence (a campaign's, then the channel's), each a text or a
        mapping of language code to text.
        """
        found = self.match(text, provider_opt_out_type=provider_opt_out_type)
        if found is None or (found.conditional and not opted_out):
            return None
        lang = self.languages.get(found.language) or self.languages.get(self.config.default_language)
        fallback = self.languages.get(self.config.default_language, lang)
        reply: str | None
        if found.action == "opt_out":
            status: str | None = "opted_out"
            reply = None if opted_out else _reply(lang, fallback, "opt_out_reply")
        elif found.action == "opt_in":
            status, reply = "opted_in", _reply(lang, fallback, "opt_in_reply")
        else:
            status = None
            reply = self._help_text(found.language, help_overrides) or _reply(lang, fallback, "help_reply")
        if found.provider_handled:
            reply = None
        return KeywordOutcome(found, status, reply)

    def _help_text(self, language: str, overrides: Sequence[Mapping[str, str] | str | None]) -> str | None:
        for override in overrides:
            if isinstance(override, str) and override.strip():
                return override
            if isinstance(override, Mapping) and override.get(language):
                return override[language]
        for override in overrides:
            if isinstance(override, Mapping) and override.get(self.config.default_language):
                return override[self.config.default_language]
        return None


def _reply(lang: KeywordLanguage | None, fallback: KeywordLanguage | None, name: str) -> str | None:
    for source in (lang, fallback):
        text: str = getattr(source, name, "") if source is not None else ""
        if text:
            return text
    return None
