"""The exception tree: only what stops a whole run is raised; a bad row is data.

    PipelineError                 exit 1 unless a child says otherwise
    ├── ConfigError               exit 2  config.yaml is wrong (key, value, ${VAR}, YAML syntax)
    ├── InputError                exit 2  the contacts source is missing or unreadable
    ├── TemplateError             exit 2  the template does not compile or needs a missing column
    ├── JournalError              exit 2  the journal file cannot be opened, read or written
    ├── SpoolError                exit 2  no room for the plan's spool (beside the journal)
    ├── DiskTrouble               exit 2  a file or folder the run writes failed before sending
    ├── ScaffoldError             exit 2  `init DIR` would overwrite, or cannot write: undone
    ├── ProviderFatal             exit 3  the provider said stop (token, user, line, credit, ...)
    │   ├── Refused               exit 3  the preflight said no (credit, max_cost, stale send_at)
    │   └── AmbiguousStorm        exit 5  answers in a row whose outcome is unknown: stopped
    ├── Interrupted               exit 3  SIGINT/TERM/HUP: in-flight requests done, rest pending
    ├── ReportUnwritable          exit 3  the report could not be written mid-run (a full disk)
    ├── StoppedMidRun             exit 3  another error after the first request (journal, disk)
    ├── LockHeld                  exit 4  another run holds the journal
    └── InternalFailure           exit 1  a sender thread crashed (a bug)

    RenderOverrun                 never leaves render.py: one row's render went past a bound
                                  (time, memory, size); that row is `invalid`, the run goes on

Every message starts with *where* (a file, a key, a line) and ends with *the fix*.
The provider token never appears in one. The tree above is each class's documentation.
"""

from __future__ import annotations


class PipelineError(Exception):
    exit_code = 1
    unchanged = "Nothing was sent."  # what cli adds below the message of an exit-2 error

    def __init_subclass__(cls, exit_code: int | None = None) -> None:
        super().__init_subclass__()
        if exit_code is not None:  # else the parent's
            cls.exit_code = exit_code


class ConfigError(PipelineError, exit_code=2): ...


class InputError(PipelineError, exit_code=2): ...


class TemplateError(PipelineError, exit_code=2): ...


class JournalError(PipelineError, exit_code=2): ...


class SpoolError(PipelineError, exit_code=2): ...


class DiskTrouble(PipelineError, exit_code=2): ...


class ScaffoldError(PipelineError, exit_code=2):
    unchanged = "Nothing was changed."  # init sends nothing anyway: what matters is no file lost


class ProviderFatal(PipelineError, exit_code=3):
    """`title`: the provider's status title (see amoot.TITLES), or what stopped the run."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title


class Refused(ProviderFatal): ...


class AmbiguousStorm(ProviderFatal, exit_code=5):
    """Exit 5, not 3: the rows of those requests are `unknown` and need the operator."""


class Interrupted(PipelineError, exit_code=3): ...


class ReportUnwritable(PipelineError, exit_code=3): ...


class StoppedMidRun(PipelineError, exit_code=3): ...


class LockHeld(PipelineError, exit_code=4): ...


class InternalFailure(PipelineError): ...


class RenderOverrun(Exception):
    """Not a PipelineError: it stops one row, never the run (render.py turns it into data)."""
