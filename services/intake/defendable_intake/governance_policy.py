"""Governance policies: the declared, versioned, hashed document behind every incident (issue 3).

A governance policy is data, declared per org and versioned like a Flight Sheet: id,
version, title and ordered clauses, each clause with an id that refusals and receipts
cite. It is hashed as the RFC 8785 canonical form of the JSON value *as read from its file*
(the referee's sheet.py does the same), and validated at load with messages that name the
place. The state machine that applies a policy is `governance.py`.

A policy library is a directory of `*.json` policies plus `published.txt`, the same lock the
Flight Sheet library keeps (`defendable_canonical.publication`): a published policy never
changes, an edit is a new version, and a policy an incident names never disappears.
Intake applies one policy to every org (`select_policy`): the packaged library's default
unless `GOVERNANCE_POLICY_DIR` names another library (and `GOVERNANCE_POLICY`, as
`id@version`, picks one of several). Per-org policies are a later step: the incident
receipts already name id, version, sha256 and the clause, whichever policy that is.

`python -m defendable_intake.governance_policy publish DIR` pins every policy of DIR that is
not yet in its lock (and refuses if a pinned one changed).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec

from defendable_canonical.digest import Digest, sha256_digest
from defendable_canonical.incident import ClauseValue, GovernancePolicyRef, IncidentKind, Response, Scope
from defendable_canonical.jcs import canonicalize
from defendable_canonical.model import Lane
from defendable_canonical.publication import LOCK_NAME, LockError, appended_lock, publication_problems, read_lock

NS: Final = 1_000_000_000
MAX_WINDOW_S: Final = 90 * 24 * 3600  # 90 days
MAX_COUNT: Final = 10_000
MAX_TOKENS: Final = 10**12  # a cap, and one run's usage
MAX_CLAUSES: Final = 100
MAX_POLICIES: Final = 1_000  # per library directory
MAX_POLICY_BYTES: Final = 256 * 1024

CLAUSE_KINDS: Final[tuple[IncidentKind, ...]] = ("high_flags", "spend_cap", "dark_agent")
_DECIMAL: Final = r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,6})?"
DEFAULT_POLICY: Final = "default_governance_v1@1.0.0"
PUBLISH_HINT: Final = "run `python -m defendable_intake.governance_policy publish <dir>` to pin its hash"


class GovernanceError(Exception):
    """Base of every error governance raises on purpose."""


class PolicyInvalid(GovernanceError):
    """A policy file does not decode or does not validate; the message names the place."""


PolicyId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Version = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z.+-]{1,40}$")]
ClauseId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", max_length=128)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
WindowS = Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW_S)]
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]
Tokens = Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS)]
Money = Annotated[str, msgspec.Meta(pattern=f"^{_DECIMAL}$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]


class Clause(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    id: ClauseId  # cited in 423 refusals and in receipts: "gov.high_flags.agent_work"
    description: Description = ""


class HighFlagsClause(Clause, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="high_flags"):
    """`count` high-flag verdicts for one profile in `lane` within `window_s` → lock that lane for it."""

    lane: Lane
    count: Count
    window_s: WindowS
    response: Literal["lock_lane"]


class SpendCapClause(Clause, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="spend_cap"):
    """Usage of one profile in `lane` ("*": all lanes together) over `window_s` above a cap → lock."""

    lane: Scope
    window_s: WindowS
    max_tokens: Tokens | None = None
    max_cost: Money | None = None  # decimal string, in `currency`
    currency: Currency | None = None
    response: Literal["lock_lane"]


class DarkAgentClause(Clause, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="dark_agent"):
    """A profile that heartbeats in `lane` ("*": in any lane) and then falls silent for `heartbeat_window_s`."""

    lane: Scope
    heartbeat_window_s: WindowS
    response: Response


AnyClause = HighFlagsClause | SpendCapClause | DarkAgentClause


class GovernancePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_uri: str = msgspec.field(default="", name="$schema")  # optional, for editors
    id: PolicyId
    version: Version
    title: Title
    clauses: Annotated[list[AnyClause], msgspec.Meta(min_length=1, max_length=MAX_CLAUSES)]

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


class LoadedPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """A validated policy, the digest of its file's canonical JSON, and each clause as read."""

    policy: GovernancePolicy
    sha256: Digest
    clause_values: dict[str, ClauseValue]
    raw: bytes = b""

    @property
    def retention_ns(self) -> int:
        """How long anything is kept: twice the longest window of any clause."""
        return 2 * NS * max(window_s(clause) for clause in self.policy.clauses)

    def clause(self, clause_id: str) -> AnyClause:
        for clause in self.policy.clauses:
            if clause.id == clause_id:
                return clause
        raise KeyError(clause_id)

    def ref(self, clause_id: str) -> GovernancePolicyRef:
        """What an incident names: policy id, version, sha256, and the clause as the file states it."""
        return GovernancePolicyRef(
            id=self.policy.id,
            version=self.policy.version,
            sha256=self.sha256,
            clause_id=clause_id,
            clause=self.clause_values[clause_id],
        )


def window_s(clause: AnyClause) -> int:
    """The clause's window in seconds (a dark-agent clause's heartbeat window)."""
    return clause.heartbeat_window_s if isinstance(clause, DarkAgentClause) else clause.window_s


def load_policy(data: bytes, *, source: str) -> LoadedPolicy:
    """Decode, validate and hash one policy file; every error names `source` and the place."""
    try:
        value = msgspec.json.decode(data)
        _check_kinds(value)
        policy = msgspec.convert(value, type=GovernancePolicy)
        _validate(policy)
        digest = sha256_digest(canonicalize(value))
    except PolicyInvalid as exc:
        raise PolicyInvalid(f"{source}: {exc}") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise PolicyInvalid(f"{source}: {exc}") from None
    clause_values = {clause["id"]: clause for clause in value["clauses"]}
    return LoadedPolicy(policy=policy, sha256=digest, clause_values=clause_values, raw=data)


def _check_kinds(value: Any) -> None:
    """msgspec would say only "Invalid value 'x'"; say which clause and which kinds exist."""
    clauses = value.get("clauses") if isinstance(value, dict) else None
    for index, clause in enumerate(clauses if isinstance(clauses, list) else []):
        if isinstance(clause, dict) and "kind" in clause and clause["kind"] not in CLAUSE_KINDS:
            raise PolicyInvalid(
                f"clause {clause.get('id')!r} (clauses[{index}]) has unknown kind {clause['kind']!r};"
                f" known kinds: {', '.join(sorted(CLAUSE_KINDS))}"
            )


def _validate(policy: GovernancePolicy) -> None:
    seen: set[str] = set()
    currencies: set[str] = set()
    for clause in policy.clauses:
        if clause.id in seen:
            raise PolicyInvalid(f"clause id {clause.id!r} is used twice")
        seen.add(clause.id)
        if not isinstance(clause, SpendCapClause):
            continue
        if clause.max_tokens is None and clause.max_cost is None:
            raise PolicyInvalid(f"spend cap {clause.id!r} needs max_tokens, max_cost or both")
        if clause.max_cost is not None:
            if Decimal(clause.max_cost) <= 0:
                raise PolicyInvalid(f"spend cap {clause.id!r} max_cost {clause.max_cost!r} is not above 0")
            if clause.currency is None:
                raise PolicyInvalid(f"spend cap {clause.id!r} has max_cost but no currency (ISO 4217, e.g. USD)")
            currencies.add(clause.currency)
        elif clause.currency is not None:
            raise PolicyInvalid(f"spend cap {clause.id!r} names currency {clause.currency!r} but has no max_cost")
    if len(currencies) > 1:
        # Usage costs arrive as bare decimals in the org's accounting currency: one per policy.
        raise PolicyInvalid(f"spend caps name currencies {', '.join(sorted(currencies))}; a policy has one currency")


# ---------------------------------------------------------------- the library


def packaged_directory() -> Traversable:
    return resources.files(__package__) / "policies"


def load_library(directory: Traversable | Path | None = None) -> dict[str, LoadedPolicy]:
    """Every `*.json` in `directory` (default: the packaged `policies/`), validated, hashed and
    matched against the directory's `published.txt`; keyed by `id@version`."""
    root: Traversable = directory if directory is not None else packaged_directory()
    if not root.is_dir():
        raise PolicyInvalid(f"{root} is not a directory of governance policies")
    files = sorted((f for f in root.iterdir() if f.is_file() and f.name.endswith(".json")), key=lambda f: f.name)
    if not files:
        raise PolicyInvalid(f"no governance policies (*.json) in {root}")
    if len(files) > MAX_POLICIES:
        raise PolicyInvalid(f"{root} holds {len(files)} policies; at most {MAX_POLICIES} are loaded")
    library: dict[str, LoadedPolicy] = {}
    for f in files:
        data = f.read_bytes()
        if len(data) > MAX_POLICY_BYTES:
            raise PolicyInvalid(f"{f.name}: {len(data)} bytes; a policy may be at most {MAX_POLICY_BYTES}")
        loaded = load_policy(data, source=f.name)
        if loaded.policy.key in library:
            raise PolicyInvalid(f"{f.name}: {loaded.policy.key} is declared by two files")
        library[loaded.policy.key] = loaded
    lock = root / LOCK_NAME
    if not lock.is_file():
        raise PolicyInvalid(f"{root} has no {LOCK_NAME}: {PUBLISH_HINT}")
    digests = {key: loaded.sha256 for key, loaded in library.items()}
    try:
        problems = publication_problems(read_lock(lock.read_text("utf-8")), digests, publish_hint=PUBLISH_HINT)
    except LockError as exc:
        raise PolicyInvalid(f"{root}: {exc}") from None
    if problems:
        raise PolicyInvalid(f"{root}: " + "; ".join(problems))
    return library


def select_policy(library: dict[str, LoadedPolicy], name: str | None = None) -> LoadedPolicy:
    """The policy intake applies: `name` (`id@version`) when given, else the library's only
    policy, else the default one; anything else is ambiguous and refused at start-up."""
    if name:
        if name not in library:
            raise PolicyInvalid(f"no governance policy {name!r} in the library; it holds {', '.join(sorted(library))}")
        return library[name]
    if len(library) == 1:
        return next(iter(library.values()))
    if DEFAULT_POLICY in library:
        return library[DEFAULT_POLICY]
    raise PolicyInvalid(
        f"the library holds {len(library)} policies ({', '.join(sorted(library))}):"
        " set GOVERNANCE_POLICY=id@version to choose one"
    )


def publish(directory: Path) -> list[str]:
    """Append a lock line for every policy of `directory` not yet published; the keys added.
    Refuses (LockError) when a published policy changed, and (PolicyInvalid) an invalid one."""
    found: list[tuple[str, str]] = []
    for path in sorted(directory.glob("*.json")):
        loaded = load_policy(path.read_bytes(), source=path.name)
        found.append((loaded.policy.key, loaded.sha256))
    lock = directory / LOCK_NAME
    header = (
        "# Published governance policies: id@version and the sha256 of its canonical JSON.\n"
        "# Lines are only appended; a published policy never changes (an edit is a new version).\n"
    )
    text, added = appended_lock(lock.read_text("utf-8") if lock.is_file() else header, found, what="policy")
    if added:
        lock.write_text(text, "utf-8")
    return added


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "publish":
        print("usage: python -m defendable_intake.governance_policy publish DIR", file=sys.stderr)
        return 2
    try:
        added = publish(Path(argv[1]))
    except (GovernanceError, LockError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key in added:
        print(f"published {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
