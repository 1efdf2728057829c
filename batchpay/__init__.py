"""batchpay: pay many people from a spreadsheet, exactly once, through the Anton Payments API."""

from __future__ import annotations

__version__ = "0.1.0"
