"""robonav.eval: see DESIGN.md (built by a later issue)."""
