"""Governance: per-user quotas (`quotas.py`) and policies as code (`policies.py`, read from
`policies.yaml` by `policyfile.py`), enforced through the hooks in `enforce.py` that commands
and pushes call; `audit.py` is where changes to either are recorded."""
