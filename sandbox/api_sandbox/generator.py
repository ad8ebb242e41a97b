"""Deterministic fake rows for Data Extensions.

Rows come out in *stored* form (see ``fields.py``) so a million of them load into
sqlite without per-value conversion. Well-known Customers columns get realistic values
(messy phones, non-ASCII names, bad emails, nulls); any other column gets a plain value
for its type, so arbitrary test DEs can be generated too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from api_sandbox import edge_values, sfmc_time
from api_sandbox.fields import Field

FIRST_NAMES = (
    "Ada", "Alan", "Grace", "Linus", "Zoë", "Łukasz", "Ayşe", "Mehmet", "José", "Søren",
    "Chloé", "Björn", "Anaïs", "Jürgen", "María", "Noah", "Olivia", "Liam", "Emma", "Yuki",
    "Wei", "Priya", "Omar", "Fatma", "Élodie", "Dvořák", "Siobhán", "Ngozi", "Kai", "Ines",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Şahin", "Kowalski", "Yılmaz", "García",  # noqa: RUF001 - Turkish dotless i
    "Müller", "Kierkegaard", "Dubois", "Andersson", "Nowak", "O'Brien", "Smith", "Jones",
    "Tanaka", "Chen", "Patel", "Haddad", "Öztürk", "Novák", "Brontë", "Okafor", "Silva",
)  # fmt: skip
CITIES = (
    ("London", "GB"), ("Manchester", "GB"), ("Istanbul", "TR"), ("İzmir", "TR"),
    ("Berlin", "DE"), ("München", "DE"), ("Paris", "FR"), ("Kraków", "PL"),
    ("New York", "US"), ("Chicago", "US"), ("São Paulo", "BR"), ("Singapore", "SG"),
    ("Tokyo", "JP"), ("Madrid", "ES"), ("Århus", "DK"),
)  # fmt: skip
_PHONE_SHAPES = (
    # (weight, kind) - national formats need the country to normalise, some are junk.
    (40, "e164"), (12, "gb_national"), (10, "us_national"), (8, "intl_spaced"),
    (8, "double_zero"), (6, "extension"), (4, "tr_national"), (4, "short"), (3, "letters"),
    (5, "null"),
)  # fmt: skip
_PHONE_KINDS = [k for _, k in _PHONE_SHAPES]
_PHONE_WEIGHTS = [w for w, _ in _PHONE_SHAPES]
# Kinds of bad email, each made unique by the row index (none passes Insider's regex).
_BAD_EMAILS = (
    "customer{i}-at-example.com", "customer{i}@", "customer{i}@example",
    "@customer{i}.example.com", "customer {i}@example",
)  # fmt: skip
_DOMAINS = ("example.com", "example.org", "mail.example.net", "example.co.uk")


INSERT_KEYS = ("append", "mid")
NUMBER_KEY_GAP = 1000


@dataclass
class GeneratorParams:
    """Knobs for generated data; every value has a deterministic default."""

    modified_start: str = "2024-01-01T00:00:00"
    modified_end: str = "2025-06-30T23:59:59"
    bulk_block_size: int = 2600  # just over one 2,500-row page: a timestamp spans pages
    bulk_blocks: int | None = None  # default: 1 + rows // 100,000; 1 block of 40% below 5,200
    null_rate: float = 0.05
    bad_email_rate: float = 0.03
    # Share of rows that reuse the previous row's phone (a household landline), so the
    # demo shows Insider merging profiles on a shared identifier; every other phone is
    # unique per row.
    shared_phone_rate: float = 0.01
    # Where live inserts land in primary-key order: "append" (keys above every existing
    # one) or "mid" (right after a random existing key, i.e. mid-table when ordered by
    # key). "mid" spaces generated Number keys NUMBER_KEY_GAP apart to leave room.
    insert_keys: str = "append"
    # Rows (spread evenly over the base rows) whose every non-key column holds an edge
    # value of its type (edge_values.py); >= 14 shows every value in every column.
    edge_values: int = 0
    # Rows whose ModifiedDate (the replication key) is an edge date: year 9999, year 1,
    # 1753, or empty when the column is not required.
    edge_key_rows: int = 0
    # Also plant values a typed column cannot hold ("NaN" in a Number, "2/30/2020" in a
    # Date), sent raw: for clients that must survive a value not fitting its type.
    edge_wire_garbage: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> GeneratorParams:
        """Build from a JSON object, rejecting unknown keys and values."""
        data = dict(data or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown generator parameters: {sorted(unknown)}")
        params = cls(**data)
        if params.insert_keys not in INSERT_KEYS:
            raise ValueError(f"insert_keys must be one of {INSERT_KEYS}")
        if min(params.edge_values, params.edge_key_rows) < 0:
            raise ValueError("edge_values and edge_key_rows must be >= 0")
        return params

    @property
    def number_key_step(self) -> int:
        """Distance between generated Number primary keys."""
        return NUMBER_KEY_GAP if self.insert_keys == "mid" else 1


def customers_fields() -> list[Field]:
    """The demo ``Customers`` DE definition."""
    return [
        Field("SubscriberKey", "Text", is_primary_key=True, max_length=100),
        Field("EmailAddress", "EmailAddress"),
        Field("Phone", "Phone"),
        Field("FirstName", "Text", max_length=100),
        Field("LastName", "Text", max_length=100),
        Field("City", "Text", max_length=100),
        Field("Country", "Text", max_length=2),
        Field("BirthDate", "Date"),
        Field("LoyaltyPoints", "Number"),
        Field("LifetimeValue", "Decimal", max_length=12, scale=2),
        Field("EmailOptIn", "Boolean"),
        Field("ModifiedDate", "Date", is_required=True, default_value="Now()"),
    ]


Gen = Callable[[int, random.Random, dict[str, Any]], Any]


# Phones embed 7 digits derived from the row index, so no two rows share a number, not
# even after normalisation to E.164 (each shape has its own country/area prefix), for
# indexes below this bound. Only "short" and "letters", which never normalise, repeat.
UNIQUE_PHONE_ROWS = 8_000_000


def _phone_digits(i: int) -> str:
    """7 digits unique per row index, never starting with 0 or 1 (valid NANP exchange)."""
    return f"{2_000_000 + i % UNIQUE_PHONE_ROWS:07d}"


def _phone(i: int, kind: str, a: int, b: int, rng: random.Random) -> str | None:  # noqa: PLR0911 - one return per shape
    d = _phone_digits(i)
    if kind == "e164":  # UK one digit too long (a typo), US and TR valid
        return rng.choice((f"+447700{d}", f"+1202{d}", f"+90532{d}"))
    if kind == "gb_national":
        return f"020 7{d[:3]} {d[3:]}"
    if kind == "us_national":
        return f"(202) {d[:3]}-{d[3:]}"
    if kind == "intl_spaced":
        return f"+49 (0)30 {d[:4]} {d[4:]}"
    if kind == "double_zero":  # London like gb_national, but area 203 so never the same
        return f"00 44 20 3{d[:3]} {d[3:]}"
    if kind == "extension":
        return f"202-{d[:3]}-{d[3:]} ext. {b % 1000}"
    if kind == "tr_national":
        return f"0532 {d[:3]} {d[3:5]} {d[5:]}"
    if kind == "short":
        return str(a)
    if kind == "letters":
        return rng.choice(("1-800-FLOWERS", "call me", "n/a"))
    return None


def _known_generators(params: GeneratorParams) -> dict[str, Gen]:
    """Realistic generators for the Customers columns, keyed by lowercased name."""
    null = params.null_rate
    birth_lo = sfmc_time.parse_datetime("1940-01-01T00:00:00")
    birth_span_days = 365 * 65

    def email(i: int, rng: random.Random, _row: dict[str, Any]) -> str | None:
        roll = rng.random()
        if roll < null / 2:
            return None
        if roll < null / 2 + params.bad_email_rate:
            return rng.choice(_BAD_EMAILS).format(i=i)
        return f"customer{i}@{_DOMAINS[i % len(_DOMAINS)]}"

    previous_phone: list[str | None] = [None]  # the last generated row's phone

    def phone(i: int, rng: random.Random, _row: dict[str, Any]) -> str | None:
        kind = rng.choices(_PHONE_KINDS, _PHONE_WEIGHTS)[0]
        a, b = rng.randint(1000, 9999), rng.randint(1000, 9999)
        value = _phone(i, kind, a, b, rng)
        # Sharing is decided from b's low digits (uniform over 0..999) rather than a new
        # draw, so the rate does not shift the random stream of the other columns.
        if previous_phone[0] is not None and b % 1000 < params.shared_phone_rate * 1000:
            value = previous_phone[0]
        previous_phone[0] = value
        return value

    def first(_i: int, rng: random.Random, _row: dict[str, Any]) -> str | None:
        return None if rng.random() < null / 2 else rng.choice(FIRST_NAMES)

    def last(_i: int, rng: random.Random, _row: dict[str, Any]) -> str | None:
        return None if rng.random() < null / 2 else rng.choice(LAST_NAMES)

    def city(_i: int, rng: random.Random, row: dict[str, Any]) -> str | None:
        name, country = rng.choice(CITIES)
        row["_country"] = country
        return None if rng.random() < null else name

    def country(_i: int, rng: random.Random, row: dict[str, Any]) -> str | None:
        return None if rng.random() < null / 2 else row.get("_country", "GB")

    def birth(_i: int, rng: random.Random, _row: dict[str, Any]) -> int | None:
        if rng.random() < null * 3:
            return None
        return birth_lo + rng.randrange(birth_span_days) * 86400  # midnight, as DEs store dates

    def points(_i: int, rng: random.Random, _row: dict[str, Any]) -> int | None:
        return None if rng.random() < null else rng.randint(0, 250_000)

    def ltv(_i: int, rng: random.Random, _row: dict[str, Any]) -> int | None:
        return None if rng.random() < null else rng.randint(0, 5_000_000)  # cents

    def optin(_i: int, rng: random.Random, _row: dict[str, Any]) -> int | None:
        return None if rng.random() < null / 2 else int(rng.random() < 0.7)  # noqa: PLR2004

    return {
        "emailaddress": email,
        "phone": phone,
        "firstname": first,
        "lastname": last,
        "city": city,
        "country": country,
        "birthdate": birth,
        "loyaltypoints": points,
        "lifetimevalue": ltv,
        "emailoptin": optin,
    }


def _generic(field: Field, start: int, span: int, key_step: int = 1) -> Gen:  # noqa: PLR0911 - one per type
    kind = field.field_type
    name = field.name
    if kind == "Number":
        return lambda i, rng, _row: (
            i * key_step if field.is_primary_key else rng.randint(0, 100_000)
        )
    if kind == "Decimal":
        return lambda _i, rng, _row: rng.randint(0, 10 ** min(field.max_length or 18, 9))
    if kind == "Boolean":
        return lambda _i, rng, _row: int(rng.random() < 0.5)  # noqa: PLR2004
    if kind == "Date":
        return lambda _i, rng, _row: start + rng.randrange(span)
    if kind == "EmailAddress":
        return lambda i, _rng, _row: f"user{i}@example.com"
    if kind == "Phone":
        return lambda i, _rng, _row: f"+1202{_phone_digits(i)}"
    if kind == "Locale":
        return lambda _i, rng, _row: rng.choice(("en-US", "en-GB", "tr-TR", "de-DE"))
    if field.is_primary_key:
        return lambda i, _rng, _row: f"{name[:4].upper()}{i:08d}"
    return lambda i, rng, _row: f"{name}-{i}-{rng.randint(0, 999)}"


def _column_generators(
    fields: list[Field], params: GeneratorParams, mod_lo: int, span: int
) -> tuple[list[Gen], int | None]:
    """One value generator per field, and the position of ``ModifiedDate`` (None: absent)."""
    known = _known_generators(params)
    gens: list[Gen] = []
    modified_pos = None
    for pos, field in enumerate(fields):
        lname = field.name.lower()
        if field.is_primary_key and field.field_type in {"Text", "EmailAddress"}:
            if lname == "subscriberkey":
                gens.append(lambda i, _rng, _row: f"SK{i:08d}")
            else:
                gens.append(_generic(field, mod_lo, span))
        elif lname == "modifieddate" and field.field_type == "Date":
            modified_pos = pos
            gens.append(lambda _i, rng, _row: mod_lo + rng.randrange(span))
        elif lname in known and not field.is_primary_key:
            gens.append(known[lname])
        else:
            gens.append(_generic(field, mod_lo, span, params.number_key_step))
    return gens, modified_pos


def generate_rows(
    fields: list[Field],
    count: int,
    seed: int,
    params: GeneratorParams | None = None,
    *,
    start_index: int = 0,
    stream: str = "base",
) -> Iterator[tuple[Any, ...]]:
    """Yield ``count`` rows in stored form, in field order.

    Args:
        fields: DE definition.
        count: number of rows.
        seed: base seed; the same (fields, count, seed, params) always gives the same rows.
        params: generator knobs.
        start_index: index of the first row (inserted rows continue after the base rows).
        stream: separates independent random streams (base rows, inserts, updates).
    """
    params = params or GeneratorParams()
    rng = random.Random(f"{seed}:{stream}:{start_index}")
    mod_lo = sfmc_time.parse_datetime(params.modified_start)
    mod_hi = sfmc_time.parse_datetime(params.modified_end)
    span = max(1, mod_hi - mod_lo)
    gens, modified_pos = _column_generators(fields, params, mod_lo, span)
    blocks = _bulk_blocks(count, params, rng, mod_lo, span) if stream == "base" else []
    block_iter = iter(blocks)
    block = next(block_iter, None)
    planter = _EdgePlanter(fields, count, params, modified_pos) if stream == "base" else None
    for offset in range(count):
        i = start_index + offset
        row: dict[str, Any] = {}
        values = [gen(i, rng, row) for gen in gens]
        while block is not None and offset >= block[0] + block[1]:
            block = next(block_iter, None)
        if modified_pos is not None and block is not None and block[0] <= offset:
            values[modified_pos] = block[2]
        if planter is not None:
            planter.plant(offset, values)
        yield tuple(values)


class _EdgePlanter:
    """Overwrites the chosen base rows with edge values (edge_values.py)."""

    def __init__(
        self, fields: list[Field], count: int, params: GeneratorParams, modified_pos: int | None
    ) -> None:
        garbage = params.edge_wire_garbage
        self.value_rows = {
            o: k for k, o in enumerate(edge_values.offsets(count, params.edge_values))
        }
        self.key_rows = {
            o: k for k, o in enumerate(edge_values.offsets(count, params.edge_key_rows, phase=0.5))
        }
        self.columns = [
            (pos, edge_values.catalogue(f, wire_garbage=garbage))
            for pos, f in enumerate(fields)
            if not f.is_primary_key and pos != modified_pos  # the key has its own option
        ]
        self.key = (
            None
            if modified_pos is None
            else (
                modified_pos,
                edge_values.key_catalogue(fields[modified_pos], wire_garbage=garbage),
            )
        )

    def plant(self, offset: int, values: list[Any]) -> None:
        k = self.value_rows.get(offset)
        if k is not None:
            for c, (pos, choices) in enumerate(self.columns):
                values[pos] = choices[(k + c) % len(choices)]
        k = self.key_rows.get(offset)
        if k is not None and self.key is not None:
            pos, choices = self.key
            values[pos] = choices[k % len(choices)]


def _bulk_blocks(
    count: int, params: GeneratorParams, rng: random.Random, lo: int, span: int
) -> list[tuple[int, int, int]]:
    """(first offset, size, shared ModifiedDate) of each bulk-import block, in order."""
    size = params.bulk_block_size
    blocks = params.bulk_blocks
    if blocks is None:
        if count >= 2 * size:
            blocks = 1 + count // 100_000
        elif count >= 1000:  # noqa: PLR2004 - small demo DEs still get one bulk import
            blocks, size = 1, count * 2 // 5
        else:
            blocks = 0
    if blocks <= 0 or size <= 0 or count < size:
        return []
    slot = count // blocks
    out = []
    for b in range(blocks):
        room = max(0, slot - size)
        begin = b * slot + (rng.randrange(room) if room else 0)
        out.append((begin, min(size, count - begin), lo + rng.randrange(span)))
    return out
