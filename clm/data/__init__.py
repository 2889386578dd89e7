"""The data: ingest and the validation gate, features and Feast, the warehouse, labels.

Jobs (ingest, feature_store, importers, simulate, labels, ledger, queries) over
the building blocks they share (validation, features, warehouse, segments, drift).
"""
