"""The forms of a webhook URL that Twilio's own validators accept a signature over.

Twilio signs the URL it called, but its back ends are inconsistent about
ports and about escaping, so the official SDKs each try several forms of the
received URL. A signature is accepted here when it matches any form either
SDK tries:

* twilio-python: the URL as ``urllib.parse`` re-serializes it, with its port
  removed, and with the scheme's default port added.
* twilio-node: the URL as received with its port removed and with the
  default port added; then the URL normalized as a WHATWG ``URL`` serializes
  it (``'`` in a query becomes ``%27``, a space ``%20``, non-ASCII is
  percent-encoded, dot segments are resolved, the host is lower-cased), with
  and without the port; and each of those two with its query string
  re-encoded by Node's legacy ``querystring`` module (``%27`` becomes ``'``
  again, ``+`` becomes ``%20``, repeated keys are grouped).

Every function here is pure string work; nothing is fetched or resolved.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_to_bytes, urlparse

__all__ = ["legacy_querystring", "normalized_url", "url_variants"]

_AUTHORITY = re.compile(r"([a-z][a-z0-9+.-]*://)([^/?#]*)", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL_DOTS = re.compile("[.\u3002\uff0e\uff61]")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
_VALID_ESCAPE = re.compile("%[0-9A-Fa-f]{2}")
_BAD_ESCAPE = re.compile("%(?![0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# WHATWG percent-encode sets (code points below 0x7F that are encoded; every
# code point above 0x7E is encoded too). The path set is Node's: it leaves ^ alone.
_C0 = frozenset(range(0x20))
_FRAGMENT_SET = _C0 | {0x20, 0x22, 0x3C, 0x3E, 0x60}
_SPECIAL_QUERY_SET = _C0 | {0x20, 0x22, 0x23, 0x27, 0x3C, 0x3E}
_PATH_SET = _C0 | {0x20, 0x22, 0x23, 0x3C, 0x3E, 0x3F, 0x60, 0x7B, 0x7D}
_USERINFO_SET = _PATH_SET | {0x2F, 0x3A, 0x3B, 0x3D, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x7C}
_FORBIDDEN_DOMAIN = frozenset(" #%/:<>?@[\\]^|\x7f") | {chr(c) for c in _C0}
_DOT_SEGMENTS = frozenset({".", "%2e"})
_DOUBLE_DOT_SEGMENTS = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})
# Node's querystring.escape leaves these unencoded (encodeURIComponent's set).
_QS_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
_QS_MAX_PAIRS = 1000


def url_variants(url: str) -> list[str]:
    """Every form of ``url`` that twilio-python or twilio-node checks a signature against.

    The URL as received comes first; duplicates are left out.
    """
    forms = [_remove_port(url), _add_port(url)]
    forms.sort(key=lambda form: form != url)
    forms += _python_forms(url)
    normalized = normalized_url(url)
    if normalized is not None:
        without, with_port = _remove_port(normalized), _add_port(normalized)
        forms += [without, with_port, legacy_querystring(without), legacy_querystring(with_port)]
    return list(dict.fromkeys(forms))


# -- ports, as the SDKs cut and add them -------------------------------------------------------


def _split(url: str) -> tuple[str, str, str, str, str] | None:
    """``scheme://``, userinfo with its ``@``, host, ``:port`` and the rest, without normalizing."""
    match = _AUTHORITY.match(url)
    if match is None:
        return None
    scheme, authority = match.groups()
    userinfo, at, host_port = authority.rpartition("@")
    # A colon starts the port only after an IPv6 literal's closing bracket.
    colon = host_port.find(":", host_port.rfind("]") + 1)
    host, port = (host_port, "") if colon < 0 else (host_port[:colon], host_port[colon:])
    return scheme, userinfo + at, host, port, url[match.end() :]


def _remove_port(url: str) -> str:
    parts = _split(url)
    if parts is None:
        return url
    scheme, userinfo, host, _, rest = parts
    return scheme + userinfo + host + rest


def _add_port(url: str) -> str:
    parts = _split(url)
    if parts is None or parts[3]:
        return url
    scheme, userinfo, host, _, rest = parts
    port = ":443" if scheme.lower() == "https://" else ":80"
    return scheme + userinfo + host + port + rest


def _python_forms(url: str) -> list[str]:
    # twilio-python parses the URL with urllib and checks the re-serialized
    # form, which lower-cases the scheme and drops an empty query or fragment.
    try:
        reserialized = urlparse(url).geturl()
    except ValueError:
        return []
    return [_remove_port(reserialized), _add_port(reserialized)]


# -- the WHATWG URL serialization (what Node's `new URL(url).toString()` gives) -----------------


_UNSAFE_PATTERNS: dict[frozenset[int], re.Pattern[str]] = {
    unsafe: re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(unsafe)) + "\x7f-\U0010ffff]")
    for unsafe in (_FRAGMENT_SET, _SPECIAL_QUERY_SET, _PATH_SET, _USERINFO_SET)
}


def _encode(text: str, unsafe: frozenset[int]) -> str:
    if not _UNSAFE_PATTERNS[unsafe].search(text):
        return text
    out: list[str] = []
    for char in text:
        code = ord(char)
        if code < 0x7F and code not in unsafe:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def normalized_url(url: str) -> str | None:
    """``url`` as a WHATWG URL parser serializes it, or None where Node's ``new URL`` would throw.

    Only ``http`` and ``https`` URLs are normalized (Twilio calls no other).
    """
    text = url if url.isascii() else _SURROGATE.sub("\ufffd", url)
    text = text.strip(_C0_OR_SPACE).translate(_TAB_OR_NEWLINE)
    match = _SCHEME.match(text)
    if match is None or match.group(1).lower() not in _DEFAULT_PORTS:
        return None
    scheme = match.group(1).lower()
    rest = text[match.end() :].lstrip("/\\")
    end = min((i for i in (rest.find(c) for c in "/\\?#") if i >= 0), default=len(rest))
    authority, rest = rest[:end], rest[end:]
    userinfo, at, host_port = authority.rpartition("@")
    if at and not host_port:
        return None
    host, port = _host_and_port(host_port, _DEFAULT_PORTS[scheme])
    if host is None or port == -1:
        return None
    user, _, password = userinfo.partition(":")
    user, password = _encode(user, _USERINFO_SET), _encode(password, _USERINFO_SET)
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    before_fragment, hash_sign, fragment = rest.partition("#")
    path, question, query = before_fragment.partition("?")
    href = f"{scheme}://{credentials}{host}{f':{port}' if port is not None else ''}{_path(path)}"
    if question:
        href += "?" + _encode(query, _SPECIAL_QUERY_SET)
    if hash_sign:
        href += "#" + _encode(fragment, _FRAGMENT_SET)
    return href


def _host_and_port(host_port: str, default_port: int) -> tuple[str | None, int | None]:
    """The serialized host and the port (None when absent or the default, -1 when invalid)."""
    colon = host_port.find(":")
    if "[" in host_port[: colon if colon >= 0 else None]:
        # A colon inside an IPv6 literal's brackets does not start the port.
        inside, colon = False, -1
        for index, char in enumerate(host_port):
            if char in "[]":
                inside = char == "["
            elif char == ":" and not inside:
                colon = index
                break
    raw_host, raw_port = (host_port, "") if colon < 0 else (host_port[:colon], host_port[colon + 1 :])
    if raw_port and not (raw_port.isascii() and raw_port.isdigit()):
        return None, -1
    port = int(raw_port) if raw_port else None
    if port is not None and port > 65535:
        return None, -1
    return _host(raw_host), None if port == default_port else port


def _host(raw: str) -> str | None:
    if not raw:
        return None
    if raw.startswith("["):
        return _ipv6(raw[1:-1]) if raw.endswith("]") else None
    try:
        domain = unquote_to_bytes(raw).decode("utf-8") if "%" in raw else raw
    except UnicodeDecodeError:
        return None
    if domain.isascii():
        ascii_domain = domain.lower()
    else:
        try:
            ascii_domain = ".".join(_ascii_label(label) for label in _LABEL_DOTS.split(domain))
        except UnicodeError:
            return None
    if not _FORBIDDEN_DOMAIN.isdisjoint(ascii_domain):
        return None
    return _ipv4(ascii_domain) if _ends_in_number(ascii_domain) else ascii_domain


def _ascii_label(label: str) -> str:
    # UTS 46 non-transitional processing, as far as ordinary names need it:
    # lower-case, NFC, then Punycode for a label that is not ASCII.
    label = unicodedata.normalize("NFC", label.lower())
    return label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")


def _ipv4_number(part: str) -> int | None:
    radix = 10
    if len(part) >= 2 and part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) >= 2 and part.startswith("0"):
        part, radix = part[1:], 8
    if not part:
        return 0
    digits = "0123456789abcdefABCDEF"[: 22 if radix == 16 else radix]
    if not all(char in digits for char in part):
        return None
    return int(part, radix)


def _ends_in_number(domain: str) -> bool:
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    return bool(last) and ((last.isascii() and last.isdigit()) or _ipv4_number(last) is not None)


def _ipv4(domain: str) -> str | None:
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4 or "" in parts:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(values[:-1]))
    return ".".join(str((address >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _ipv6(inner: str) -> str | None:
    import ipaddress

    if "%" in inner:
        return None
    try:
        packed = ipaddress.IPv6Address(inner).packed
    except ValueError:
        return None
    pieces = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    # Compress the first longest run of two or more zero pieces.
    best_start, best_len, start = -1, 1, -1
    for index, piece in enumerate([*pieces, 1]):
        if piece == 0 and start < 0:
            start = index
        elif piece != 0 and start >= 0:
            if index - start > best_len:
                best_start, best_len = start, index - start
            start = -1
    text = [format(piece, "x") for piece in pieces]
    if best_start >= 0:
        head, tail = text[:best_start], text[best_start + best_len :]
        return "[" + ":".join(head) + "::" + ":".join(tail) + "]"
    return "[" + ":".join(text) + "]"


def _path(raw: str) -> str:
    text = raw.replace("\\", "/")
    segments = (text[1:] if text.startswith("/") else text).split("/")
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        encoded = _encode(segment, _PATH_SET)
        if encoded.lower() in _DOUBLE_DOT_SEGMENTS:
            if out:
                out.pop()
            if last:
                out.append("")
        elif encoded.lower() in _DOT_SEGMENTS:
            if last:
                out.append("")
        else:
            out.append(encoded)
    return "".join("/" + segment for segment in out)


# -- Node's legacy querystring: parse, then stringify ---------------------------------------------


def _qs_unescape(text: str) -> str:
    # Only a value holding a valid escape is decoded; decodeURIComponent's
    # strict UTF-8 first, else byte by byte with invalid sequences replaced.
    if not _VALID_ESCAPE.search(text):
        return text
    if not _BAD_ESCAPE.search(text):
        try:
            return unquote_to_bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            pass
    raw = bytearray()
    index = 0
    while index < len(text):
        chunk = text[index : index + 3]
        if _VALID_ESCAPE.fullmatch(chunk):
            raw.append(int(chunk[1:], 16))
            index += 3
        else:
            raw.extend(text[index].encode("utf-8"))
            index += 1
    return raw.decode("utf-8", errors="replace")


def _qs_escape(text: str) -> str:
    return "".join(
        char if char in _QS_SAFE else "".join(f"%{b:02X}" for b in char.encode("utf-8")) for char in text
    )


def _is_array_index(key: str) -> bool:
    # JavaScript lists an object's integer-like keys first, in numeric order.
    return key == "0" or (
        key.isascii() and key.isdigit() and not key.startswith("0") and int(key) < 2**32 - 1
    )


def legacy_querystring(url: str) -> str:
    """``url`` with its query parsed and re-serialized by Node's legacy ``querystring`` module."""
    start = url.find("?")
    if start < 0 or start == len(url) - 1:
        return url
    values: dict[str, list[str]] = {}
    for piece in url[start + 1 :].split("&")[:_QS_MAX_PAIRS]:
        if not piece:
            continue
        key, _, value = piece.partition("=")
        key, value = key.replace("+", " "), value.replace("+", " ")
        values.setdefault(_qs_unescape(key), []).append(_qs_unescape(value))
    keys = sorted((k for k in values if _is_array_index(k)), key=int)
    keys += [k for k in values if not _is_array_index(k)]
    pairs = [f"{_qs_escape(key)}={_qs_escape(value)}" for key in keys for value in values[key]]
    return url[:start] + "?" + "&".join(pairs)
