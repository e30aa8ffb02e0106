"""The exception tree: only what stops a whole run is raised; a bad row is data.

    PipelineError                 exit 1 unless a child says otherwise
    ├── ConfigError               exit 2  config.yaml is wrong (key, value, ${VAR}, YAML syntax)
    ├── InputError                exit 2  the contacts source is missing or unreadable
    ├── TemplateError             exit 2  the template does not compile or needs a missing column
    ├── JournalError              exit 2  the journal file cannot be opened, read or written
    ├── SpoolError                exit 2  no room for the plan's spool (beside the journal)
    ├── DiskTrouble               exit 2  a file or folder the run writes failed before sending
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
The provider token never appears in one.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""

    exit_code = 1


class ConfigError(PipelineError):
    """config.yaml is wrong; nothing was sent."""

    exit_code = 2


class InputError(PipelineError):
    """The contacts source cannot be read as asked; nothing was sent."""

    exit_code = 2


class TemplateError(PipelineError):
    """The template cannot be used for this contacts table; nothing was sent."""

    exit_code = 2


class JournalError(PipelineError):
    """The journal or its lock file cannot be used; the message names the path and the fix."""

    exit_code = 2


class SpoolError(PipelineError):
    """The plan cannot keep its prepared rows on disk (full, over quota); nothing was sent."""

    exit_code = 2


class DiskTrouble(PipelineError):
    """A file or folder the run writes failed before any request left (exit 2)."""

    exit_code = 2


class ProviderFatal(PipelineError):
    """The provider answered with a title that stops the whole run (see amoot.TITLES)."""

    exit_code = 3

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title


class Refused(ProviderFatal):
    """The run would not start sending: not enough credit, over max_cost, a stale campaign."""


class AmbiguousStorm(ProviderFatal):
    """Several requests in a row got no clear answer: the run stopped, the rest `pending`.

    Exit 5, not 3: the rows of those requests are `unknown` (they always are, that is what
    stopped the run), and they need the operator, which is what 5 says; a rerun continues
    with the `pending` rows and leaves the `unknown` ones alone, as after any exit 5.
    """

    exit_code = 5


class Interrupted(PipelineError):
    """A signal asked the run to stop; what was in flight was recorded."""

    exit_code = 3


class ReportUnwritable(PipelineError):
    """A write to the report or its attention file failed after sending started: the run
    stopped as on a signal, every answer is in the journal."""

    exit_code = 3


class StoppedMidRun(PipelineError):
    """An error (journal, disk) after the first request: stop, keep what is known (exit 3)."""

    exit_code = 3


class LockHeld(PipelineError):
    """Another run holds the journal lock; this run changed nothing."""

    exit_code = 4


class InternalFailure(PipelineError):
    """A sender thread failed unexpectedly (a bug); the run stops with what it has recorded."""

    exit_code = 1


class RenderOverrun(Exception):
    """One row's render went past a bound of pipeline.bounds; the message is the row's error.

    Not a PipelineError: it stops one row, never the run (render.py turns it into data).
    """
