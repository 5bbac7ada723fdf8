"""KeywordProcessingService: tiers, languages, consent rules, replies (services/keywords.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commproc_core.errors import ConfigError
from commproc_core.parsing import parse_settings
from commproc_core.services.keywords import (
    DEFAULT_KEYWORD_LANGUAGES,
    KeywordConfig,
    KeywordLanguage,
    KeywordProcessingService,
    normalize_text,
)
from commproc_sms.settings import SMSSettings

service = KeywordProcessingService()

TWILIO_OPT_OUT = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
TWILIO_OPT_IN = ["START", "UNSTOP"]
TWILIO_HELP = ["HELP", "INFO"]


@pytest.mark.parametrize("word", TWILIO_OPT_OUT)
def test_twilio_opt_out_keywords(word):
    found = service.match(word)
    assert found is not None and (found.action, found.tier, found.language) == ("opt_out", "exact", "en")


@pytest.mark.parametrize("word", TWILIO_OPT_IN)
def test_twilio_opt_in_keywords(word):
    found = service.match(word)
    assert found is not None and found.action == "opt_in" and not found.conditional


@pytest.mark.parametrize("word", TWILIO_HELP)
def test_twilio_help_keywords(word):
    found = service.match(word)
    assert found is not None and found.action == "help"


@pytest.mark.parametrize(
    ("text", "action", "tier", "language"),
    [
        ("stop", "opt_out", "exact", "en"),
        ("  Stop  ", "opt_out", "exact", "en"),
        ("Stop.", "opt_out", "normalized", "en"),
        ("STOP!!!", "opt_out", "normalized", "en"),
        ('"stop"', "opt_out", "normalized", "en"),
        ("🛑 STOP 🛑", "opt_out", "normalized", "en"),
        ("opt-out", "opt_out", "normalized", "en"),
        ("Opt out", "opt_out", "exact", "en"),
        ("opt  out!", "opt_out", "normalized", "en"),
        ("STOP ALL", "opt_out", "normalized", "en"),
        ("Arrêt", "opt_out", "normalized", "fr"),
        ("ARRET", "opt_out", "exact", "fr"),
        ("¡Alto!", "opt_out", "normalized", "es"),
        ("baja", "opt_out", "exact", "es"),
        ("PARAR", "opt_out", "exact", "es"),
        ("darse de baja", "opt_out", "exact", "es"),
        ("stop texting me", "opt_out", "filler", "en"),
        ("Stop texting me please!", "opt_out", "filler", "en"),
        ("unsubscribe please", "opt_out", "filler", "en"),
        ("please stop", "opt_out", "filler", "en"),
        ("STOP STOP STOP", "opt_out", "filler", "en"),
        ("Stop sending me messages", "opt_out", "filler", "en"),
        ("arrêt svp", "opt_out", "filler", "fr"),
        ("baja por favor", "opt_out", "filler", "es"),
        ("Please remove me from your list.", "opt_out", "phrase", "en"),
        ("I said don't text me again", "opt_out", "phrase", "en"),
        ("Retirez-moi de votre liste!", "opt_out", "phrase", "fr"),
        ("Por favor no me envíen más mensajes", "opt_out", "phrase", "es"),
        ("help", "help", "exact", "en"),
        ("Help me", "help", "filler", "en"),
        ("info?", "help", "normalized", "en"),
        ("AIDE", "help", "exact", "fr"),
        ("ayuda", "help", "exact", "es"),
        ("start", "opt_in", "exact", "en"),
        ("Unstop!", "opt_in", "normalized", "en"),
    ],
)
def test_tiers(text, action, tier, language):
    found = service.match(text)
    assert found is not None, text
    assert (found.action, found.tier, found.language) == (action, tier, language)


@pytest.mark.parametrize(
    "text",
    [
        "can you stop by at 5?",
        "Don't stop",
        "I will stop by tomorrow",
        "When does the offer end?",
        "Please cancel my appointment",
        "I need help with my order",
        "info about pricing please send",
        "Start time is 9am",
        "yes I would love that, see you at 5",
        "Thank you!",
        "",
        "   ",
        "stopwatch",
        "unstoppable",
        "help desk number?",
    ],
)
def test_ordinary_sentences_are_not_keywords(text):
    assert service.match(text) is None


def test_yes_opts_in_only_an_opted_out_sender():
    found = service.match("YES")
    assert found is not None and found.action == "opt_in" and found.conditional
    assert service.evaluate("Yes", opted_out=False) is None
    outcome = service.evaluate("Yes", opted_out=True)
    assert outcome is not None and outcome.consent_status == "opted_in"
    assert service.evaluate("sí", opted_out=False) is None
    assert service.evaluate("Sí", opted_out=True).match.language == "es"


def test_opt_out_reply_once_and_in_the_keyword_language():
    en = service.evaluate("STOP", opted_out=False)
    assert en is not None and en.consent_status == "opted_out"
    assert en.reply == DEFAULT_KEYWORD_LANGUAGES["en"].opt_out_reply
    fr = service.evaluate("arrêt", opted_out=False)
    assert fr is not None and fr.reply == DEFAULT_KEYWORD_LANGUAGES["fr"].opt_out_reply
    es = service.evaluate("Alto", opted_out=False)
    assert es is not None and es.reply == DEFAULT_KEYWORD_LANGUAGES["es"].opt_out_reply
    # Already opted out: the consent is reaffirmed but no second confirmation goes out.
    again = service.evaluate("STOP", opted_out=True)
    assert again is not None and again.consent_status == "opted_out" and again.reply is None


def test_start_replies_even_when_opted_in():
    outcome = service.evaluate("START", opted_out=False)
    assert outcome is not None and outcome.consent_status == "opted_in" and outcome.reply


def test_provider_handled_keyword_gets_no_reply():
    outcome = service.evaluate("Stop", opted_out=False, provider_opt_out_type="STOP")
    assert outcome is not None
    assert outcome.match.tier == "provider" and outcome.match.provider_handled
    assert outcome.consent_status == "opted_out" and outcome.reply is None
    # The provider's judgement stands even for words we do not know.
    odd = service.evaluate("please no more", opted_out=False, provider_opt_out_type="stop")
    assert odd is not None and odd.match.action == "opt_out" and odd.match.language == "en"
    help_ = service.evaluate("AIDE", opted_out=False, provider_opt_out_type="HELP")
    assert help_ is not None and help_.match.language == "fr" and help_.reply is None
    assert service.evaluate("hello", opted_out=False, provider_opt_out_type="UNKNOWN") is None


def test_help_text_precedence():
    campaign = {"en": "Acme Spring Sale: reply STOP to end."}
    channel = {"en": "Acme: call 555-0100. Reply STOP to end.", "fr": "Acme : appelez le 555-0100."}
    assert (
        service.evaluate("HELP", opted_out=False, help_overrides=(campaign, channel)).reply == campaign["en"]
    )
    assert (
        service.evaluate("AIDE", opted_out=False, help_overrides=(campaign, channel)).reply == channel["fr"]
    )
    assert service.evaluate("AYUDA", opted_out=False, help_overrides=(None, channel)).reply == channel["en"]
    assert (
        service.evaluate("help", opted_out=False, help_overrides=("Plain text", channel)).reply
        == "Plain text"
    )
    default = service.evaluate("help", opted_out=False)
    assert default is not None and default.reply == DEFAULT_KEYWORD_LANGUAGES["en"].help_reply
    assert default.consent_status is None


def test_configured_words_add_to_the_defaults():
    config = KeywordConfig(
        languages={
            "en": KeywordLanguage(opt_out=("HALT",), phrases=("never contact me",), help_reply="Acme help"),
            "de": KeywordLanguage(opt_out=("ABMELDEN",), help=("HILFE",), help_reply="Acme Hilfe"),
        }
    )
    custom = KeywordProcessingService(config)
    assert custom.match("halt").action == "opt_out"
    assert custom.match("STOP").action == "opt_out"
    assert custom.match("Please never contact me again").tier == "phrase"
    assert custom.evaluate("help", opted_out=False).reply == "Acme help"
    de = custom.evaluate("Hilfe", opted_out=False)
    assert de is not None and de.match.language == "de" and de.reply == "Acme Hilfe"
    # A language without its own opt-out reply falls back to the default language's.
    out = custom.evaluate("abmelden", opted_out=False)
    assert out is not None and out.reply == DEFAULT_KEYWORD_LANGUAGES["en"].opt_out_reply


def test_replacing_the_defaults():
    only = KeywordProcessingService(
        KeywordConfig(include_defaults=False, languages={"en": KeywordLanguage(opt_out=("STOP",))})
    )
    assert only.match("unsubscribe") is None
    assert only.match("stop").action == "opt_out"
    assert only.evaluate("stop", opted_out=False).reply is None


def test_opt_out_wins_a_conflict():
    clash = KeywordProcessingService(KeywordConfig(languages={"en": KeywordLanguage(opt_in=("STOP",))}))
    assert clash.match("STOP").action == "opt_out"


def test_keyword_config_from_channel_config():
    settings_ = parse_settings(
        SMSSettings,
        {
            "keywords": {
                "languages": {"en": {"opt_out": ["HALT"], "help_reply": "x"}},
                "default_language": "en",
            }
        },
    )
    assert settings_.keywords.languages["en"].opt_out == ("HALT",)
    with pytest.raises(ConfigError) as caught:
        parse_settings(SMSSettings, {"keywords": {"languages": {"en": {"opt_out": [1]}, "fr": "x"}}})
    assert any("keywords" in p for p in caught.value.problems)


def test_normalize_text():
    assert normalize_text("  Don't   STOP—now! ") == ("dont", "stop", "now")
    assert normalize_text("ARRÊT") == ("arret",)
    assert normalize_text("İNFO") == ("info",)
    assert normalize_text("__") == ()


# -- properties ---------------------------------------------------------------------------------

ALL_KEYWORDS = sorted(
    {
        w
        for lang in DEFAULT_KEYWORD_LANGUAGES.values()
        for w in (*lang.opt_out, *lang.opt_in, *lang.opt_in_if_opted_out, *lang.help)
    }
)
_ACCENTS = {"a": "áàâä", "e": "éèêë", "i": "íìîï", "o": "óòôö", "u": "úùûü", "n": "ñ", "c": "ç"}
_EDGE = st.text(alphabet=" \t\n.,!?¡¿'\"()[]-*~…:;🛑🙏", max_size=4)


@st.composite
def variants(draw):
    keyword = draw(st.sampled_from(ALL_KEYWORDS))
    chars = []
    for ch in keyword:
        if draw(st.booleans()):
            ch = ch.swapcase()
        if ch.lower() in _ACCENTS and draw(st.booleans()):
            accented = draw(st.sampled_from(_ACCENTS[ch.lower()]))
            ch = accented.upper() if ch.isupper() else accented
        chars.append(ch)
    return keyword, draw(_EDGE) + "".join(chars) + draw(_EDGE)


@settings(max_examples=500, deadline=None)
@given(variants())
def test_matching_is_stable_under_case_accents_and_punctuation(pair):
    keyword, variant = pair
    plain = service.match(keyword)
    varied = service.match(variant)
    assert plain is not None and varied is not None, variant
    assert (varied.action, varied.language, varied.conditional) == (
        plain.action,
        plain.language,
        plain.conditional,
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_match_never_raises(text):
    service.match(text)
    service.evaluate(text, opted_out=False)
