"""Errors and warnings of the dataset adapters.

Two levels, so a long preparation run can keep going: a ``DatasetError`` means the whole dataset cannot
be read (wrong version folder, missing tables) and stops, as does a ``CacheMismatchError`` (the cache
split was made with other settings); a ``SampleError`` spoils one sample (its camera file is missing,
its radar file is corrupt) and `prepare` skips that sample and reports it. A
``DataWarning`` is something the sample survives (no radar record, a missing accumulation sweep);
adapters emit it with ``warnings.warn`` so callers can count or escalate it with the standard machinery.
Every message names the file or record it is about.
"""
from __future__ import annotations


class DatasetError(ValueError):
    """The dataset as a whole cannot be read (nothing to skip to)."""


class SampleError(ValueError):
    """One sample cannot be read; others may still be fine."""


class CorruptFileError(SampleError):
    """A sensor file exists but does not hold what its format promises."""


class DataWarning(UserWarning):
    """A sample is usable but something was missing or dropped; the message says what and where."""


class CacheMismatchError(ValueError):
    """A cache split was prepared with other content settings than the run asked to resume it with."""
