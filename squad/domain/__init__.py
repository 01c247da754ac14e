"""The domain: pure data and rules, no I/O. Plans, reviews (one Finding, one Verdict, one gate policy),
typed journal events, the task state machine, the run state fold, usage and limits, identifiers."""
