"""Governance policy libraries: published like Flight Sheets, one policy applied, chosen at start-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from defendable_canonical.digest import sha256_digest
from defendable_canonical.jcs import canonicalize
from defendable_canonical.publication import LOCK_NAME, LockError
from defendable_intake.governance_policy import (
    DEFAULT_POLICY,
    PolicyInvalid,
    load_library,
    main,
    packaged_directory,
    publish,
    select_policy,
)

PACKAGED = Path(str(packaged_directory()))


def policy(version: str = "1.0.0", count: int = 3, policy_id: str = "acme_governance") -> dict[str, Any]:
    return {
        "id": policy_id,
        "version": version,
        "title": "Acme",
        "clauses": [
            {"id": "gov.flags", "kind": "high_flags", "lane": "agent_work", "count": count, "window_s": 3600,
             "response": "lock_lane"},
        ],
    }  # fmt: skip


def write(directory: Path, name: str, doc: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_the_packaged_library_is_published_and_its_default_is_applied() -> None:
    library = load_library()
    assert list(library) == [DEFAULT_POLICY]
    loaded = select_policy(library)
    raw = (PACKAGED / "default_governance_v1.json").read_bytes()
    assert loaded.sha256 == sha256_digest(canonicalize(json.loads(raw)))  # the hash of the file as read
    pinned = (PACKAGED / LOCK_NAME).read_text()
    assert f"{DEFAULT_POLICY} {loaded.sha256}" in pinned.splitlines()


def test_publish_pins_new_policies_and_the_library_then_loads(tmp_path: Path) -> None:
    write(tmp_path, "acme.json", policy())
    assert publish(tmp_path) == ["acme_governance@1.0.0"]
    assert publish(tmp_path) == []  # idempotent
    assert select_policy(load_library(tmp_path)).policy.key == "acme_governance@1.0.0"


def test_a_published_policy_edited_in_place_is_refused_an_edit_needs_a_new_version(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.json", policy())
    publish(tmp_path)
    write(tmp_path, path.name, policy(count=4))
    with pytest.raises(PolicyInvalid, match=r"acme_governance@1\.0\.0 changed after it was published"):
        load_library(tmp_path)
    with pytest.raises(LockError, match="give the edited policy a new version"):
        publish(tmp_path)


def test_an_unpublished_policy_and_a_removed_one_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path, "acme.json", policy())
    publish(tmp_path)
    write(tmp_path, "acme-2.json", policy(version="2.0.0"))
    with pytest.raises(PolicyInvalid, match=r"acme_governance@2\.0\.0 is not published: run `python -m"):
        load_library(tmp_path)
    publish(tmp_path)
    first.unlink()
    with pytest.raises(PolicyInvalid, match=r"acme_governance@1\.0\.0 is published but its file is gone"):
        load_library(tmp_path)


def test_a_library_without_a_lock_or_without_policies_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid, match="no governance policies"):
        load_library(tmp_path)
    write(tmp_path, "acme.json", policy())
    with pytest.raises(PolicyInvalid, match=f"has no {LOCK_NAME}"):
        load_library(tmp_path)
    with pytest.raises(PolicyInvalid, match="is not a directory"):
        load_library(tmp_path / "missing")


def test_several_policies_need_a_choice_unless_one_is_the_default(tmp_path: Path) -> None:
    write(tmp_path, "a.json", policy())
    write(tmp_path, "b.json", policy(version="2.0.0"))
    publish(tmp_path)
    library = load_library(tmp_path)
    with pytest.raises(PolicyInvalid, match="set GOVERNANCE_POLICY=id@version"):
        select_policy(library)
    assert select_policy(library, "acme_governance@2.0.0").policy.version == "2.0.0"
    with pytest.raises(PolicyInvalid, match=r"no governance policy 'acme_governance@3\.0\.0'"):
        select_policy(library, "acme_governance@3.0.0")
    write(tmp_path, "default.json", json.loads((PACKAGED / "default_governance_v1.json").read_text()))
    publish(tmp_path)
    assert select_policy(load_library(tmp_path)).policy.key == DEFAULT_POLICY


def test_two_files_declaring_one_version_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.json", policy())
    write(tmp_path, "b.json", policy())
    with pytest.raises(PolicyInvalid, match=r"b\.json: acme_governance@1\.0\.0 is declared by two files"):
        load_library(tmp_path)


def test_the_publish_command_says_what_it_pinned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "acme.json", policy())
    assert main(["publish", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "published acme_governance@1.0.0\n"
    write(tmp_path, "bad.json", {"id": "x"})
    assert main(["publish", str(tmp_path)]) == 1
    assert "bad.json" in capsys.readouterr().err
    assert main([]) == 2
