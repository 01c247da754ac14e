"""A test that skips because a fixture is missing fails the run (tests/strict_skips.py)."""

from __future__ import annotations

import pytest
from github_server import WEBHOOKS, webhook_payload
from strict_skips import is_missing_fixture

# The exact reason the GitHub tests used to skip with when ../shared was not checked out.
#: strict_skips is already imported here, so the inner run cannot assertion-rewrite it; that is fine.
QUIET = ("-W", "ignore::pytest.PytestAssertRewriteWarning")
OLD_REASON = "real webhook payload pull_request/opened.json not found beside the repo (../shared)"


def test_missing_fixture_skips_fail_and_platform_skips_stay_skips(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner=f"""
        import pytest

        def test_old_github_skip():
            pytest.skip({OLD_REASON!r})

        @pytest.fixture
        def data():
            pytest.skip("fixture data file tests/fixtures/x.yaml does not exist")

        def test_skip_in_fixture_setup(data):
            pass

        def test_platform_skip():
            pytest.skip("/proc/<pid>/environ is Linux")

        @pytest.mark.skipif(True, reason="root can write to read-only directories")
        def test_marker_skip():
            pass

        def test_passes():
            pass
        """
    )
    result = pytester.runpytest("-p", "strict_skips", *QUIET)
    result.assert_outcomes(failed=1, errors=1, skipped=2, passed=1)  # a skip in setup fails as an error
    result.stdout.fnmatch_lines(["*a test may not skip for a missing fixture*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_module_skipped_for_missing_data_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import pytest
        pytest.skip("webhook payloads missing", allow_module_level=True)
        """
    )
    result = pytester.runpytest("-p", "strict_skips", *QUIET)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # "1 error during collection"
    result.stdout.fnmatch_lines(["*a test may not skip for a missing fixture*"])


@pytest.mark.parametrize(
    ("reason", "missing"),
    [
        (OLD_REASON, True),
        ("fixture 'repo' not found", True),
        ("test data unavailable offline", True),
        ("/proc/<pid>/environ is Linux", False),
        ("cannot run squad as an unprivileged user here: b'No such file or directory'", False),
        ("root can write to read-only directories", False),
    ],
)
def test_is_missing_fixture(reason: str, missing: bool) -> None:
    assert is_missing_fixture(reason) is missing


def test_webhook_payloads_are_vendored_with_their_licence() -> None:
    assert "Permission is hereby granted, free of charge" in (WEBHOOKS / "LICENSE").read_text()
    assert "octokit/webhooks" in (WEBHOOKS / "README.md").read_text()
    assert webhook_payload("pull_request", "opened.with-null-body")["pull_request"]["body"] is None


def test_a_missing_payload_raises_instead_of_skipping() -> None:
    with pytest.raises(FileNotFoundError, match=r"pull_request/no-such-action\.json is missing"):
        webhook_payload("pull_request", "no-such-action")
