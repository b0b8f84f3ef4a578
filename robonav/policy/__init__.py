"""robonav.policy: see DESIGN.md (built by a later issue)."""
