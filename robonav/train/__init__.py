"""robonav.train: see DESIGN.md (built by a later issue)."""
