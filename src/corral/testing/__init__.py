"""Builders and fakes shipped for tests (fluent object builders, a fake clock).

Only tests import this package; it may import any layer.
"""

from corral.testing.clock import FakeClock

__all__ = ["FakeClock"]
