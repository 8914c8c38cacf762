from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.master.gitsource import GitError, GitMirror, head_commit
from tests.gitutil import git


def test_an_unreachable_repository_is_one_clear_error(tmp_path: Path) -> None:
    mirror = GitMirror(str(tmp_path / "nowhere.git"), "main", tmp_path / "checkout")
    with pytest.raises(GitError, match=r"^git clone failed: .*nowhere\.git"):
        mirror.fetch()
    assert mirror.commit == ""


def test_mirror_follows_the_branch_and_head_commit_reads_it(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=origin)
    (origin / "a.yaml").write_text("one\n")
    git("add", ".", cwd=origin)
    git("commit", "--quiet", "-m", "one", cwd=origin)
    mirror = GitMirror(str(origin), "main", tmp_path / "checkout")
    assert mirror.fetch() and mirror.checkout() == git("rev-parse", "HEAD", cwd=origin)
    assert not mirror.fetch()  # nothing new
    (origin / "a.yaml").unlink()
    git("commit", "--quiet", "-am", "gone", cwd=origin)
    assert mirror.fetch()
    assert mirror.checkout() == head_commit(tmp_path / "checkout") == git(
        "rev-parse", "HEAD", cwd=origin)
    assert not (tmp_path / "checkout" / "a.yaml").exists()
    assert head_commit(tmp_path) == ""  # not a work tree
