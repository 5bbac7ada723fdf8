"""commproc-email: email provider events (SES, SendGrid, Mailgun, Postmark) from SQS.

The names below are the public API; everything else may change between
releases. docs/email.md describes providers, mapping and suppression policy.
"""

from commproc_email.addresses import EmailAddress, is_valid_email, match_key, parse_address
from commproc_email.certificate_sources import DirectoryCertificateSource, HttpsCertificateFetcher
from commproc_email.certificates import CertificateCache, shared_certificate_cache
from commproc_email.detect import PROVIDERS, detect_provider
from commproc_email.events import BOUNCE_CLASSES, EVENT_TYPES, REJECT_REASONS, EmailEvent
from commproc_email.processor import EmailProcessor
from commproc_email.settings import EmailSettings
from commproc_email.signatures import SnsVerifier, sns_signing_string, verify_mailgun, verify_sendgrid
from commproc_email.suppression import ConsentChange, consent_changes

__version__ = "0.1.0"

__all__ = [
    "BOUNCE_CLASSES",
    "EVENT_TYPES",
    "PROVIDERS",
    "REJECT_REASONS",
    "CertificateCache",
    "ConsentChange",
    "DirectoryCertificateSource",
    "EmailAddress",
    "EmailEvent",
    "EmailProcessor",
    "EmailSettings",
    "HttpsCertificateFetcher",
    "SnsVerifier",
    "__version__",
    "consent_changes",
    "detect_provider",
    "is_valid_email",
    "match_key",
    "parse_address",
    "shared_certificate_cache",
    "sns_signing_string",
    "verify_mailgun",
    "verify_sendgrid",
]
