"""The job-config repository: its commit, and a built-in mirror for setups without git-sync.

Uses the `git` command, so credentials come from wherever git finds them (an SSH key, a
credential helper, a token in the URL's environment); git is never allowed to prompt.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from common.errors import FlinkschedError

logger = logging.getLogger(__name__)

GIT_TIMEOUT = 120.0


class GitError(FlinkschedError):
    """A git command failed; the last good checkout stays in use."""


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise GitError("the git command is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:g}s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise GitError(f"git {args[0]} failed: {detail[-1] if detail else done.returncode}")
    return done.stdout.strip()


def head_commit(path: Path) -> str:
    """The commit checked out where `path` lies, or "" when it is not in a git work tree."""
    try:
        return _git("rev-parse", "HEAD", cwd=path.resolve())
    except (GitError, OSError):
        return ""


class GitMirror:
    """Clones `branch` of `url` into `dest` once, then fetches and checks out its tip."""

    def __init__(self, url: str, branch: str, dest: Path) -> None:
        self.url = url
        self.branch = branch
        self.dest = dest
        self.commit = ""

    def fetch(self) -> bool:
        """The network half: clone once, else fetch the branch. True when a checkout of the
        fetched tip is needed."""
        if not (self.dest / ".git").exists():
            self.dest.mkdir(parents=True, exist_ok=True)
            _git("clone", "--quiet", "--no-checkout", "--single-branch", "--branch",
                 self.branch, "--depth", "1", self.url, str(self.dest))
            _git("update-ref", "FETCH_HEAD", "HEAD", cwd=self.dest)
        else:
            _git("fetch", "--quiet", "--depth", "1", "origin", self.branch, cwd=self.dest)
        return _git("rev-parse", "FETCH_HEAD", cwd=self.dest) != self.commit

    def checkout(self) -> str:
        """The local half: check out the fetched tip; returns its commit."""
        _git("checkout", "--quiet", "--force", "--detach", "FETCH_HEAD", cwd=self.dest)
        commit = _git("rev-parse", "HEAD", cwd=self.dest)
        if commit != self.commit:
            logger.info("config repository %s (%s) at commit %s", self.url, self.branch,
                        commit[:12])
        self.commit = commit
        return commit
