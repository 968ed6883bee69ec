"""Secrets the redactor must catch (one or more per rule), look-alikes it must leave, and
labelled values where only the value goes: shared by the whole-text and streaming tests."""

from __future__ import annotations

__all__ = ["LABELLED", "NEGATIVE", "PEM", "POSITIVE", "SEPS", "STREAM_SECRETS", "WORDS", "middle"]

PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n-----END PRIVATE KEY-----"
)

# (kind, secret); each is embedded in prose and must disappear behind [REDACTED:kind].
POSITIVE = [
    ("email", "john.doe+tag@example.co.uk"),
    ("email", "jörg.müller@beispiel.de"),
    ("phone", "+1 415 555 2671"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+44 (0)20 7946 0958"),
    ("phone", "+4915112345678"),
    ("phone", "+33 1 23 45 67 89"),
    ("phone", "(415) 555-2671"),
    ("phone", "415-555-2671"),
    ("phone", "415.555.2671"),
    ("phone", "020 7946 0958"),
    ("phone", "06 12 34 56 78"),
    ("phone", "030 12345678"),
    ("card", "4111 1111 1111 1111"),
    ("card", "4111-1111-1111-1111"),
    ("card", "4111111111111111"),
    ("card", "5555 5555 5555 4444"),
    ("card", "378282246310005"),  # Amex, 15 digits
    ("card", "30569309025904"),  # Diners, 14 digits
    ("card", "2223003122003222"),  # Mastercard 2-series
    ("openai_key", "sk-abcdefghijklmnopqrstuvwxyz012345"),
    ("openai_key", "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz_0123456789-abc"),
    ("anthropic_key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-AAAA"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "ASIAIOSFODNN7EXAMPLE"),
    ("github_token", "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"),
    ("github_token", "gho_" + "Z" * 36),
    ("github_token", "ghu_" + "x9" * 18),
    ("github_token", "ghs_" + "Q1" * 18),
    ("github_token", "ghr_" + "m3" * 18),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"),
    ("google_api_key", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
    ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp"),
    ("slack_token", "xoxp-123456789012-abcdefghij"),
    ("slack_webhook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQs"),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("stripe_key", "rk_live_51HabcdefGHIJKLmnopQRstuv"),
    ("stripe_key", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("gitlab_token", "glpat-Ab12Cd34Ef56Gh78Ij90"),
    ("huggingface_token", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
    ("npm_token", "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    ("pem_private_key", PEM),
    ("pem_private_key", PEM.replace("\n", "\\n").replace("PRIVATE", "RSA PRIVATE")),  # JSON-escaped newlines
]

# Things that look a little like the rules but must survive untouched.
NEGATIVE = [
    "user@localhost and an @mention",
    "in 2024, id 123456789, ts 1700000000, ms 1700000000123",
    "date 2024-01-15, 01.02.2024 and 01-15-2024 at 12:30:45",
    "pi is +3.14159265 and growth was +1500000 (+100000 users)",
    "4111 1111 1111 1112 fails Luhn",
    "1234567812345678 is a run of digits that fails Luhn",
    "12345678901234567890123 is too long to be a card",
    "ip 192.168.100.200, version 1.2.3, isbn 978-3-16-148410-0, ssn-like 123-45-6789",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "mixed separators 415-555.2671",
    "task-based work, ask-me, sk-short",
    "AKIAshort and AKIAIOSFODNN7EXAMPLEX0 is too long",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY without a label",
    "ghp_short and github_pat_short",
    "AIza is a prefix only",
    "xoxb- alone",
    "eyJ is not a token",
    "bearer bonds are bearer instruments",
    "[REDACTED:email] stays as it is",
    # near-misses of the newer kinds and ordinary things that look a little like secrets
    "uuid 550e8400-e29b-41d4-a716-446655440000, sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "md5 d41d8cd98f00b204e9800998ecf8427e, commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "price $1,299.99 or €4.50, 12.5% off, total 1 234 567.00, version 10.2.3",
    "decorators like @property, user@localhost, x@y and npm install @types/node",
    "pip install requests==2.31.0 and numpy>=1.26",
    "the password is stored in a vault; secret sauce; the passwd file; Password:",
    "password = getpass.getpass() and secret=os.environ['SECRET'] and pwd=os.getcwd()",
    "password: ${DB_PASSWORD} and password: ******** and password=None",
    "a basic understanding of Basic auth",
    "https://example.com:8080/path?x=1 and https://docs.python.org/3/",
    "-----BEGIN PUBLIC KEY----- is not private",
    "hf_hub_download, npm_config_cache, sk_live_short, glpat-short",
    "dates 2024-01-15T12:30:45Z, 15/01/2024, 2024.01.15, 12:30",
    "AccountKey is a setting name; AccountKey=short",
    "Bearer tokenisnotrandomatall is prose",
    # false positives once found on prose and code (bench/redact_bench.py --fp)
    "51 Franklin Street, Fifth Floor, Boston, MA 02110-1301, USA",
    "ExtendedContext.quantize(Decimal('+35236450.6'), Decimal('1e-2'))",
    "// Prints: <Buffer 66 68 71 77 68 67 61 64 73>",
    "message id 20150811100527 in the archive",
    "self.password = config['password'] and userid = passwd = acct = ''",
    "self.user, self.password = user, password",
    "assert.deepEqual('+00000000', false); <Buffer 66 00 68 00 71 00 77 00 68 00 67 00>",
]


# (text, expected): the label stays, only the value goes.
LABELLED = [
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [REDACTED:aws_secret_key]",
    ),
    (
        'AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        'AWS_SECRET_ACCESS_KEY="[REDACTED:aws_secret_key]"',
    ),
    (
        '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
        '{"SecretAccessKey": "[REDACTED:aws_secret_key]"}',
    ),
    ("Authorization: Bearer abc123def456ghi789jkl", "Authorization: Bearer [REDACTED:bearer_token]"),
    ("bearer 0123456789abcdefXYZ==", "bearer [REDACTED:bearer_token]"),
    # A key after Bearer is named by its own rule, the label stays.
    ("Bearer sk-abcdefghijklmnopqrstuvwxyz012345", "Bearer [REDACTED:openai_key]"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED:basic_auth]"),
    (
        "postgres://admin:s3cr3tP4ss@db.example.com:5432/app",
        "postgres://[REDACTED:url_credentials]@db.example.com:5432/app",
    ),
    ("https://user:p%40ss@example.com/x", "https://[REDACTED:url_credentials]@example.com/x"),
    ("password=hunter22!", "password=[REDACTED:password]"),
    ('DB_PASSWD: "c0rrect-h0rse"', 'DB_PASSWD: "[REDACTED:password]"'),
    ("client_secret: Tr0ub4dor&3", "client_secret: [REDACTED:password]"),
    ('{"password": "hunter22"}', '{"password": "[REDACTED:password]"}'),
    (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu==;EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:azure_account_key];EndpointSuffix=core.windows.net",
    ),
    (
        '{"type": "service_account", "private_key": "' + PEM.replace("\n", "\\n") + '\\n", "client_email": "x"}',
        '{"type": "service_account", "private_key": "[REDACTED:gcp_private_key]", "client_email": "x"}',
    ),
]

# Ordinary words, punctuation and whitespace that no rule matches alone (some combinations are
# labelled values, e.g. "secret : 2024").
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hello,", "world.", "it's", "(ok)",
          "x", "a-b", "key", "token", "pass", "secret", "Bearer", "basic", "42", "2024", "3.14", "café", "日本語",
          "naïve", "—", "?", "!", ":", "\"quoted\"", "path/to/file", "snake_case", "v1.2.3", "@", "+", "-"]  # fmt: skip
SEPS = [" ", "  ", "\n", "\n\n", "\t", ", ", ". "]

# (text that holds a secret, the secret itself): each kind, bare and labelled.
STREAM_SECRETS = [(s, s) for _, s in POSITIVE]
STREAM_SECRETS += [
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("Authorization: Bearer abc123def456ghi789jkl", "abc123def456ghi789jkl"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("postgres://admin:s3cr3tP4ss@db.example.com:5432/app", "admin:s3cr3tP4ss"),
    ("password=hunter22!", "hunter22!"),
    ('{"password": "hunter22"}', "hunter22"),
    ("client_secret: Tr0ub4dor&3", "Tr0ub4dor&3"),
    (
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu==;",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu==",
    ),
    (LABELLED[-1][0], PEM.replace("\n", "\\n")),
]


def middle(secret: str) -> str:
    """The middle 16 characters of ``secret`` (all of it when shorter): what must never leak."""
    if len(secret) <= 16:
        return secret
    i = (len(secret) - 16) // 2
    return secret[i : i + 16]
