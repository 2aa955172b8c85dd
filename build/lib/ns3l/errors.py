"""The one exception type for bad requests, and how a command line turns it into one line."""

from collections.abc import Iterable


class UsageError(ValueError):
    """A bad request by the user (flag, data set, split size): its message is one line that names
    the bad value and what is accepted. Command lines print it and exit with status 2."""


def expected(name: str, value: object, accepted: Iterable[object]) -> UsageError:
    """`--dataset='cifar11': expected one of cifar10, cifar100, svhn`, as a UsageError."""
    return UsageError(f"{name}={value!r}: expected one of {', '.join(map(str, accepted))}")
