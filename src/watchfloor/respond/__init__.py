"""Response: playbooks, actions with manifests, approvals, connectors (see README.md)."""
