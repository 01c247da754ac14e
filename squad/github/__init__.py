"""The GitHub Action: review pull requests with the reviewer team, run `/squad <task>` for trusted actors.

`squad github` (squad.cli.github) reads the Actions environment and calls `run_action`. The review
itself is an injectable `Reviewer` callable (see `review.py`); `agents.agent_reviewer` is the real one.
"""
