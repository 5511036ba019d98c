"""The pack's `logging:` section (SEC-08): where log entries may be stored, which exclusions are expected."""

from __future__ import annotations

from pathlib import Path

from sovaudit.policies.pack import AllowedExclusion, load_policy, resolve_policy, validate_policy

ROOT = Path(__file__).resolve().parents[2]
US = (ROOT / "policies" / "us-node.yaml").read_text()
SHIPPED_SECTION = US[US.index("logging:"):US.index("severity_overrides:")]


def pack_with(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "pack.yaml"
    path.write_text(US.replace(SHIPPED_SECTION, section))
    return path


def test_shipped_packs_keep_logs_in_their_region_and_accept_required_in_global() -> None:
    for name, region in (("us", "us-central1"), ("eu", "europe-west4")):
        routing = resolve_policy(name).logging
        assert routing.allowed_locations == (region,)
        assert routing.required_bucket_location == "global"
        assert routing.allowed_exclusions == (
            AllowedExclusion("drop-task-debug-lines", 'LOG_ID("batch_task_logs") AND severity<=DEBUG'),)


def test_without_a_logging_section_logs_stay_in_the_allowed_regions_and_global_is_not_accepted(tmp_path: Path) -> None:
    routing = load_policy(pack_with(tmp_path, "")).logging
    assert routing.allowed_locations == ("us-central1",)
    assert routing.required_bucket_location == "" and routing.allowed_exclusions == ()


def test_a_log_location_outside_the_jurisdiction_is_named_with_its_line(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "logging:\n  allowed_locations: [us-central1, europe-west4]\n")
    [problem] = [str(e) for e in validate_policy(path)]
    line = US[:US.index("logging:")].count("\n") + 2
    assert problem.startswith(f"{path}:{line}: logging.allowed_locations[1]: the log location 'europe-west4' is "
                              "outside the jurisdiction")


def test_unknown_locations_empty_lists_and_other_required_locations_are_refused(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "logging:\n  allowed_locations: []\n  required_bucket_location: us-east1\n")
    fields = {e.field for e in validate_policy(path)}
    assert fields == {"logging.allowed_locations", "logging.required_bucket_location"}
    path = pack_with(tmp_path, "logging:\n  allowed_locations: [moon-base1]\n")
    assert "unknown log bucket location 'moon-base1'" in str(validate_policy(path)[0])


def test_global_is_accepted_only_when_written(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "logging:\n  allowed_locations: [us-central1, global]\n")
    assert load_policy(path).logging.allowed_locations == ("us-central1", "global")


def test_allowed_exclusions_need_name_and_filter_and_unique_names(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "logging:\n  allowed_locations: [us-central1]\n  allowed_exclusions:\n"
                               "    - {name: a, filter: 'LOG_ID(\"x\")'}\n    - {name: a, filter: 'LOG_ID(\"y\")'}\n"
                               "    - {name: b}\n")
    fields = sorted(e.field for e in validate_policy(path))
    assert fields == ["logging.allowed_exclusions[1].name", "logging.allowed_exclusions[2].filter"]
