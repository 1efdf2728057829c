"""Example DAGs shipped with batchpay (point ``dags_folder`` here, or copy the file)."""
