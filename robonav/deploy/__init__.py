"""robonav.deploy: see DESIGN.md (built by a later issue)."""
