"""batchpay for Airflow 3: a provider (hook, sensors, tasks) and the DAG ``batchpay_nightly``.

Nothing here imports Airflow at import time: :func:`get_provider_info` is what Airflow's
provider manager calls through the ``apache_airflow_provider`` entry point, and the hook,
sensors and tasks live in submodules that need ``pip install 'batchpay[airflow]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """What Airflow's provider manager lists for batchpay (``airflow providers list``)."""
    from batchpay import __version__

    return {
        "package-name": "batchpay",
        "name": "batchpay",
        "description": "Pay many people from a spreadsheet, exactly once, through the Anton "
        "Payments API.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "batchpay",
                "hook-class-name": "batchpay.airflow.hooks.BatchpayHook",
            }
        ],
        "hook-class-names": ["batchpay.airflow.hooks.BatchpayHook"],
    }
