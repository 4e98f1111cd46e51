"""A workflow that counts its runs in a module global. The count each run sees tells the sandbox apart:
the strict sandbox imports the module afresh for every run (each run counts 1), `passthrough` shares one
import among all runs (the count goes on)."""

from __future__ import annotations

from temporalio import workflow

RUNS = 0


@workflow.defn
class CountRunsWorkflow:
    @workflow.run
    async def run(self) -> int:
        global RUNS
        RUNS += 1
        return RUNS
